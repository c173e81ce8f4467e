"""The hot path: forward one request upstream and stream the answer back unchanged.

Request: method, path, query, headers (all but hop-by-hop ones, `Host` and our `x-tailpipe-tags`) and
body bytes exactly as received (a gzip-compressed body stays compressed). Response: status, headers (all
but hop-by-hop) and body bytes as they arrive, never decompressed; a copy feeds the usage scanner after
each chunk has been written. The record is handed to the telemetry thread after the last byte.

Failures: an upstream that never answers gives a 502 with a JSON body saying so; an upstream that breaks
mid-stream breaks the client's stream the same way (the connection is closed without the final chunk);
a client that goes away cancels the upstream request (aiohttp cancels the handler: the server runs with
`handler_cancellation=True`). No read timeout on bodies: long silent streams (extended thinking) live.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
from aiohttp import web
from yarl import URL

from . import usage
from .config import ProxyConfig
from .inject import UsageChunkStripper, with_include_usage
from .telemetry import Exchange, ProxyTelemetry, log_once

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_REQUEST_DROP = HOP_BY_HOP | {"host", "content-length", "x-tailpipe-tags", "expect"}
_RESPONSE_DROP = HOP_BY_HOP | {"content-length"}
# Headers aiohttp would otherwise add on its own: the upstream gets only what the client sent.
_SKIP_AUTO = frozenset({"User-Agent", "Accept", "Accept-Encoding", "Content-Type"})
_ATTRIBUTION = frozenset(
    {
        "x-tailpipe-tags",
        "user-agent",
        "x-claude-code-session-id",
        "x-claude-code-agent-id",
        "x-claude-code-parent-agent-id",
    }
)
READ_WHOLE_MAX = 4 * 1024 * 1024  # a non-streamed body up to this size is read, then sent in one write


def _drop_listed(headers, base: frozenset[str]) -> frozenset[str]:
    """Hop-by-hop headers plus any the `Connection` header names (RFC 9110 7.6.1)."""
    listed = headers.get("Connection")
    if not listed:
        return base
    return base | {h.strip().lower() for h in listed.split(",") if h.strip()}


def split_headers(headers, drop: frozenset[str]) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """One pass over the request headers: those forwarded (all but `drop`), and the attribution ones kept
    for the record (lower-case names, first value; `x-tailpipe-tags` is kept although never forwarded).

    A list, not a CIMultiDict: aiohttp copies the headers into its own CIMultiDict anyway."""
    forwarded = []
    kept: dict[str, str] = {}
    for name, value in headers.items():
        low = name.lower()
        if low in _ATTRIBUTION and low not in kept:
            kept[low] = value
        if low not in drop:
            forwarded.append((name, value))
    return forwarded, kept


def error_response(status: int, kind: str, message: str) -> web.Response:
    body = {"error": {"type": kind, "message": message, "source": "tailpipe-proxy"}}
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json")


class Forwarder:
    """Routes `/<name>/...` to the upstream configured for `<name>` and forwards the exchange."""

    def __init__(self, config: ProxyConfig, telemetry: ProxyTelemetry) -> None:
        self.config = config
        self.telemetry = telemetry
        self.session: aiohttp.ClientSession | None = None
        self.routes = {"/" + name: (name, base) for name, base in config.upstreams.items()}

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
        self.session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, connect=self.config.connect_timeout, sock_read=None),
            cookie_jar=aiohttp.DummyCookieJar(),  # never keep cookies between clients
            skip_auto_headers=_SKIP_AUTO,
        )

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        slash = path.find("/", 1)
        prefix = path if slash < 0 else path[:slash]
        target = self.routes.get(prefix)
        if target is None:
            if path in ("/healthz", "/"):
                return web.json_response({"status": "ok", "routes": sorted(r[1:] for r in self.routes)})
            return error_response(
                404,
                "proxy_no_route",
                f"tailpipe proxy: no upstream for {prefix!r}; use one of {', '.join(sorted(self.routes))}",
            )
        route, base = target
        rest = request.raw_path[len(prefix) :] or "/"
        return await self.forward(request, route, base, rest, path[len(prefix) :] or "/")

    async def forward(self, request: web.Request, route: str, base: str, rest: str, rest_path: str):
        t0 = time.perf_counter()
        start_ns = time.time_ns()
        method = request.method
        body = await request.read()
        in_headers = request.headers
        headers, kept = split_headers(in_headers, _drop_listed(in_headers, _REQUEST_DROP))
        ep = usage.endpoint(route, method, rest_path)
        exchange = None
        strip = None
        if ep is not None and self.telemetry.begin():
            encoding = in_headers.get("Content-Encoding")
            exchange = Exchange(
                ep,
                method,
                request.path,
                body,
                encoding,
                kept,
                start_ns,
                t0,
            )
            if self.config.inject_openai_stream_usage and ep.kind == "chat" and route == "openai":
                injected = with_include_usage(body, encoding)
                if injected is not None:
                    body, strip = injected, UsageChunkStripper()
                    headers = [item for item in headers if item[0].lower() != "content-encoding"]
        try:
            return await self._exchange(request, method, base + rest, route, base, headers, body, exchange, strip)
        finally:
            if exchange is not None and not exchange.submitted:  # an unexpected exit: still recorded
                self._finish(exchange, exchange.status, complete=False)

    async def _exchange(self, request, method, url, route, base, headers, body, exchange, strip):
        session = self.session
        assert session is not None, "Forwarder.start() was not awaited"
        try:
            upstream = await session.request(
                method,
                URL(url, encoded=True),
                headers=headers,
                data=body if body else None,
                allow_redirects=False,
            )
        except asyncio.CancelledError:
            if exchange is not None:
                self._finish(exchange, 0, complete=False, aborted=True)
            raise
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            if exchange is not None:
                exchange.upstream_failed = type(exc).__name__
                self._finish(exchange, 502, complete=False)
            return error_response(
                502,
                "proxy_upstream_unreachable",
                f"tailpipe proxy: the {route} upstream ({URL(base).host}) did not answer ({type(exc).__name__}); "
                "check the upstream URL and the network, then retry",
            )
        try:
            return await self._relay(request, upstream, exchange, strip)
        finally:
            upstream.close()  # a no-op once fully read; closes (never reuses) a half-read connection

    async def _relay(self, request, upstream, exchange, strip):
        up_headers = upstream.headers
        drop = _drop_listed(up_headers, _RESPONSE_DROP)
        headers = [item for item in up_headers.items() if item[0].lower() not in drop]  # copied by the response
        status = upstream.status
        ctype = up_headers.get("Content-Type", "")
        encoding = up_headers.get("Content-Encoding")
        length = upstream.content_length
        sse = ctype.startswith("text/event-stream")
        if exchange is not None:
            exchange.ttfb = time.perf_counter()

        if (not sse and length is not None and length <= READ_WHOLE_MAX) or request.method == "HEAD":
            try:
                data = await upstream.read()
            except asyncio.CancelledError:
                if exchange is not None:
                    self._finish(exchange, status, complete=False, aborted=True)
                raise
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                return self._broken(request, exchange, status, exc)
            if request.method == "HEAD" and length is not None:
                headers.append(("Content-Length", str(length)))
            response = web.Response(status=status, reason=upstream.reason, headers=headers, body=data or None)
            if exchange is not None:
                if encoding:
                    scan = usage.BodyScan(encoding, self.config.max_parse_bytes)
                    scan.feed(data)
                    exchange.scan = scan
                else:
                    exchange.body = data
                if self.config.flush_before_end:
                    await self._finish_now(exchange, status)
                else:
                    # Sent here rather than by aiohttp after we return, so that the record is handed over
                    # after the last byte: waking the telemetry thread first delayed the answer.
                    sent = False
                    try:
                        await response.prepare(request)
                        await response.write_eof()
                        sent = True
                    except ConnectionResetError:  # the client left while the answer was written
                        pass
                    finally:
                        if sent:
                            self._finish(exchange, status)
                        else:
                            self._finish(exchange, status, complete=False, aborted=True)
            return response

        if strip is not None and (encoding or not sse):
            strip = None  # compressed (or not a stream): forwarded untouched, the extra chunk stays
            if exchange is not None:
                exchange.extra_flags = (usage.FLAG_USAGE_CHUNK_KEPT,)
        if length is not None and strip is None:
            headers.append(("Content-Length", str(length)))
        response = web.StreamResponse(status=status, reason=upstream.reason, headers=headers)
        scan = None
        if exchange is not None:
            if sse and status < 400:
                scan = usage.StreamScan(exchange.endpoint, encoding, self.config.max_parse_bytes)
                exchange.streamed = True
            else:
                scan = usage.BodyScan(encoding, self.config.max_parse_bytes)
            exchange.scan = scan
        try:
            await response.prepare(request)
            if scan is None:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            elif strip is None:
                feed = scan.feed
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                    feed(chunk)
            else:
                feed = scan.feed
                async for chunk in upstream.content.iter_any():
                    out = strip(chunk)
                    if out:
                        await response.write(out)
                    feed(chunk)
                tail = strip.flush()
                if tail:
                    await response.write(tail)
        except asyncio.CancelledError:
            if exchange is not None:
                self._hung_up(exchange, status)
            raise
        except ConnectionResetError:  # the client went away mid-stream: stop reading upstream
            if exchange is not None:
                self._hung_up(exchange, status)
            return response
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            return self._broken(request, exchange, status, exc, response)
        if exchange is None:
            await response.write_eof()
            return response
        if scan is not None:
            scan.close()
        if self.config.flush_before_end:
            await self._finish_now(exchange, status)
            await response.write_eof()
            return response
        try:
            await response.write_eof()
        except ConnectionResetError:
            pass
        finally:
            # After the last byte, so the telemetry thread's wake-up never delays it. Every byte of the
            # answer went out before the terminator: a client that hangs up instead of reading it (SDKs
            # do, once they read the last event) still got a complete stream.
            self._finish(exchange, status)
        return response

    def _broken(self, request, exchange, status, exc, response=None):
        """The upstream broke after answering: break the client's response the same way."""
        if exchange is not None:
            exchange.upstream_failed = type(exc).__name__
            self._finish(exchange, status, complete=False)
        transport = request.transport
        if transport is not None:
            transport.close()
        if response is None:
            message = f"tailpipe proxy: the upstream closed the connection mid-answer ({type(exc).__name__})"
            return error_response(502, "proxy_upstream_broken", message)
        return response

    def _hung_up(self, exchange: Exchange, status: int) -> None:
        """The client left while we streamed. After the stream's last event (SDKs close the connection
        as soon as they read it) nothing was lost; before it, the record is flagged as cut short."""
        scan = exchange.scan
        if isinstance(scan, usage.StreamScan) and scan.ended:
            scan.close()
            self._finish(exchange, status)
        else:
            self._finish(exchange, status, complete=False, aborted=True)

    def _finish(self, exchange: Exchange, status: int, *, complete: bool = True, aborted: bool = False) -> None:
        if exchange.submitted:
            return
        exchange.submitted = True
        try:
            exchange.t_end = time.perf_counter()
            exchange.status = status
            exchange.complete = complete
            exchange.client_aborted = aborted
            if not complete and exchange.scan is not None:
                exchange.scan.close()
            self.telemetry.submit(exchange)
        except Exception as exc:  # telemetry never breaks traffic
            log_once("finish", exc)

    async def _finish_now(self, exchange: Exchange, status: int) -> None:
        """Lambda: write the record and flush the sink before the response ends (the sandbox freezes after)."""
        exchange.submitted = True
        exchange.t_end = time.perf_counter()
        exchange.status = status
        telemetry = self.telemetry
        loop = asyncio.get_running_loop()

        def write_and_flush() -> None:
            try:
                telemetry.process(exchange)
            except Exception as exc:
                log_once("record", exc)
            finally:
                telemetry.done()
            try:
                telemetry.sink.flush(5.0)  # only the sink: other calls in flight are not waited for
            except Exception as exc:
                log_once("flush", exc)

        await loop.run_in_executor(None, write_and_flush)
