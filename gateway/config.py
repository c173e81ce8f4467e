"""The gateway's configuration file: where it listens, its limits, and the tenants with their hashed keys.

A YAML file (``tailpipe-gateway.yaml`` by default, or ``$TAILPIPE_GATEWAY_CONFIG``)::

    host: 127.0.0.1
    port: 4318
    lake: ./tailpipe-lake          # optional; default TAILPIPE_LAKE / ./tailpipe-lake
    region: aws:eu-west-1          # optional; region used when a span/resource does not say
    require_signature: false       # true: every request must carry a valid HMAC signature
    limits:
      max_body_bytes: 5242880      # compressed request body
      max_decoded_bytes: 20971520  # after gzip (OTLP recommends 20 MiB)
      max_inflight: 64             # concurrent requests before 503 + Retry-After
      tenant_rate: 0               # requests/s per tenant before 429 (0: unlimited)
    tenants:
      acme:
        keys:
          - id: k_3f9a1c
            sha256: 7d1f...        # SHA-256 of the API key; the key itself is never stored
            created: 2026-01-01T00:00:00Z

API keys are 256 random bits (``tp_`` + 43 url-safe characters), so a plain SHA-256 is enough to store
them: a slow password hash protects guessable secrets, and these are not guessable.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG = "tailpipe-gateway.yaml"
CONFIG_ENV = "TAILPIPE_GATEWAY_CONFIG"
KEY_PREFIX = "tp_"
_TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class GatewayConfigError(ValueError):
    """The configuration file is unreadable or wrong; the message says where and what to do."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int = 5 * 1024 * 1024
    max_decoded_bytes: int = 20 * 1024 * 1024
    max_inflight: int = 64
    tenant_rate: float = 0.0
    retry_after_seconds: int = 5


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    sha256: str
    tenant: str
    created: str | None = None


@dataclass(slots=True)
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 4318
    lake: str | None = None
    region: str | None = None
    require_signature: bool = False
    signature_tolerance_seconds: int = 300
    limits: Limits = field(default_factory=Limits)
    keys: dict[str, ApiKey] = field(default_factory=dict)
    """By SHA-256 hex digest of the key."""
    path: Path | None = None

    @property
    def tenants(self) -> set[str]:
        return {k.tenant for k in self.keys.values()}


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    return Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load_config(path: str | os.PathLike[str] | None = None, *, must_exist: bool = False) -> GatewayConfig:
    """Read the configuration; a missing file gives the defaults (and no tenant) unless ``must_exist``."""
    p = config_path(path)
    if not p.exists():
        if must_exist:
            raise GatewayConfigError(f"gateway config {p} does not exist; create it with `tailpipe gateway add-key`")
        return GatewayConfig(path=p)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise GatewayConfigError(f"gateway config {p}: cannot read it ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise GatewayConfigError(f"gateway config {p}: expected a mapping at the top level")
    return _parse(doc, p)


def _parse(doc: dict[str, Any], p: Path) -> GatewayConfig:
    known = {"host", "port", "lake", "region", "require_signature", "signature_tolerance_seconds", "limits", "tenants"}
    unknown = set(doc) - known
    if unknown:
        raise GatewayConfigError(f"gateway config {p}: unknown key(s) {sorted(unknown)}; expected {sorted(known)}")
    cfg = GatewayConfig(path=p)
    cfg.host = str(doc.get("host", cfg.host))
    cfg.port = _int(doc.get("port", cfg.port), "port", p, 0, 65535)
    cfg.lake = str(doc["lake"]) if doc.get("lake") else None
    cfg.region = str(doc["region"]) if doc.get("region") else None
    cfg.require_signature = bool(doc.get("require_signature", False))
    cfg.signature_tolerance_seconds = _int(doc.get("signature_tolerance_seconds", 300), "tolerance", p, 1, 3600)
    limits = doc.get("limits") or {}
    if not isinstance(limits, dict):
        raise GatewayConfigError(f"gateway config {p}: limits must be a mapping")
    base = Limits()
    cfg.limits = Limits(
        max_body_bytes=_int(limits.get("max_body_bytes", base.max_body_bytes), "limits.max_body_bytes", p, 1),
        max_decoded_bytes=_int(
            limits.get("max_decoded_bytes", base.max_decoded_bytes), "limits.max_decoded_bytes", p, 1
        ),
        max_inflight=_int(limits.get("max_inflight", base.max_inflight), "limits.max_inflight", p, 1),
        tenant_rate=float(limits.get("tenant_rate", base.tenant_rate) or 0.0),
        retry_after_seconds=_int(limits.get("retry_after_seconds", 5), "limits.retry_after_seconds", p, 1),
    )
    tenants = doc.get("tenants") or {}
    if not isinstance(tenants, dict):
        raise GatewayConfigError(f"gateway config {p}: tenants must be a mapping of tenant id -> {{keys: [...]}}")
    for tenant, body in tenants.items():
        if not isinstance(tenant, str) or not _TENANT_RE.match(tenant):
            raise GatewayConfigError(f"gateway config {p}: bad tenant id {tenant!r} (letters, digits, _ . -)")
        for entry in (body or {}).get("keys") or []:
            digest = str(entry.get("sha256", "")).lower()
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise GatewayConfigError(f"gateway config {p}: tenant {tenant}: a key has no valid sha256 digest")
            if digest in cfg.keys:
                raise GatewayConfigError(f"gateway config {p}: the same key is listed twice")
            cfg.keys[digest] = ApiKey(str(entry.get("id", digest[:8])), digest, tenant, entry.get("created"))
    return cfg


def _int(value: Any, name: str, p: Path, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        bounds = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise GatewayConfigError(f"gateway config {p}: {name} must be a whole number {bounds}, got {value!r}")
    return value


def add_key(tenant: str, path: str | os.PathLike[str] | None = None) -> tuple[str, ApiKey]:
    """Create a key for ``tenant``, store its hash in the config file (created 0600 if missing), return it.

    The key is returned once and is not recoverable afterwards.
    """
    if not _TENANT_RE.match(tenant or ""):
        raise GatewayConfigError(f"bad tenant id {tenant!r}: use 1-64 letters, digits, '_', '.' or '-'")
    p = config_path(path)
    doc: dict[str, Any] = {}
    if p.exists():
        load_config(p)  # refuse to rewrite a file we cannot parse
        doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    key = new_api_key()
    entry = ApiKey(
        id="k_" + secrets.token_hex(4),
        sha256=hash_key(key),
        tenant=tenant,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    tenants = doc.setdefault("tenants", {}) or {}
    doc["tenants"] = tenants
    body = tenants.setdefault(tenant, {}) or {}
    tenants[tenant] = body
    body.setdefault("keys", []).append({"id": entry.id, "sha256": entry.sha256, "created": entry.created})
    text = yaml.safe_dump(doc, sort_keys=False)
    tmp = p.with_name(f".{p.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, p)
    return key, entry
