"""`tailpipe proxy`: the transparent streaming proxy (docs/proxy.md).

aiohttp and the proxy package are imported only when the command runs, so `tailpipe --help` stays fast
and works without the `proxy` extra.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from tailpipe_ai._cli_output import fail as _fail


def proxy_cmd(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8787,
    config: Annotated[
        str | None, typer.Option("--config", help="TOML file with upstreams and proxy settings (docs/proxy.md).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No access log lines.")] = False,
) -> None:
    """Run the proxy: point OPENAI_BASE_URL / ANTHROPIC_BASE_URL (Claude Code too) at http://HOST:PORT/<provider>."""
    if not 0 <= port <= 65535:
        raise _fail(f"--port must be 0..65535, got {port}")
    try:
        from tailpipe_ai.proxy.app import serve
        from tailpipe_ai.proxy.config import ProxyConfigError, load_config
    except ImportError as exc:  # pragma: no cover - extras missing
        raise _fail(f"the proxy needs `pip install 'tailpipe-ai[proxy]'` ({exc.name} is missing)") from None
    try:
        cfg = load_config(config)
    except ProxyConfigError as exc:
        raise _fail(str(exc)) from None
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    if cfg.access_log and not quiet:
        logging.getLogger("tailpipe.proxy.access").setLevel(logging.INFO)
    routes = ", ".join(f"/{name} -> {url}" for name, url in cfg.upstreams.items())
    sys.stderr.write(f"tailpipe proxy on http://{host}:{port} ({routes})\n")
    try:
        serve(cfg, host=host, port=port)
    except OSError as exc:
        raise _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
