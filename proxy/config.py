"""Proxy settings: upstream base URLs per route, timeouts, the opt-in OpenAI usage injection.

Read from a TOML file (``tailpipe proxy --config FILE``) and then from environment variables, which win
(handy on Lambda, where configuration is the environment)::

    [upstreams]                                   # TAILPIPE_PROXY_<NAME>_URL
    openai = "https://api.openai.com"
    anthropic = "https://api.anthropic.com"
    gemini = "https://generativelanguage.googleapis.com"
    mistral = "https://api.mistral.ai"

    [proxy]
    connect_timeout = 10                          # TAILPIPE_PROXY_CONNECT_TIMEOUT (seconds)
    inject_openai_stream_usage = false            # TAILPIPE_PROXY_INJECT_USAGE=1
    region = "eu-west-1"                          # TAILPIPE_PROXY_REGION (where the models run, if known)
    access_log = true                             # TAILPIPE_PROXY_ACCESS_LOG=0 to turn off
    gc_threshold = 10000                          # TAILPIPE_PROXY_GC_THRESHOLD (0: Python's own GC settings)

`TAILPIPE_PROXY_LAMBDA=1` (set by deploy/lambda/run.sh) marks records `integration=lambda` and writes
each record and flushes the sink before the response ends, because Lambda freezes the sandbox after.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tailpipe_ai.semconv import attributes as sc

DEFAULT_UPSTREAMS = {
    "openai": "https://api.openai.com",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "mistral": "https://api.mistral.ai",
}

DEFAULT_GC_THRESHOLD = 10_000
MAX_GC_THRESHOLD = 1_000_000

# Route name -> GenAI semconv provider name.
PROVIDERS = {
    "openai": sc.PROVIDER_OPENAI,
    "anthropic": sc.PROVIDER_ANTHROPIC,
    "gemini": sc.PROVIDER_GCP_GEMINI,
    "mistral": sc.PROVIDER_MISTRAL_AI,
}


class ProxyConfigError(ValueError):
    """The proxy configuration is invalid; the message says which setting and how to fix it."""


@dataclass(frozen=True)
class ProxyConfig:
    upstreams: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_UPSTREAMS))
    connect_timeout: float = 10.0
    inject_openai_stream_usage: bool = False
    region: str | None = None
    access_log: bool = True
    integration: str = sc.INTEGRATION_PROXY
    # Lambda: the environment freezes once the response ends, so the record is written and the sink
    # flushed before the response's end-of-stream marker goes out.
    flush_before_end: bool = False
    max_parse_bytes: int = 32 * 1024 * 1024  # larger bodies are forwarded but not parsed (flagged)
    # The young-generation threshold of the garbage collector in a process that runs only the proxy (the
    # CLI, Lambda; `app.settle_process`); 0 leaves Python's defaults alone.
    gc_threshold: int = DEFAULT_GC_THRESHOLD

    def with_upstreams(self, **urls: str) -> ProxyConfig:
        merged = {**self.upstreams, **urls}
        return replace(self, upstreams={k: _check_url(k, v) for k, v in merged.items()})


def _check_url(name: str, url: Any) -> str:
    if name not in PROVIDERS:
        raise ProxyConfigError(f"unknown upstream {name!r}: use one of {', '.join(PROVIDERS)}")
    if not isinstance(url, str):
        raise ProxyConfigError(f"upstream {name!r} must be a URL string, got {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ProxyConfigError(f"upstream {name!r} must be an http(s) URL like https://api.example.com, got {url!r}")
    if parts.query or parts.fragment:
        raise ProxyConfigError(f"upstream {name!r} must not have a query or fragment: {url!r}")
    return url.rstrip("/")


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ProxyConfigError(f"{name} must be true or false, got {value!r}")


def _seconds(name: str, value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ProxyConfigError(f"{name} must be a number of seconds, got {value!r}") from None
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise ProxyConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    return seconds


def _gc_threshold(value: Any) -> int:
    try:
        threshold = int(value) if not isinstance(value, (bool, float)) else None
    except (TypeError, ValueError):
        threshold = None
    if threshold is None or not 0 <= threshold <= MAX_GC_THRESHOLD:
        raise ProxyConfigError(
            f"gc_threshold must be a whole number from 0 (Python's defaults) to {MAX_GC_THRESHOLD}, got {value!r}"
        )
    return threshold


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> ProxyConfig:
    """The configuration from an optional TOML file, overridden by TAILPIPE_PROXY_* variables."""
    env = os.environ if env is None else env
    settings: dict[str, Any] = {}
    upstreams = dict(DEFAULT_UPSTREAMS)
    if path is not None:
        data = _read_toml(Path(path))
        for key, url in (data.get("upstreams") or {}).items():
            upstreams[key] = _check_url(key, url)
        proxy = data.get("proxy") or {}
        known = {"connect_timeout", "inject_openai_stream_usage", "region", "access_log", "gc_threshold"}
        unknown = sorted(set(proxy) - known)
        if unknown:
            raise ProxyConfigError(f"{path}: unknown [proxy] setting(s) {', '.join(unknown)}; known: {sorted(known)}")
        settings.update(proxy)
    for key in PROVIDERS:
        url = env.get(f"TAILPIPE_PROXY_{key.upper()}_URL")
        if url:
            upstreams[key] = _check_url(key, url)
    for var, key in (
        ("TAILPIPE_PROXY_CONNECT_TIMEOUT", "connect_timeout"),
        ("TAILPIPE_PROXY_INJECT_USAGE", "inject_openai_stream_usage"),
        ("TAILPIPE_PROXY_REGION", "region"),
        ("TAILPIPE_PROXY_ACCESS_LOG", "access_log"),
        ("TAILPIPE_PROXY_GC_THRESHOLD", "gc_threshold"),
    ):
        if env.get(var):
            settings[key] = env[var]
    lambda_mode = _bool("TAILPIPE_PROXY_LAMBDA", env.get("TAILPIPE_PROXY_LAMBDA", "0"))
    region = settings.get("region")
    if region is not None and not isinstance(region, str):
        raise ProxyConfigError(f"region must be a string like 'eu-west-1', got {region!r}")
    return ProxyConfig(
        upstreams=upstreams,
        connect_timeout=_seconds("connect_timeout", settings.get("connect_timeout", 10.0)),
        inject_openai_stream_usage=_bool(
            "inject_openai_stream_usage", settings.get("inject_openai_stream_usage", False)
        ),
        region=region or None,
        access_log=_bool("access_log", settings.get("access_log", True)),
        integration=sc.INTEGRATION_LAMBDA if lambda_mode else sc.INTEGRATION_PROXY,
        flush_before_end=lambda_mode,
        gc_threshold=_gc_threshold(settings.get("gc_threshold", DEFAULT_GC_THRESHOLD)),
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ProxyConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ProxyConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProxyConfigError(f"config file {path} is not valid TOML: {exc}") from None
