"""The proxy server: aiohttp's low-level HTTP server, one shared upstream `ClientSession`, one handler.

`Proxy` holds the forwarder and its telemetry; `serve()` runs it in the foreground (the CLI) and
`ProxyThread` on its own event loop in a background thread (tests, the Lambda handler). Both flush
telemetry on shutdown. Routes: `/openai/...`, `/anthropic/...`, `/gemini/...`, `/mistral/...` to the
configured upstreams; `/healthz` answers locally; any other path gets a 404 JSON naming the routes.

The low-level server (`aiohttp.web.Server`) is aiohttp's documented server without the application
layer: routing by prefix is the forwarder's own, so the router, middlewares and `Request` objects of
`web.Application` were work on every request for nothing (measured: 31k instructions, ~4.5% of a
minimal pass-through's request).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
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
SHUTDOWN_SECONDS = 60.0  # how long a stopping proxy lets answers in flight finish


class Proxy:
    """The forwarder and its telemetry; `server()` makes the HTTP server that feeds it (in a running loop)."""

    def __init__(self, config: ProxyConfig | None = None, sink: Any = None) -> None:
        self.config = config or ProxyConfig()
        if sink is None:
            from tailpipe_ai.exporter.sink import default_sink

            sink = default_sink()
        self.telemetry = ProxyTelemetry(self.config, sink)
        self.forwarder = Forwarder(self.config, self.telemetry)

    def server(self) -> web.Server:
        return web.Server(self.forwarder.handle, request_factory=self._request, **SERVER_OPTIONS)

    @staticmethod
    def _request(message, payload, protocol, writer, task) -> web.BaseRequest:
        """A request whose body may be as large as the providers accept (aiohttp's default is 1 MiB)."""
        return web.BaseRequest(
            message, payload, protocol, writer, task, asyncio.get_running_loop(), client_max_size=MAX_REQUEST_BYTES
        )

    async def start(self) -> web.ServerRunner:
        """Open the upstream session, then the server: a runner to bind to sites and clean up at the end."""
        await self.forwarder.start()
        runner = web.ServerRunner(self.server(), handle_signals=False, shutdown_timeout=SHUTDOWN_SECONDS)
        await runner.setup()
        return runner

    async def stop(self, runner: web.ServerRunner | None) -> None:
        """Stop accepting, let answers in flight end, close the upstream session, write every record."""
        try:
            if runner is not None:
                await runner.cleanup()
        finally:
            await self.forwarder.stop()
            await asyncio.get_running_loop().run_in_executor(None, self.telemetry.flush, 10.0)


def settle_process(gc_threshold: int) -> None:
    """Set up a process whose only job is the proxy (the CLI, Lambda) before it takes requests: never called
    for a proxy inside someone else's program (`ProxyThread` alone).

    Calls wait up to `ProxyTelemetry.batch_seconds` for their record, so a few thousand container objects
    are alive between batches. With CPython's default young-generation threshold (700) they started a
    collection every ~10 ms; surviving it promoted them, and the promotions set off full collections of the
    whole heap (~67,000 objects: aiohttp, the price and carbon data) about once a second: 6% of the proxy's
    CPU, and a ~20 ms pause of the event loop each time (benchmarks/README.md, proxy). A threshold above one
    batch's objects leaves them to reference counting, and the objects startup built (loaded here rather
    than at the first record) are frozen out of the collections that still run. 0 changes nothing."""
    if gc_threshold <= 0:
        return
    try:
        from tailpipe_ai.carbon import datasets, pricing

        datasets.load()
        pricing.load()
    except Exception as exc:  # the records will say what is wrong; the proxy still forwards
        log.warning("tailpipe proxy: carbon or price data did not load at startup (%s)", type(exc).__name__)
    gc.collect()
    gc.freeze()
    gc.set_threshold(gc_threshold, *gc.get_threshold()[1:])


def serve(config: ProxyConfig, host: str = "127.0.0.1", port: int = 8787, sink: Any = None) -> None:
    """Run the proxy until interrupted (SIGINT/SIGTERM); telemetry is flushed on the way out."""
    with contextlib.suppress(KeyboardInterrupt):  # where signal handlers cannot be installed (Windows)
        asyncio.run(_serve(Proxy(config, sink), host, port))


async def _serve(proxy: Proxy, host: str, port: int) -> None:
    runner = None
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        runner = await proxy.start()
        settle_process(proxy.config.gc_threshold)  # ~0.2 s of loading: before the port accepts anyone
        await web.TCPSite(runner, host, port).start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows: Ctrl-C still works
                loop.add_signal_handler(sig, stopping.set)
        await stopping.wait()
    finally:
        await proxy.stop(runner)


class ProxyThread:
    """The proxy on its own event loop in a daemon thread: `with ProxyThread(config, sink) as p: p.url`."""

    def __init__(self, config: ProxyConfig | None = None, sink: Any = None, host: str = "127.0.0.1", port: int = 0):
        self.proxy = Proxy(config, sink)
        self.host, self.port = host, port
        self.loop = asyncio.new_event_loop()
        self._runner: web.ServerRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="tailpipe-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def telemetry(self) -> ProxyTelemetry:
        return self.proxy.telemetry

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
        self._runner = await self.proxy.start()
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
        asyncio.run_coroutine_threadsafe(self.proxy.stop(self._runner), self.loop).result(SHUTDOWN_SECONDS + 15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def __enter__(self) -> ProxyThread:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
