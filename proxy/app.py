"""The proxy application: one aiohttp server, one shared upstream `ClientSession`, one catch-all route.

`create_app()` builds it; `serve()` runs it in the foreground (the CLI); `ProxyThread` runs it on its
own event loop in a background thread (tests, the Lambda handler). Both flush telemetry on shutdown.
Routes: `/openai/...`, `/anthropic/...`, `/gemini/...`, `/mistral/...` to the configured upstreams;
`/healthz` answers locally; any other path gets a 404 JSON naming the routes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from aiohttp import web

from .config import ProxyConfig
from .forward import Forwarder
from .telemetry import ProxyTelemetry

log = logging.getLogger("tailpipe.proxy")

MAX_REQUEST_BYTES = 256 * 1024 * 1024  # Claude Code sends multi-megabyte bodies; the provider sets the real limit
# handler_cancellation: a client that disconnects cancels its handler, and with it the upstream request.
# auto_decompress off: a gzip-compressed request body is forwarded as the client sent it.
SERVER_OPTIONS = {"handler_cancellation": True, "auto_decompress": False, "access_log": None}
_FORWARDER = web.AppKey("tailpipe_forwarder", Forwarder)
_TELEMETRY = web.AppKey("tailpipe_telemetry", ProxyTelemetry)


def create_app(config: ProxyConfig | None = None, sink: Any = None) -> web.Application:
    """The proxy as an aiohttp application. `sink` defaults to the process-wide lake sink."""
    config = config or ProxyConfig()
    if sink is None:
        from tailpipe_ai.exporter.sink import default_sink

        sink = default_sink()
    telemetry = ProxyTelemetry(config, sink)
    forwarder = Forwarder(config, telemetry)
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app[_FORWARDER] = forwarder
    app[_TELEMETRY] = telemetry
    app.router.add_route("*", "/{tail:.*}", forwarder.handle)

    async def start(_: web.Application) -> None:
        await forwarder.start()

    async def stop(_: web.Application) -> None:
        await forwarder.stop()
        await asyncio.get_running_loop().run_in_executor(None, telemetry.flush, 10.0)

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


def telemetry_of(app: web.Application) -> ProxyTelemetry:
    return app[_TELEMETRY]


def make_runner(app: web.Application) -> web.AppRunner:
    return web.AppRunner(app, **SERVER_OPTIONS)


def serve(config: ProxyConfig, host: str = "127.0.0.1", port: int = 8787, sink: Any = None) -> None:
    """Run the proxy until interrupted (SIGINT/SIGTERM); telemetry is flushed on the way out."""
    app = create_app(config, sink)
    web.run_app(app, host=host, port=port, print=None, **SERVER_OPTIONS)


class ProxyThread:
    """The proxy on its own event loop in a daemon thread: `with ProxyThread(config, sink) as p: p.url`."""

    def __init__(self, config: ProxyConfig | None = None, sink: Any = None, host: str = "127.0.0.1", port: int = 0):
        self.app = create_app(config, sink)
        self.host, self.port = host, port
        self.loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="tailpipe-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def telemetry(self) -> ProxyTelemetry:
        return telemetry_of(self.app)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        self._runner = make_runner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server  # the bound port when 0 was asked for
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]

    def start(self) -> ProxyThread:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def __enter__(self) -> ProxyThread:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
