"""HMAC-SHA256 signatures on telemetry records, so tampering with the lake is detectable.

Why: records are the product's memory (energy, carbon and cost are reported from them), and they sit in
plain folders and buckets. A signature made when the record is produced lets ``tailpipe verify`` tell an
intact record from an edited, injected or unsigned one later, wherever the file has travelled.

The scheme (``alg`` = ``HMAC-SHA256``), stable across versions of this code::

    signed  = the record without its "signature" member and without top-level members whose value is null
    message = b"tailpipe.record/1\\n" + RFC 8785 (JCS) canonical JSON of `signed`, UTF-8
    record["signature"] = {"alg": "HMAC-SHA256", "key_id": KID,
                           "value": base64url(HMAC-SHA256(secret[KID], message)), no "=" padding}

* Canonical JSON (RFC 8785: members sorted by UTF-16 code units, no whitespace, ECMAScript number text)
  makes the signature independent of key order and of how a number was written: ``5``, ``5.0`` and
  ``5e0`` are the same value, so a record survives being re-serialized by any JSON library, or read back
  with ``Record.from_dict`` (which turns integral floats in count fields into ints).
* Top-level nulls are left out because ``Record.to_dict()`` writes every schema field, null or not: a
  record signed by an older writer (without a field added later) and re-written by a newer one gains
  ``"new_field": null`` and must still verify. Dropping a null never changes what a record says.
* The ``tailpipe.record/1`` prefix binds the signature to this use, so a MAC made for something else with
  the same key can never pass as a record signature.
* ``key_id`` names the secret, so keys can rotate: a `Keyring` signs with its active key and verifies with
  the active key and any older ones it still holds.

Canonicalization has a fast path (`canonical_json`): one pass rewrites the values orjson would print
differently from RFC 8785 (integral floats, numbers below 1e-4 or from 1e16 up), then orjson does the
rest with sorted keys. Anything it cannot do exactly (non-ASCII keys at or above U+E000, whose UTF-16
order differs from code-point order, or unusual types) goes through a plain reference serializer. Both
are tested byte for byte against the ``rfc8785`` package.

Sinks write a signed record with one encoding (`signed_line`): the canonical bytes the MAC covers are
the line itself, with the signature member appended; a reader parses it back to the same canonical form.

Secrets never appear in a ``repr``, ``str``, log line or error message; key ids are public.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import operator
import os
import re
import secrets
from collections.abc import Mapping
from enum import Enum
from typing import Any, NamedTuple

import orjson

from tailpipe_ai.semconv import Record
from tailpipe_ai.semconv.record import COUNT_FIELDS, FIELD_NAMES, QUANTITY_FIELDS

from .lines import ensure_one_line

ALG = "HMAC-SHA256"
DOMAIN = b"tailpipe.record/1\n"
"""Prefix of every signed message (binds signatures to record signing, schema version 1)."""

ENV_VAR = "TAILPIPE_SIGNING_KEYS"
"""``kid1:base64secret,kid2:base64secret``; the first key signs, all of them verify."""

API_KEY_LABEL = b"tailpipe-record-signing-v1"
"""HMAC message that derives a record-signing secret from a tenant API key (see `Keyring.from_api_key`)."""

MIN_SECRET_BYTES = 32
_KID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
_SIG_VALUE_RE = re.compile(r"[A-Za-z0-9_-]{43}", re.ASCII)  # 32 bytes, base64url, unpadded


class KeyringError(ValueError):
    """A signing key or key list is unusable. Messages name the key id or position, never the secret."""


class CanonicalizationError(ValueError):
    """A value has no RFC 8785 form (NaN, infinity, an integer beyond +/-(2**53-1), a non-string key...)."""


class SigningError(ValueError):
    """A record cannot be signed (it cannot be canonicalized)."""


class Verdict(str, Enum):
    """Outcome of checking one record's signature."""

    OK = "ok"
    UNSIGNED = "unsigned"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    MALFORMED = "malformed"

    def __str__(self) -> str:
        return self.value


class Check(NamedTuple):
    """A verdict with a short reason (never containing record contents or secrets)."""

    verdict: Verdict
    reason: str


# ---------------------------------------------------------------------------------------------------------
# keys
# ---------------------------------------------------------------------------------------------------------


def _check_kid(kid: Any, where: str) -> str:
    if isinstance(kid, str) and _KID_RE.fullmatch(kid):
        return kid
    # The invalid id is not echoed: a KID:SECRET entry written the wrong way round would show the secret.
    raise KeyringError(
        f"{where}: the key id is not valid; use 1-64 characters from A-Z a-z 0-9 . _ - "
        "starting with a letter or digit, before the ':'"
    )


def _check_secret(secret: Any, kid: str, where: str) -> bytes:
    if not isinstance(secret, (bytes, bytearray)):
        raise KeyringError(
            f"{where}: the secret for key id {kid!r} must be bytes, got {type(secret).__name__} "
            "(text secrets are base64: decode them, or use Keyring.from_spec)"
        )
    if len(secret) < MIN_SECRET_BYTES:
        raise KeyringError(
            f"{where}: the secret for key id {kid!r} is {len(secret)} bytes; at least {MIN_SECRET_BYTES} "
            f"random bytes are required. Make one with: {_NEW_KEY_HINT}"
        )
    return bytes(secret)


_NEW_KEY_HINT = 'python -c "import base64,secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())"'


def _decode_b64(text: str) -> bytes:
    """Standard or URL-safe base64, padding optional."""
    text = text.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    return base64.b64decode(text, validate=True)


def new_key_entry(kid: str = "k1") -> str:
    """A fresh ``kid:base64secret`` entry (32 random bytes) for ``TAILPIPE_SIGNING_KEYS``."""
    _check_kid(kid, "new_key_entry")
    return f"{kid}:{base64.b64encode(secrets.token_bytes(MIN_SECRET_BYTES)).decode('ascii')}"


class Keyring:
    """Signing keys: one active key (signs and verifies) plus older keys kept only to verify.

    Build it from ``TAILPIPE_SIGNING_KEYS`` (`from_env`), from a spec string (`from_spec`), from a tenant
    API key (`from_api_key`), or in code: ``Keyring("k2", secret2, verify_only={"k1": secret1})``.
    To rotate, put the new key first and keep the old one after it until its records no longer matter.

    Secrets are kept private: ``repr``/``str`` show key ids only, and errors never quote a secret.
    """

    __slots__ = ("_active", "_macs", "_secrets")

    def __init__(self, active_kid: str, secret: bytes, *, verify_only: Mapping[str, bytes] | None = None) -> None:
        active_kid = _check_kid(active_kid, "Keyring")
        keys = {active_kid: _check_secret(secret, active_kid, "Keyring")}
        for kid, other in (verify_only or {}).items():
            kid = _check_kid(kid, "Keyring verify_only")
            if kid in keys:
                raise KeyringError(f"Keyring: key id {kid!r} is given twice; key ids must be unique")
            keys[kid] = _check_secret(other, kid, "Keyring verify_only")
        self._active = active_kid
        self._secrets = keys
        # HMAC state after the domain prefix, per key: each signature then costs one copy + update.
        self._macs = {kid: hmac.new(s, DOMAIN, hashlib.sha256) for kid, s in keys.items()}

    # -- constructors ---------------------------------------------------------------------------------

    @classmethod
    def from_spec(cls, spec: str, *, source: str = ENV_VAR) -> Keyring:
        """Parse ``kid1:base64secret,kid2:base64secret`` (first = active). ``source`` names it in errors."""
        if not isinstance(spec, str):
            raise KeyringError(f"{source}: expected a string like 'k2:BASE64,k1:BASE64'")
        entries = [e.strip() for e in spec.split(",")]
        keys: dict[str, bytes] = {}
        for position, entry in enumerate(entries, 1):
            if not entry:
                continue
            kid, sep, b64 = entry.partition(":")
            where = f"{source} entry {position}"
            if not sep or not b64.strip():
                raise KeyringError(f"{where}: expected KID:BASE64SECRET. Make a secret with: {_NEW_KEY_HINT}")
            kid = _check_kid(kid.strip(), where)
            if kid in keys:
                raise KeyringError(f"{where}: key id {kid!r} appears twice; key ids must be unique")
            try:
                secret = _decode_b64(b64)
            except (binascii.Error, ValueError):
                raise KeyringError(
                    f"{where}: the secret for key id {kid!r} is not valid base64. Make one with: {_NEW_KEY_HINT}"
                ) from None
            keys[kid] = _check_secret(secret, kid, where)
        if not keys:
            raise KeyringError(f"{source}: no keys given; expected KID:BASE64SECRET[,KID:BASE64SECRET...]")
        active, *older = keys
        return cls(active, keys[active], verify_only={kid: keys[kid] for kid in older})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, var: str = ENV_VAR) -> Keyring | None:
        """The keyring in ``$TAILPIPE_SIGNING_KEYS``, or None when the variable is unset or blank."""
        spec = (os.environ if environ is None else environ).get(var, "")
        if not spec.strip():
            return None
        return cls.from_spec(spec, source=var)

    @classmethod
    def from_api_key(cls, api_key: str) -> Keyring:
        """A keyring whose one key is derived from a tenant API key (nothing else to configure).

        ``secret = HMAC-SHA256(key=api_key (UTF-8), msg=b"tailpipe-record-signing-v1")`` - one
        HKDF-extract-like step with a fixed, versioned label, so the API key itself is never used as a MAC
        key and a leaked signing secret does not reveal the API key.
        ``key_id = first 8 hex digits of SHA-256(api_key)``: lets a verifier holding several tenants' keys
        pick the right one, while revealing only 32 bits of a hash of a (high-entropy) API key.
        The derived key is only as strong as the API key.
        """
        if not isinstance(api_key, str) or not api_key.strip():
            raise KeyringError("Keyring.from_api_key: the API key is empty; pass the tenant's API key")
        raw = api_key.encode("utf-8")
        secret = hmac.digest(raw, API_KEY_LABEL, "sha256")
        return cls(hashlib.sha256(raw).hexdigest()[:8], secret)

    def with_verify_keys(self, *others: Keyring) -> Keyring:
        """This keyring (same active key) that also verifies with every key of ``others``."""
        extra: dict[str, bytes] = {k: s for k, s in self._secrets.items() if k != self._active}
        for other in others:
            for kid, secret in other._secrets.items():
                known = self._secrets.get(kid, extra.get(kid))
                if known is not None and not hmac.compare_digest(known, secret):
                    raise KeyringError(f"key id {kid!r} is used for two different secrets; rename one of them")
                if kid != self._active:
                    extra[kid] = secret
        return Keyring(self._active, self._secrets[self._active], verify_only=extra)

    # -- public facts ---------------------------------------------------------------------------------

    @property
    def active_kid(self) -> str:
        """The key id new signatures carry."""
        return self._active

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id this keyring verifies, the active one first."""
        return tuple(self._secrets)

    def __contains__(self, kid: object) -> bool:
        return kid in self._secrets

    def __repr__(self) -> str:
        older = [k for k in self._secrets if k != self._active]
        return f"Keyring(active={self._active!r}, verify_only={older!r})"

    __str__ = __repr__

    def __copy__(self) -> Keyring:
        return self  # immutable

    def __deepcopy__(self, memo: Any) -> Keyring:
        return self

    def __reduce__(self) -> Any:
        raise TypeError("a Keyring holds secrets and is not picklable; rebuild it from its source in each process")

    def _mac(self, kid: str, message: bytes) -> bytes | None:
        base = self._macs.get(kid)
        if base is None:
            return None
        mac = base.copy()
        mac.update(message)
        return mac.digest()


# ---------------------------------------------------------------------------------------------------------
# RFC 8785 canonical JSON
# ---------------------------------------------------------------------------------------------------------

_MAX_SAFE_INT = 2**53 - 1
_TWO_53 = 9007199254740992.0
_quote = json.encoder.encode_basestring  # the C escaper when available; escapes exactly as RFC 8785 asks
# A per-process random marker stands in for numbers orjson would print differently; a record string
# equal to a marker is detected (the replacement count differs) and sent down the reference path.
_MARK = f"tailpipe-jcs-{secrets.token_hex(16)}-"


class _NotFast(Exception):
    """The fast path cannot produce this value exactly; use the reference serializer."""


def es_number(value: float) -> str:
    """A float as ECMAScript's Number.prototype.toString prints it (RFC 8785 section 3.2.2.3).

    Python's ``repr`` gives the same shortest round-trip digits; only the layout differs (ES writes
    plain digits from 1e-6 up to 1e21, ``e-7``/``e+21`` exponents, and no ``.0``).
    """
    if math.isnan(value) or math.isinf(value):
        raise CanonicalizationError(f"{value!r} has no JSON form (RFC 8785 forbids NaN and infinities)")
    if value == 0:
        return "0"  # also -0.0
    text = repr(value)
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exp = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    if whole == "0":  # 0.000123 -> digits "123", point 3 places left of them
        digits = frac.lstrip("0")
        point = len(digits) - len(frac)
    else:
        digits = whole + frac
        point = len(whole)
    point += int(exp or 0)
    digits = digits.rstrip("0")
    k, n = len(digits), point  # value = 0.digits * 10**n
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * -n + digits
    else:
        e = n - 1
        out = digits[0] + ("." + digits[1:] if k > 1 else "") + ("e+" if e >= 0 else "e-") + str(abs(e))
    return sign + out


def _float_fast(f: float, parts: list[str]) -> Any:
    a = abs(f)
    if 1e-4 <= a < 1e16:  # orjson prints these with ES's digits, in plain notation, as ES does
        return int(f) if f.is_integer() else f
    if a == 0.0:
        return 0
    if math.isinf(a) or math.isnan(a):
        raise _NotFast
    parts.append(es_number(f))
    return f"{_MARK}{len(parts) - 1}"


def _prepare(obj: Any, parts: list[str]) -> Any:
    """A copy of ``obj`` that orjson with sorted keys prints exactly as RFC 8785 does."""
    t = type(obj)
    if t is dict:
        out = {}
        for key, value in obj.items():
            if type(key) is not str or (not key.isascii() and max(key) >= "\ue000"):
                raise _NotFast
            tv = type(value)
            if tv is str or value is None or tv is bool:
                out[key] = value
            elif tv is int:
                if not -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
                    raise _NotFast
                out[key] = value
            elif tv is float:
                out[key] = _float_fast(value, parts)
            else:
                out[key] = _prepare(value, parts)
        return out
    if t is list or t is tuple:
        return [_prepare(item, parts) for item in obj]
    if t is str or obj is None or t is bool:
        return obj
    if t is int:
        if not -_MAX_SAFE_INT <= obj <= _MAX_SAFE_INT:
            raise _NotFast
        return obj
    if t is float:
        return _float_fast(obj, parts)
    raise _NotFast


def _reference(obj: Any, as_read: bool = False) -> str:
    """RFC 8785 written out plainly (slow; used only where the fast path cannot be exact).

    ``as_read``: the value was parsed from JSON, where a double of 1e16 and up that RFC 8785 writes in
    plain digits (2.5e20 is ``250000000000000000000``) comes back as an integer: such an integer, when a
    double holds it exactly, is that double again. Signing never accepts integers beyond 2**53-1."""
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if isinstance(obj, str):
        return _quote(obj)
    if isinstance(obj, int):
        if not -_MAX_SAFE_INT <= obj <= _MAX_SAFE_INT:
            if as_read and abs(obj) < 2**1024 and int(float(obj)) == obj:
                return es_number(float(obj))
            raise CanonicalizationError(f"integer {obj} is beyond +/-(2**53-1), which JSON numbers cannot hold")
        return str(int(obj))
    if isinstance(obj, float):
        return es_number(float(obj))
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(_reference(item, as_read) for item in obj) + "]"
    if isinstance(obj, Mapping):
        items = []
        for key, value in obj.items():
            if not isinstance(key, str):
                raise CanonicalizationError(f"object keys must be strings, got {type(key).__name__}")
            try:
                order = key.encode("utf-16-be")
            except UnicodeEncodeError:
                raise CanonicalizationError("object key is not valid Unicode (lone surrogate)") from None
            items.append((order, key, value))
        items.sort(key=lambda item: item[0])
        return "{" + ",".join(_quote(key) + ":" + _reference(value, as_read) for _, key, value in items) + "}"
    raise CanonicalizationError(f"{type(obj).__name__} has no JSON form")


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise CanonicalizationError("string is not valid Unicode (lone surrogate)") from None


def _slow(value: Any, as_read: bool = False) -> bytes:
    try:
        return _utf8(_reference(value, as_read))
    except RecursionError:
        raise CanonicalizationError("value is nested too deeply") from None


def canonical_json(value: Any, *, as_read: bool = False) -> bytes:
    """RFC 8785 (JSON Canonicalization Scheme) bytes of a JSON-like value.

    Handles str, int, float, bool, None, dict and list (tuples as lists), as the ``rfc8785`` package
    does; raises CanonicalizationError for values with no canonical form. ``as_read``: the value was
    parsed from JSON (see `_reference`).
    """
    parts: list[str] = []
    try:
        data = _with_numbers(orjson.dumps(_prepare(value, parts), option=orjson.OPT_SORT_KEYS), parts)
    except (_NotFast, RecursionError, TypeError):  # TypeError: orjson's (lone surrogates, deep nesting)
        return _slow(value, as_read)
    return _slow(value, as_read) if data is None else data


def _body(record: Mapping[str, Any], *, as_read: bool = False) -> bytes:
    """Canonical JSON of what a signature covers: the record less ``signature`` and top-level nulls."""
    return canonical_json({k: v for k, v in record.items() if v is not None and k != "signature"}, as_read=as_read)


_RECORD_FIELDS = tuple(name for name in FIELD_NAMES if name != "signature")
_get_record_fields = operator.attrgetter(*_RECORD_FIELDS)
_NUMBER_FIELDS = COUNT_FIELDS + QUANTITY_FIELDS
_STRING_MAPS = ("environment", "attributes")


def _record_body(record: Record) -> bytes:
    """`_body` of a validated record, faster: only the values whose type the schema leaves open (numbers,
    `factors`, map keys) are looked at; strings, booleans and string lists go to orjson as they are.
    Anything unusual (unknown fields, large integers, keys whose UTF-16 order differs) takes `_body`."""
    if record.extra:
        return _body(record.view())
    data = {k: v for k, v in zip(_RECORD_FIELDS, _get_record_fields(record), strict=True) if v is not None}
    parts: list[str] = []
    try:
        for name in _NUMBER_FIELDS:
            value = data.get(name)
            if type(value) is float:
                data[name] = _float_fast(value, parts)
            elif value is not None and not -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
                raise _NotFast
        for name in _STRING_MAPS:
            for key in data[name]:
                if not key.isascii() and max(key) >= "\ue000":
                    raise _NotFast
        if data["factors"]:
            data["factors"] = _prepare(data["factors"], parts)
        out = _with_numbers(orjson.dumps(data, option=orjson.OPT_SORT_KEYS), parts)
    except (_NotFast, RecursionError, TypeError):
        out = None
    return _body(record.view()) if out is None else out


def _with_numbers(out: bytes, parts: list[str]) -> bytes | None:
    """Put the ES number texts in place of their markers; None if a record string equals a marker."""
    for index, number in enumerate(parts):
        marker = f'"{_MARK}{index}"'.encode("ascii")
        replaced = out.replace(marker, number.encode("ascii"))
        if len(replaced) != len(out) - len(marker) + len(number):
            return None
        out = replaced
    return out


def signed_bytes(record: Mapping[str, Any] | Record) -> bytes:
    """The exact message a record's signature covers (see the module docstring)."""
    return DOMAIN + _body(record.to_dict() if isinstance(record, Record) else record)


# ---------------------------------------------------------------------------------------------------------
# sign / verify
# ---------------------------------------------------------------------------------------------------------


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def signature_for(record: Mapping[str, Any] | Record, keyring: Keyring) -> dict[str, str]:
    """The ``signature`` object for a record (any existing signature is ignored)."""
    if isinstance(record, Record):
        record = record.to_dict()
    try:
        message = _body(record)
    except CanonicalizationError as exc:
        rid = safe_record_id(record)
        raise SigningError(f"record {rid or '(no valid record_id)'} cannot be signed: {exc}") from None
    mac = keyring._macs[keyring._active].copy()
    mac.update(message)
    return {"alg": ALG, "key_id": keyring._active, "value": _b64url(mac.digest())}


def signed_line(record: Record, keyring: Keyring) -> bytes:
    """The record, validated, as one signed JSON line (no newline), from a single canonical encoding.

    The line is the canonical JSON the signature covers, then the ``signature`` member, then the schema
    fields that are null (so every line names every field, as unsigned lines do; a verifier drops them
    again), with U+2028/U+2029/U+0085 escaped as in every line. Raises SigningError when the record has
    no canonical form.
    """
    record.validate()  # _record_body relies on the schema's types
    try:
        body = _record_body(record)
    except CanonicalizationError as exc:
        rid = safe_record_id({"record_id": record.record_id})
        raise SigningError(f"record {rid or '(no valid record_id)'} cannot be signed: {exc}") from None
    mac = keyring._macs[keyring._active].copy()
    mac.update(body)
    kid = keyring._active.encode("ascii")  # key ids are [A-Za-z0-9._-]: nothing to escape
    value = base64.urlsafe_b64encode(mac.digest()).rstrip(b"=")
    nulls = [member for member, v in zip(_NULL_MEMBERS, _get_record_fields(record), strict=True) if v is None]
    parts = (body[:-1], b',"signature":{"alg":"HMAC-SHA256","key_id":"', kid, b'","value":"', value, b'"}', *nulls)
    return ensure_one_line(b"".join((*parts, b"}")))


_NULL_MEMBERS = tuple(f',"{name}":null'.encode("ascii") for name in _RECORD_FIELDS)


class RecordSigner:
    """What sinks take as ``signer``: signs each record with a keyring's active key as it is written.

    ``line(record)`` gives the signed JSON line (see `signed_line`); calling it on a record's dict form
    gives the signed dict (`sign`), for code that works with dicts.
    """

    __slots__ = ("keyring",)

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def line(self, record: Record) -> bytes:
        return signed_line(record, self.keyring)

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return sign(data, self.keyring)

    def __repr__(self) -> str:
        return f"RecordSigner({self.keyring!r})"


def sign(record: Mapping[str, Any], keyring: Keyring) -> dict[str, Any]:
    """A shallow copy of the record (dict form) with ``signature`` set by the keyring's active key."""
    out = dict(record)
    out["signature"] = signature_for(record, keyring)
    return out


def sign_record(record: Record, keyring: Keyring) -> Record:
    """Set ``record.signature`` in place (over ``record.to_dict()``) and return the record."""
    record.signature = signature_for(record.to_dict(), keyring)
    return record


def check(record: Any, keyring: Keyring | None) -> Check:
    """Verify a record in dict form and say why; constant-time comparison of the MAC.

    ``keyring`` None verifies nothing: every signed record is then ``unknown_key``.
    """
    if not isinstance(record, Mapping):
        return Check(Verdict.MALFORMED, f"record is not a JSON object (got {type(record).__name__})")
    sig = record.get("signature")
    if sig is None:
        return Check(Verdict.UNSIGNED, "record has no signature")
    if not isinstance(sig, Mapping):
        return Check(Verdict.MALFORMED, "signature is not an object")
    alg, kid, value = sig.get("alg"), sig.get("key_id"), sig.get("value")
    if alg != ALG:
        return Check(Verdict.MALFORMED, f"signature alg is missing or not {ALG!r}")
    if not isinstance(kid, str) or not kid:
        return Check(Verdict.MALFORMED, "signature key_id is missing or not a string")
    if not isinstance(value, str) or not _SIG_VALUE_RE.fullmatch(value.rstrip("=")):
        return Check(Verdict.MALFORMED, "signature value is not a base64url HMAC-SHA256 (43 characters)")
    shown_kid = repr(kid) if _KID_RE.fullmatch(kid) else "(invalid key id)"
    if keyring is None or kid not in keyring:
        return Check(Verdict.UNKNOWN_KEY, f"no key with id {shown_kid} in the keyring")
    try:
        message = _body(record, as_read=True)
    except CanonicalizationError as exc:
        return Check(Verdict.MALFORMED, f"record has no canonical JSON form: {exc}")
    expected = _b64url(keyring._mac(kid, message) or b"").encode("ascii")
    if hmac.compare_digest(expected, value.rstrip("=").encode("ascii")):
        return Check(Verdict.OK, f"signed with key {shown_kid}")
    return Check(Verdict.BAD_SIGNATURE, f"signature does not match the record (key {shown_kid})")


def verify(record: Any, keyring: Keyring | None) -> Verdict:
    """The verdict of `check`: ok | unsigned | unknown_key | bad_signature | malformed."""
    return check(record, keyring).verdict


_SAFE_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}", re.ASCII)


def safe_record_id(record: Any) -> str | None:
    """The record's ``record_id`` if it looks like an id (safe to print), else None; never other content."""
    rid = record.get("record_id") if isinstance(record, Mapping) else None
    return rid if isinstance(rid, str) and _SAFE_ID_RE.fullmatch(rid) else None
