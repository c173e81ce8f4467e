"""The telemetry record ``tailpipe.record/1``: one JSON object per model call (or per billing line).

``Record`` mirrors ``record.schema.json`` (shipped beside this module, see ``schema_path()``) field for
field. Validation here is a cheap hand-written equivalent of the JSON Schema, so that producing and reading
records needs only the standard library (sinks encode lines faster with orjson: exporter/lines.py).
Unknown fields are kept in ``Record.extra`` and written back at the top level, so older readers carry
newer fields through unchanged.
"""

from __future__ import annotations

import json
import math
import operator
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from .attributes import INTEGRATIONS, OUTPUT_TYPES, TOKEN_ACCURACIES

SCHEMA = "tailpipe.record/1"
"""Value of the ``schema`` field; a version bump is a new value."""

SCHEMA_FILE = "record.schema.json"

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUSES = frozenset({STATUS_OK, STATUS_ERROR})


class RecordError(ValueError):
    """A record is malformed. ``field`` names the offending field, or is None for the record as a whole."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# ---------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------


_ID_BATCH = 256
_VERSION_4 = bytes((b & 0x0F) | 0x40 for b in range(256))  # byte 6: version 4 in the high nibble
_RFC_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))  # byte 8: variant bits 10
_ID_GROUPS = ((0, 4), (4, 6), (6, 8), (8, 10), (10, 16))  # the bytes of a UUID's five dash-separated groups
_record_ids = iter(())


def _id_batch() -> list[str]:
    """Random UUIDs with the version and variant bits RFC 9562 sets, formatted by C code: each group's
    bytes of every id are gathered into one column (extended slices), hexed with a comma between ids and
    split; the ids are their groups joined by dashes (a third of the cost of slicing and formatting each
    id in Python)."""
    raw = bytearray(os.urandom(16 * _ID_BATCH))
    raw[6::16] = raw[6::16].translate(_VERSION_4)
    raw[8::16] = raw[8::16].translate(_RFC_VARIANT)
    columns = []
    for start, end in _ID_GROUPS:
        width = end - start
        column = bytearray(width * _ID_BATCH)
        for j in range(width):
            column[j::width] = raw[start + j :: 16]
        columns.append(column.hex(",", width).split(","))
    return list(map("-".join, zip(*columns, strict=True)))


def new_record_id() -> str:
    """A fresh record id: a random UUID (version 4) in lowercase canonical form, drawn from a batch of 256.

    The randomness of ``uuid.uuid4`` (``os.urandom``) at a fifth of its cost: ``uuid.UUID`` objects are
    not built. A batch is consumed through a list iterator, whose ``next`` is atomic, so
    threads never share an id; a forked child starts a new batch.
    """
    global _record_ids
    rid = next(_record_ids, None)
    if rid is None:
        _record_ids = iter(_id_batch())
        rid = next(_record_ids)
    return rid


def _new_id_batch_after_fork() -> None:
    global _record_ids
    _record_ids = iter(())


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_id_batch_after_fork)


def utc_now_rfc3339() -> str:
    """The current time as RFC 3339 UTC with microseconds, e.g. ``2026-09-01T12:00:00.123456Z``."""
    return rfc3339_utc(datetime.now(timezone.utc))


def rfc3339_utc(dt: datetime) -> str:
    """Format an aware datetime as RFC 3339 in UTC (``...Z``, microseconds). Naive datetimes are refused."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("rfc3339_utc needs an aware datetime (tzinfo set)")
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


_second_prefixes: dict[int, str] = {}


def rfc3339_from_unix_ns(ns: int) -> str:
    """Format nanoseconds since the Unix epoch (OpenTelemetry span times) as RFC 3339 UTC.

    The date and time of day are cached per second: the records of one batch share a few seconds, and
    ``datetime`` arithmetic plus ``strftime`` for every record was ~6% of the gateway's ingest time."""
    seconds, rest = divmod(ns, 1_000_000_000)
    prefix = _second_prefixes.get(seconds)
    if prefix is None:
        prefix = rfc3339_utc(_EPOCH + timedelta(seconds=seconds))[: -len(".000000Z")]
        if len(_second_prefixes) >= 4096:
            _second_prefixes.clear()
        _second_prefixes[seconds] = prefix
    return "%s.%06dZ" % (prefix, rest // 1000)  # noqa: UP031 - a third faster than the f-string's format spec


_TIMESTAMP_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|\+00:00)", re.ASCII)
_CANONICAL_TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{6}Z", re.ASCII)
_valid_dates: set[str] = set()
_valid_seconds: set[str] = set()


def _is_canonical_timestamp(value: str) -> bool:
    """The form every writer of this package produces (``...T12:00:00.123456Z``), checked without building
    a datetime: a regex for the date and time of day, the calendar date checked once per day seen, and
    both once per second seen (records come in bursts of the same seconds)."""
    if len(value) == 27 and value[:19] in _valid_seconds:
        micro = value[20:26]
        return value[19] == "." and value[26] == "Z" and micro.isdigit() and micro.isascii()
    if not _CANONICAL_TIMESTAMP_RE.fullmatch(value):
        return False
    day = value[:10]
    if day not in _valid_dates:
        try:
            datetime(int(day[:4]), int(day[5:7]), int(day[8:10]))
        except ValueError:
            return False
        if len(_valid_dates) >= 4096:
            _valid_dates.clear()
        _valid_dates.add(day)
    if len(_valid_seconds) >= 4096:
        _valid_seconds.clear()
    _valid_seconds.add(value[:19])
    return True


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC 3339 UTC timestamp (``Z`` or ``+00:00``) into an aware datetime; ValueError if not one."""
    m = _TIMESTAMP_RE.fullmatch(value)
    if m is None:
        raise ValueError(f"not an RFC 3339 UTC timestamp: {_show(value)}")
    year, month, day, hour, minute, second, frac = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    # A leap second (:60) is refused, as datetime and the JSON Schema format checker do.
    return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=timezone.utc)


def schema_path() -> Path:
    """Filesystem path of ``record.schema.json`` shipped with this package."""
    resource = resources.files(__package__).joinpath(SCHEMA_FILE)
    if isinstance(resource, os.PathLike):
        return Path(os.fspath(resource))
    raise FileNotFoundError(f"{SCHEMA_FILE} is not on the filesystem (zipped install); use load_schema()")


def load_schema() -> dict[str, Any]:
    """The JSON Schema of ``tailpipe.record/1`` as a dict (works for any package loader)."""
    return json.loads(resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ---------------------------------------------------------------------------------------------------------
# field checks (each returns the value, normalized, or raises RecordError naming the field)
# ---------------------------------------------------------------------------------------------------------


def _fail(name: str, expected: str, value: Any) -> RecordError:
    return RecordError(f"record field {name!r}: expected {expected}, got {_show(value)}", name)


def _check_count(name: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise _fail(name, "an integer >= 0 or null", value)
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and value >= 0:
        return int(value)
    raise _fail(name, "an integer >= 0 or null", value)


def _check_quantity(name: str, value: Any) -> Any:
    if value is None:
        return None
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if is_number and math.isfinite(value) and value >= 0:
        return value
    raise _fail(name, "a finite number >= 0 or null", value)


def _check_optional_string(name: str, value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    raise _fail(name, "a string or null", value)


def _check_string_map(name: str, value: Any) -> Any:
    if not isinstance(value, Mapping):
        raise _fail(name, "an object of string to string", value)
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise RecordError(
                f"record field {name!r}: expected string to string, got {_show(key)}: {_show(item)}", name
            )
    return value if isinstance(value, dict) else dict(value)


def _enum_check(allowed: frozenset[Any], expected: str):
    def check(name: str, value: Any) -> Any:
        try:
            if value in allowed:
                return value
        except TypeError:  # unhashable
            pass
        raise _fail(name, expected, value)

    return check


def _check_schema(name: str, value: Any) -> Any:
    if value != SCHEMA:
        raise RecordError(
            f"record field 'schema': unsupported schema {_show(value)}, this reader handles {SCHEMA!r}", name
        )
    return value


_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)


def _check_record_id(name: str, value: Any) -> Any:
    if isinstance(value, str) and _UUID_RE.fullmatch(value):
        return value
    raise _fail(name, "a UUID string in lowercase canonical form", value)


def _check_timestamp(name: str, value: Any) -> Any:
    if type(value) is str and _is_canonical_timestamp(value):
        return value
    if isinstance(value, str):
        try:
            parse_rfc3339(value)
            return value
        except ValueError:
            pass
    raise _fail(name, "an RFC 3339 UTC timestamp such as '2026-01-31T12:00:00.000000Z'", value)


def _check_provider(name: str, value: Any) -> Any:
    if isinstance(value, str) and value:
        return value
    raise _fail(name, "a non-empty string", value)


def _check_operation(name: str, value: Any) -> Any:
    if value is None or (isinstance(value, str) and value):
        return value
    raise _fail(name, "a non-empty string or null", value)


def _hex_id_check(length: int):
    pattern = re.compile(f"[0-9a-f]{{{length}}}", re.ASCII)
    zero = "0" * length

    def check(name: str, value: Any) -> Any:
        if value is None or (isinstance(value, str) and pattern.fullmatch(value) and value != zero):
            return value
        raise _fail(name, f"{length} lowercase hex digits (not all zero) or null", value)

    return check


def _check_streamed(name: str, value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    raise _fail(name, "a boolean or null", value)


def _check_factors(name: str, value: Any) -> Any:
    if isinstance(value, Mapping):
        return value if isinstance(value, dict) else dict(value)
    raise _fail(name, "an object", value)


def _check_flags(name: str, value: Any) -> Any:
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return value if isinstance(value, list) else list(value)
    raise _fail(name, "an array of strings", value)


def _check_signature(name: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Mapping):
        alg, key_id, sig = value.get("alg"), value.get("key_id"), value.get("value")
        if isinstance(alg, str) and alg and isinstance(key_id, str) and isinstance(sig, str) and sig:
            return value if isinstance(value, dict) else dict(value)
    raise _fail(name, "null or an object with string alg, key_id and value", value)


# ---------------------------------------------------------------------------------------------------------
# the record
# ---------------------------------------------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class Record:
    """One telemetry record (schema ``tailpipe.record/1``). Field docs: ``record.schema.json``."""

    schema: str = SCHEMA
    record_id: str = field(default_factory=new_record_id)
    timestamp: str = field(default_factory=utc_now_rfc3339)
    integration: str
    provider: str
    request_model: str | None = None
    response_model: str | None = None
    operation: str | None = None
    output_type: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    images: int | None = None
    image_size: str | None = None
    image_quality: str | None = None
    video_seconds: float | None = None
    video_resolution: str | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    streamed: bool | None = None
    status: str = STATUS_OK
    error_type: str | None = None
    token_accuracy: str
    region: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    trace_id: str | None = None
    span_id: str | None = None
    energy_wh: float | None = None
    energy_wh_min: float | None = None
    energy_wh_max: float | None = None
    carbon_gco2e: float | None = None
    carbon_gco2e_min: float | None = None
    carbon_gco2e_max: float | None = None
    cost_usd: float | None = None
    factors: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    signature: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Unknown top-level fields, kept as read and written back at the top level by ``to_dict``."""

    # -- validation -------------------------------------------------------------------------------------

    def validate(self) -> Record:
        """Check every field against the schema rules; raise RecordError naming the first bad field.

        Integral floats in count fields become ints and mappings become dicts (in place). Returns self.
        """
        if not self.extra and plainly_valid(_fields_dict(self)):
            return self
        for name, check in _CHECKS:
            value = getattr(self, name)
            checked = check(name, value)
            if checked is not value:
                setattr(self, name, checked)
        if not isinstance(self.extra, dict):
            raise _fail("extra", "a dict of unknown fields", self.extra)
        for key in self.extra:
            if not isinstance(key, str):
                raise RecordError(f"record: unknown field names must be strings, got {_show(key)}", None)
            if key in _FIELD_SET:
                raise RecordError(f"record field {key!r}: also present in extra", key)
        return self

    # -- dict form --------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """All fields (None included) in schema order, then the unknown fields. Containers are copied."""
        out = {name: _copy_json(getattr(self, name)) for name in FIELD_NAMES}
        for key, value in self.extra.items():
            out.setdefault(key, _copy_json(value))
        return out

    def view(self) -> dict[str, Any]:
        """The same dict as `to_dict`, but sharing the record's containers: for read-only use (encode, sign).

        Copying every nested container was a third of the cost of writing a record.
        """
        out = _fields_dict(self)
        if self.extra:
            for key, value in self.extra.items():
                out.setdefault(key, value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Record:
        """Build and validate a record from its dict form (copied); unknown fields go to ``extra``.

        Raises RecordError naming the field on a missing required field, a wrong type or value, or a
        ``schema`` other than ``tailpipe.record/1``.
        """
        if not isinstance(data, Mapping):
            raise RecordError(f"record: expected a JSON object, got {type(data).__name__}", None)
        if "schema" not in data:
            raise RecordError("record field 'schema' is missing", "schema")
        _check_schema("schema", data["schema"])
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            if key in _FIELD_SET:
                kwargs[key] = _copy_json(value)
            elif isinstance(key, str):
                extra[key] = _copy_json(value)
            else:
                raise RecordError(f"record: field names must be strings, got {_show(key)}", None)
        for name in REQUIRED_FIELDS:
            if name not in kwargs:
                raise RecordError(f"record field {name!r} is missing", name)
        return cls(**kwargs, extra=extra).validate()

    # -- JSON form --------------------------------------------------------------------------------------

    def encode(self) -> bytes:
        """Validate, then encode as compact one-line UTF-8 JSON (no trailing newline; NaN refused)."""
        self.validate()
        data = self.view()
        try:
            text = _ENCODER.encode(data)
        except (TypeError, ValueError) as exc:
            raise unencodable(data, exc) from None
        # Keep the record on one line for every line splitter (str.splitlines splits on these too).
        if "\u2028" in text or "\u2029" in text or "\x85" in text:
            text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").replace("\x85", "\\u0085")
        return text.encode("utf-8")

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview | str) -> Record:
        """Parse one JSON record (bytes in UTF-8, or str) and validate it."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            try:
                data = bytes(data).decode("utf-8")
            except UnicodeDecodeError as exc:
                message = f"record: not valid UTF-8 ({exc.reason} at byte {exc.start})"
                raise RecordError(message, None) from None
        if not isinstance(data, str):
            raise RecordError(f"record: expected bytes or str, got {type(data).__name__}", None)
        try:
            parsed = json.loads(data, parse_constant=_refuse_constant)
        except json.JSONDecodeError as exc:
            message = f"record: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            raise RecordError(message, None) from None
        except ValueError as exc:  # NaN / Infinity
            raise RecordError(f"record: invalid JSON ({exc})", None) from None
        return cls.from_dict(parsed)


def encode(record: Record) -> bytes:
    """Same as ``record.encode()``."""
    return record.encode()


def decode(data: bytes | bytearray | memoryview | str) -> Record:
    """Same as ``Record.decode(data)``."""
    return Record.decode(data)


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Record) if f.name != "extra")
"""Record field names in schema order (``extra`` excluded)."""

REQUIRED_FIELDS: tuple[str, ...] = (
    "schema",
    "record_id",
    "timestamp",
    "integration",
    "provider",
    "status",
    "token_accuracy",
)

_FIELD_SET = frozenset(FIELD_NAMES)
_FIELD_COUNT = len(FIELD_NAMES)


def _dict_display(names: tuple[str, ...]) -> Any:
    """`def fields_dict(r): return {"schema": r.schema, ...}` for the given fields: one dict display, which
    CPython builds from its constant keys in one step (measured: ~20% fewer instructions and ~40% less
    time than zipping the names with an attrgetter; every record written goes through it). Generated, as
    `dataclasses` generates `__init__`, so the field list stays the dataclass's own."""
    if not all(name.isidentifier() for name in names):  # pragma: no cover - guards edits to Record
        raise AssertionError("record field names must be identifiers")
    source = "def fields_dict(r):\n    return {" + ", ".join(f"{n!r}: r.{n}" for n in names) + "}\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, "<tailpipe record fields>", "exec"), namespace)  # the names are checked above
    return namespace["fields_dict"]


_fields_dict = _dict_display(FIELD_NAMES)
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))

_check_hex32 = _hex_id_check(32)
_check_hex16 = _hex_id_check(16)

_CHECKS: tuple[tuple[str, Any], ...] = (
    ("schema", _check_schema),
    ("record_id", _check_record_id),
    ("timestamp", _check_timestamp),
    ("integration", _enum_check(INTEGRATIONS, "one of " + ", ".join(sorted(INTEGRATIONS)))),
    ("provider", _check_provider),
    ("request_model", _check_optional_string),
    ("response_model", _check_optional_string),
    ("operation", _check_operation),
    ("output_type", _enum_check(OUTPUT_TYPES | {None}, "null or one of " + ", ".join(sorted(OUTPUT_TYPES)))),
    ("input_tokens", _check_count),
    ("output_tokens", _check_count),
    ("cache_read_tokens", _check_count),
    ("cache_write_tokens", _check_count),
    ("reasoning_tokens", _check_count),
    ("images", _check_count),
    ("image_size", _check_optional_string),
    ("image_quality", _check_optional_string),
    ("video_seconds", _check_quantity),
    ("video_resolution", _check_optional_string),
    ("latency_ms", _check_quantity),
    ("ttft_ms", _check_quantity),
    ("streamed", _check_streamed),
    ("status", _enum_check(STATUSES, "'ok' or 'error'")),
    ("error_type", _check_optional_string),
    ("token_accuracy", _enum_check(TOKEN_ACCURACIES, "'exact' or 'estimated'")),
    ("region", _check_optional_string),
    ("environment", _check_string_map),
    ("attributes", _check_string_map),
    ("trace_id", _check_hex32),
    ("span_id", _check_hex16),
    ("energy_wh", _check_quantity),
    ("energy_wh_min", _check_quantity),
    ("energy_wh_max", _check_quantity),
    ("carbon_gco2e", _check_quantity),
    ("carbon_gco2e_min", _check_quantity),
    ("carbon_gco2e_max", _check_quantity),
    ("cost_usd", _check_quantity),
    ("factors", _check_factors),
    ("flags", _check_flags),
    ("signature", _check_signature),
)

if tuple(name for name, _ in _CHECKS) != FIELD_NAMES:  # pragma: no cover - guards edits to this module
    raise AssertionError("record._CHECKS is out of step with the Record fields")


COUNT_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "images",
)
QUANTITY_FIELDS = (
    "video_seconds",
    "latency_ms",
    "ttft_ms",
    "energy_wh",
    "energy_wh_min",
    "energy_wh_max",
    "carbon_gco2e",
    "carbon_gco2e_min",
    "carbon_gco2e_max",
    "cost_usd",
)
_OPTIONAL_STRING_FIELDS = (
    "request_model",
    "response_model",
    "image_size",
    "image_quality",
    "video_resolution",
    "error_type",
    "region",
)
_get_counts = operator.itemgetter(*COUNT_FIELDS)
_get_quantities = operator.itemgetter(*QUANTITY_FIELDS)
_get_optional_strings = operator.itemgetter(*_OPTIONAL_STRING_FIELDS)
_OUTPUT_TYPES_OR_NONE = OUTPUT_TYPES | {None}
_HEX32_RE = re.compile(r"[0-9a-f]{32}", re.ASCII)
_HEX16_RE = re.compile(r"[0-9a-f]{16}", re.ASCII)
_INF = math.inf


def plainly_valid(d: dict[str, Any]) -> bool:
    """A record's dict form (`Record.view()`, or `exporter.records.record_fields`) checked in one pass: every
    field present and already of its exact type and in range, nothing to normalise, no signature and no
    unknown field. False sends the record through `Record.validate`'s per-field checks, which normalise or
    name the bad field; so this may say False for a valid record, never True for an invalid one.

    On the dict rather than the record, so that a record built straight as a dict (the proxy's and the
    lake's fast path) is checked by the same rules without becoming a `Record` first."""
    if len(d) != _FIELD_COUNT:
        return False  # a field missing, or an unknown one: the full checks say which
    try:
        if d["schema"] != SCHEMA or d["status"] not in STATUSES or d["token_accuracy"] not in TOKEN_ACCURACIES:
            return False
        rid, ts, integration, provider = d["record_id"], d["timestamp"], d["integration"], d["provider"]
        operation, output_type, streamed = d["operation"], d["output_type"], d["streamed"]
        counts, quantities, strings = _get_counts(d), _get_quantities(d), _get_optional_strings(d)
        environment, attributes, trace_id, span_id = d["environment"], d["attributes"], d["trace_id"], d["span_id"]
        factors, flags, signature = d["factors"], d["flags"], d["signature"]
    except (KeyError, TypeError):  # a field missing; an unhashable status or accuracy
        return False
    if type(rid) is not str or not _UUID_RE.fullmatch(rid) or type(ts) is not str or not _is_canonical_timestamp(ts):
        return False
    if type(integration) is not str or integration not in INTEGRATIONS or type(provider) is not str or not provider:
        return False
    if operation is not None and (type(operation) is not str or not operation):
        return False
    if (type(output_type) is not str and output_type is not None) or output_type not in _OUTPUT_TYPES_OR_NONE:
        return False
    for v in counts:
        if v is not None and (type(v) is not int or v < 0):
            return False
    for v in quantities:  # one chained comparison refuses negatives, infinities and NaN
        if v is not None and ((type(v) is not float and type(v) is not int) or not 0 <= v < _INF):
            return False
    for v in strings:
        if v is not None and type(v) is not str:
            return False
    if streamed is not None and type(streamed) is not bool:
        return False
    if type(environment) is not dict or type(attributes) is not dict:
        return False
    if environment or attributes:  # most records carry neither
        for mapping in (environment, attributes):
            for k, v in mapping.items():
                if type(k) is not str or type(v) is not str:
                    return False
    if trace_id is not None and (type(trace_id) is not str or not _HEX32_RE.fullmatch(trace_id) or trace_id == _ZERO32):
        return False
    if span_id is not None and (type(span_id) is not str or not _HEX16_RE.fullmatch(span_id) or span_id == _ZERO16):
        return False
    if type(factors) is not dict or type(flags) is not list or signature is not None:
        return False  # a signature is rare on the write path: the full checks
    for flag in flags:  # noqa: SIM110 - a loop, not all(): no generator object per record
        if type(flag) is not str:
            return False
    return True


_ZERO32, _ZERO16 = "0" * 32, "0" * 16


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _copy_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy_json(item) for item in value]
    return value


def unencodable(data: dict[str, Any], exc: Exception) -> RecordError:
    """The RecordError for a record dict that cannot be encoded, naming the first field at fault."""
    for key, value in data.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as inner:
            return RecordError(f"record field {key!r}: not encodable as JSON ({inner})", key)
    return RecordError(f"record: not encodable as JSON ({exc})", None)
