"""The OTLP/HTTP server: ``POST /v1/traces`` and ``POST /v1/metrics`` (aiohttp).

Each request goes through, in order: overload check (503 + Retry-After), declared size (413), API key
(401/403, per-tenant rate 429 + Retry-After), content type and encoding (415), body read with a hard
cap (413), HMAC signature (401), decompression with a cap (413: gzip bombs stop at the limit), decoding
(400), then ingestion. A refused request writes nothing. Error bodies are ``google.rpc.Status`` in the
request's format and never quote the payload.

Decoding and record building run on the event loop: they are CPU work measured in microseconds per span
(benchmarks/gateway.py), and ``max_inflight`` bounds how much can queue up behind them.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from .auth import Authenticator, AuthError
from .config import GatewayConfig
from .ingest import Ingestor
from .otlp import JSON, PROTOBUF, OtlpError, content_type, decompress, encode_message, parse, status_body

log = logging.getLogger("tailpipe_ai.gateway")

INGESTOR_KEY: web.AppKey[Ingestor] = web.AppKey("tailpipe_ingestor", Ingestor)


class Gateway:
    """Holds the config, authenticator and ingestor; ``app()`` builds the aiohttp application."""

    def __init__(self, config: GatewayConfig, ingestor: Ingestor, authenticator: Authenticator | None = None) -> None:
        self.config = config
        self.ingestor = ingestor
        self.auth = authenticator or Authenticator(config)
        self._inflight = 0
        self.refused: dict[int, int] = {}

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.limits.max_body_bytes + 1)
        app[INGESTOR_KEY] = self.ingestor
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_post("/v1/metrics", self._metrics)
        app.router.add_get("/healthz", self._health)
        return app

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _traces(self, request: web.Request) -> web.Response:
        return await self._handle(request, ExportTraceServiceRequest, "traces")

    async def _metrics(self, request: web.Request) -> web.Response:
        return await self._handle(request, ExportMetricsServiceRequest, "metrics")

    async def _handle(self, request: web.Request, message_type: type, signal: str) -> web.Response:
        media = JSON if (request.content_type or "").lower() == JSON else PROTOBUF  # for error bodies
        limits = self.config.limits
        if self._inflight >= limits.max_inflight:
            return self._refuse(503, "gateway overloaded; retry later", media, limits.retry_after_seconds)
        self._inflight += 1
        try:
            if request.content_length is not None and request.content_length > limits.max_body_bytes:
                return self._refuse(413, f"request body is larger than {limits.max_body_bytes} bytes", media)
            tenant, digest = self.auth.tenant_for(request.headers)
            media = content_type(request.headers.get("Content-Type"))
            body = await _read_capped(request, limits.max_body_bytes)
            self.auth.verify_signature(request.headers, digest, request.method, request.path, body)
            raw = decompress(body, request.headers.get("Content-Encoding"), limits.max_decoded_bytes)
            message = parse(raw, media, message_type)
            if signal == "traces":
                result = self.ingestor.traces(message, tenant)
                response: Any = ExportTraceServiceResponse()
                if result.rejected:
                    response.partial_success.rejected_spans = result.rejected
            else:
                result = self.ingestor.metrics(message, tenant)
                response = ExportMetricsServiceResponse()
                if result.rejected:
                    response.partial_success.rejected_data_points = result.rejected
            if result.rejected:
                response.partial_success.error_message = result.message
            return web.Response(body=encode_message(response, media), content_type=media)
        except AuthError as exc:
            return self._refuse(exc.status, str(exc), media, exc.retry_after)
        except OtlpError as exc:
            return self._refuse(exc.status, str(exc), media)
        except Exception as exc:  # never a traceback or payload back to the sender
            log.warning("tailpipe gateway: internal error on %s (%s)", signal, type(exc).__name__)
            return self._refuse(503, "internal error; retry later", media, self.config.limits.retry_after_seconds)
        finally:
            self._inflight -= 1

    def _refuse(self, status: int, message: str, media: str, retry_after: int | None = None) -> web.Response:
        self.refused[status] = self.refused.get(status, 0) + 1
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        return web.Response(
            status=status, body=status_body(status, message, media), content_type=media, headers=headers
        )


async def _read_capped(request: web.Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise OtlpError(413, f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def build_gateway(config: GatewayConfig, *, sink: Any = None, telemetry: Any = None) -> Gateway:
    """A gateway writing to ``sink`` (default: the local lake of ``config.lake``, records signed when
    TAILPIPE_SIGNING_KEYS is set)."""
    if sink is None:
        from tailpipe_ai.exporter.local_lake import LocalLakeSink
        from tailpipe_ai.exporter.sink import signer_from_env

        sink = LocalLakeSink(config.lake, signer=signer_from_env())
    return Gateway(config, Ingestor(sink, region=config.region, telemetry=telemetry))


async def start(gateway: Gateway, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner and the bound port (``port=0`` picks a free one).

    Request bodies are not decompressed by aiohttp (``auto_decompress=False``): ``otlp.decompress`` does it
    with a cap, so a gzip bomb stops at the limit instead of filling memory.
    """
    runner = web.AppRunner(gateway.app(), auto_decompress=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server  # the asyncio server: the only place the bound port is known for port 0
    bound = server.sockets[0].getsockname()[1] if server is not None and server.sockets else port
    return runner, bound


class GatewayThread:
    """A gateway served from a background thread (tests, benchmarks, embedding)::

    with GatewayThread(gateway) as gw:
        post(gw.url + "/v1/traces", ...)
    """

    def __init__(self, gateway: Gateway, host: str = "127.0.0.1", port: int = 0) -> None:
        self.gateway, self.host, self.port = gateway, host, port
        self.url = ""
        self._loop: Any = None
        self._thread: Any = None
        self._runner: web.AppRunner | None = None

    def __enter__(self) -> GatewayThread:
        import asyncio
        import threading

        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            try:
                self._runner, self.port = self._loop.run_until_complete(start(self.gateway, self.host, self.port))
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="tailpipe-gateway", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        self.url = f"http://{self.host}:{self.port}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)


def serve(gateway: Gateway, host: str, port: int) -> None:
    """Serve until interrupted (the CLI)."""
    import asyncio

    async def main() -> None:
        runner, bound = await start(gateway, host, port)

        print(f"tailpipe gateway listening on http://{host}:{bound}  (POST /v1/traces, /v1/metrics)", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
