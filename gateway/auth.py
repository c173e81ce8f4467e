"""Who is sending: API keys bound to tenants, optional HMAC request signatures, per-tenant rate limits.

Keys arrive as ``Authorization: Bearer tp_...`` and are looked up by their SHA-256 (the config file stores
only digests). A key names exactly one tenant; every record written for the request carries that tenant,
whatever the payload says.

Request signing (optional, or required with ``require_signature: true``) proves the body was not altered
and stops replays. The sender adds three headers::

    X-Tailpipe-Timestamp: 1767225600            (unix seconds)
    X-Tailpipe-Nonce:     3q2-7wE...            (16-64 of [A-Za-z0-9_-], never reused)
    X-Tailpipe-Signature: v1=<hex HMAC-SHA256>

over ``b"v1\\n<timestamp>\\n<nonce>\\nPOST\\n/v1/traces\\n" + body`` (the body exactly as sent, compressed
if it is). The HMAC key is the SHA-256 digest of the API key, so the gateway can verify without storing the
key and the sender derives it from the key it already has (``signature_headers``). A timestamp outside
the tolerance window (300 s) or a nonce seen within the window is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from .config import GatewayConfig, hash_key

TIMESTAMP_HEADER = "X-Tailpipe-Timestamp"
NONCE_HEADER = "X-Tailpipe-Nonce"
SIGNATURE_HEADER = "X-Tailpipe-Signature"
TENANT_HEADER = "X-Tailpipe-Tenant"
_NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_MAX_NONCES = 1_000_000


class AuthError(Exception):
    """A refused request: ``status`` is the HTTP status, the message is safe to send back (no secrets)."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def signing_key(api_key: str) -> bytes:
    return hashlib.sha256(api_key.encode("utf-8")).digest()


def _message(timestamp: str, nonce: str, method: str, path: str, body: bytes) -> bytes:
    return f"v1\n{timestamp}\n{nonce}\n{method.upper()}\n{path}\n".encode() + body


def signature_headers(
    api_key: str, body: bytes, *, path: str, method: str = "POST", now: float | None = None, nonce: str | None = None
) -> dict[str, str]:
    """The headers a sender adds to sign one request (a fresh nonce each call)."""
    ts = str(int(time.time() if now is None else now))
    nonce = nonce or secrets.token_urlsafe(18)
    mac = hmac.new(signing_key(api_key), _message(ts, nonce, method, path, body), hashlib.sha256).hexdigest()
    return {TIMESTAMP_HEADER: ts, NONCE_HEADER: nonce, SIGNATURE_HEADER: f"v1={mac}"}


class Authenticator:
    def __init__(self, config: GatewayConfig, clock: Callable[[], float] = time.time) -> None:
        self._keys = config.keys
        self._require_signature = config.require_signature
        self._tolerance = config.signature_tolerance_seconds
        self._rate = config.limits.tenant_rate
        self._retry_after = config.limits.retry_after_seconds
        self._clock = clock
        self._nonces: OrderedDict[str, float] = OrderedDict()
        self._buckets: dict[str, tuple[float, float]] = {}

    def tenant_for(self, headers: Mapping[str, str]) -> tuple[str, str]:
        """(tenant, key digest) for the request's bearer key; AuthError 401/403/429 otherwise."""
        auth = headers.get("Authorization")
        if not auth:
            raise AuthError(401, "missing API key: send 'Authorization: Bearer tp_...'")
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError(401, "malformed Authorization header: expected 'Bearer tp_...'")
        digest = hash_key(token)
        key = self._keys.get(digest)
        if key is None:
            raise AuthError(401, "unknown API key")
        claimed = headers.get(TENANT_HEADER)
        if claimed is not None and claimed != key.tenant:
            raise AuthError(403, "this API key does not belong to the tenant named in X-Tailpipe-Tenant")
        self._rate_limit(key.tenant)
        return key.tenant, digest

    def verify_signature(self, headers: Mapping[str, str], digest: str, method: str, path: str, body: bytes) -> None:
        """Check the HMAC headers if present (or required); AuthError 401 on any failure."""
        signature = headers.get(SIGNATURE_HEADER)
        if signature is None:
            if self._require_signature:
                raise AuthError(401, "this gateway requires signed requests (X-Tailpipe-Signature)")
            return
        ts, nonce = headers.get(TIMESTAMP_HEADER, ""), headers.get(NONCE_HEADER, "")
        if not ts.isdigit() or not _NONCE_RE.match(nonce):
            raise AuthError(401, "signed request needs X-Tailpipe-Timestamp (unix s) and X-Tailpipe-Nonce")
        now = self._clock()
        if abs(now - int(ts)) > self._tolerance:
            raise AuthError(401, f"request signature timestamp is outside the {self._tolerance} s window")
        expected = hmac.new(bytes.fromhex(digest), _message(ts, nonce, method, path, body), hashlib.sha256).hexdigest()
        given = signature.strip()
        if not given.startswith("v1=") or not hmac.compare_digest(given[3:].encode(), expected.encode()):
            raise AuthError(401, "request signature does not match")
        self._remember_nonce(digest + ":" + nonce, now)

    def _remember_nonce(self, nonce: str, now: float) -> None:
        nonces = self._nonces
        while nonces:
            first, expiry = next(iter(nonces.items()))
            if expiry > now:
                break
            del nonces[first]
        if nonce in nonces:
            raise AuthError(401, "replayed request: this nonce was already used")
        if len(nonces) >= _MAX_NONCES:
            raise AuthError(503, "too many signed requests to track; retry later", self._retry_after)
        nonces[nonce] = now + 2 * self._tolerance

    def _rate_limit(self, tenant: str) -> None:
        if self._rate <= 0:
            return
        now = self._clock()
        tokens, last = self._buckets.get(tenant, (self._rate, now))
        tokens = min(self._rate, tokens + (now - last) * self._rate)
        if tokens < 1.0:
            self._buckets[tenant] = (tokens, now)
            raise AuthError(429, f"tenant {tenant} is over its request rate; retry later", self._retry_after)
        self._buckets[tenant] = (tokens - 1.0, now)
