"""The bytes a sink writes for one record: a JSON line, signed when the sink has a signer.

One place for it, so the local lake, Firehose and the billing backfill write records identically. Lines
are encoded with orjson (several times the standard library's speed on a record); `Record.encode` is
the standard-library reference they agree with value for value (tests/exporter/test_lines.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from tailpipe_ai.semconv import Record
from tailpipe_ai.semconv.record import FIELD_NAMES, plainly_valid, unencodable

from .memo import identity_memo

DictSigner = Callable[[dict[str, Any]], dict[str, Any]]


class LineSigner(Protocol):
    """A signer that validates the record and writes the signed line itself (`signing.RecordSigner`: one
    encoding per record)."""

    def line(self, record: Record) -> bytes: ...


Signer = LineSigner | DictSigner
"""What sinks take as ``signer``: a `LineSigner`, or any function returning a record's dict signed."""

_FIELD_SET = frozenset(FIELD_NAMES)
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_LINE_BREAKS = ((b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"), (b"\xc2\x85", b"\\u0085"))


def json_line(data: dict[str, Any]) -> bytes:
    """A record's dict as compact one-line UTF-8 JSON (no trailing newline), as every sink writes it.

    NaN and infinities are refused (orjson would write null), and U+2028, U+2029 and U+0085 are
    escaped so that every line splitter (str.splitlines included) keeps the record on one line; those
    byte sequences can only occur inside JSON strings, where the escape means the same character.
    """
    try:
        out = orjson.dumps(data, option=_ORJSON_OPTIONS)
    except TypeError as exc:  # orjson.JSONEncodeError
        raise unencodable(data, exc) from None
    if _factors_non_finite(data.get("factors")) or any(_has_non_finite(data[k]) for k in data if k not in _FIELD_SET):
        raise unencodable(data, ValueError("NaN or infinity"))
    return ensure_one_line(out)


def _walk_factors(factors: Any) -> bool:
    return _has_non_finite(factors)


# Records of one model, region and method share one factors object (`records.compact_factors`), and
# walking it is most of a line's encoding time otherwise: once per object. Shared objects are few; records
# decoded from elsewhere each bring their own, so the line memos stay small rather than keep thousands of
# those alive.
_FACTORS_MEMO_LIMIT = 1024
_factors_non_finite = identity_memo(_walk_factors, limit=_FACTORS_MEMO_LIMIT)


def ensure_one_line(line: bytes) -> bytes:
    """Escape the characters some line splitters break on (see `json_line`) in encoded JSON. Most lines
    are ASCII, which one fast check proves (two substring searches cost 20 times as much)."""
    if not line.isascii() and (b"\xe2\x80" in line or b"\xc2\x85" in line):
        for raw, escaped in _LINE_BREAKS:
            line = line.replace(raw, escaped)
    return line


def _is_plain(value: Any) -> bool:
    """Only JSON's own types, with finite numbers: what both encodings write identically."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return True
    if t is float:
        return math.isfinite(value)
    if t is dict:
        return all(type(k) is str and _is_plain(v) for k, v in value.items())
    if t is list:
        return all(_is_plain(item) for item in value)
    return False


def _has_non_finite(value: Any) -> bool:
    t = type(value)
    if t is float:
        return not math.isfinite(value)
    if t is dict:
        return any(_has_non_finite(item) for item in value.values())
    if t is list or t is tuple:
        return any(_has_non_finite(item) for item in value)
    return False


def record_line(record: Record, signer: Signer | None = None) -> bytes:
    """The record validated and encoded as one line, newline included; raises on an invalid record.

    A `LineSigner` signs the canonical encoding and writes it as the line; another signer gets the
    record's dict (which it must copy, never change) and its result is encoded. A factors object's
    encoding is remembered per object: like the record, it must not change once written.
    """
    if signer is None and not record.extra:
        data = record.view()
        if plainly_valid(data):  # the common case: one check of the dict that is then encoded
            # `+ b"\n"` rather than orjson's OPT_APPEND_NEWLINE: the copy gives back orjson's oversized
            # buffer at once, where keeping it (lines wait for their batch) cost 4 us more per line.
            return _fields_json(data) + b"\n"
    line = getattr(signer, "line", None)
    if line is not None:
        return line(record) + b"\n"  # validates
    record.validate()
    if signer is None and not record.extra:
        return _fields_json(record.view()) + b"\n"
    return json_line(record.view() if signer is None else signer(record.view())) + b"\n"


def fields_line(fields: dict[str, Any], signer: Signer | None = None) -> bytes:
    """A record given in its dict form (`records.record_fields`), encoded as `record_line` encodes it.

    The proxy's records go from the parsed call to this line without becoming `Record` objects (a third
    of their cost). A dict that is not plainly valid, or a signed record, goes through `Record.from_dict`
    and `record_line`: the same checks, errors naming the field, and signatures. `fields` is not changed.
    """
    if signer is None and plainly_valid(fields):
        return _fields_json(fields) + b"\n"
    return record_line(Record.from_dict(fields), signer)


def _fields_json(data: dict[str, Any]) -> bytes:
    """A plainly valid record dict, its factors written from bytes encoded once per object.

    Records of one model, region and method share one factors object (`records.compact_factors`), a
    third of a line and most of its floats; orjson copies those bytes in (`orjson.Fragment`) instead of
    formatting every number again. The plain check has covered every other value.
    """
    factors = data["factors"]
    fragment = _factors_fragment(factors)
    if fragment is None:  # not plain JSON: the general path refuses what it must and names the field
        return json_line(data)
    data["factors"] = fragment
    try:
        out = orjson.dumps(data, option=_ORJSON_OPTIONS)
    except TypeError as exc:  # orjson.JSONEncodeError
        data["factors"] = factors
        raise unencodable(data, exc) from None
    data["factors"] = factors
    return out if out.isascii() else ensure_one_line(out)  # most lines are ASCII: no call for them


def _encode_factors(factors: Any) -> orjson.Fragment | None:
    if not _is_plain(factors):
        return None
    return orjson.Fragment(orjson.dumps(factors, option=_ORJSON_OPTIONS))


_factors_fragment = identity_memo(_encode_factors, limit=_FACTORS_MEMO_LIMIT)
