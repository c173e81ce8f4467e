"""A tiny threaded HTTP server on 127.0.0.1 that routes requests to fake provider handlers.

A handler gets a `Request` (method, path, query, headers, parsed JSON body) and returns a `Response`:
a JSON body, raw bytes, or a list of SSE/NDJSON frames sent one by one (optionally with a delay, to test
slow streams and time to first chunk). Every request is recorded so tests can assert what the SDK sent
(e.g. that `stream_options.include_usage` was injected).
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    raw: bytes


@dataclass
class Response:
    status: int = 200
    body: Any = None  # dict/list -> JSON; bytes -> as is
    headers: dict[str, str] = field(default_factory=dict)
    frames: Iterable[bytes] | None = None  # streamed, one write + flush per frame
    delay: float = 0.0  # seconds before each frame
    content_type: str = "application/json"


Handler = Callable[[Request], Response]


def sse(events: Iterable[tuple[str | None, Any]]) -> list[bytes]:
    """SSE frames from (event name or None, data) pairs; data dicts are JSON-encoded."""
    frames = []
    for name, data in events:
        payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        frames.append(((f"event: {name}\n" if name else "") + f"data: {payload}\n\n").encode())
    return frames


def _gzipped(resp: Response) -> Response:
    """The response gzip-compressed; a stream stays a stream (each frame ends with a sync flush)."""
    resp.headers = {**resp.headers, "Content-Encoding": "gzip"}
    if resp.frames is not None:
        comp = zlib.compressobj(wbits=31)
        frames = [comp.compress(f) + comp.flush(zlib.Z_SYNC_FLUSH) for f in resp.frames]
        frames.append(comp.flush())
        resp.frames = frames
        return resp
    data = resp.body if isinstance(resp.body, bytes) else json.dumps(resp.body).encode()
    resp.body = gzip.compress(data, mtime=0)  # no timestamp: the same answer twice is the same bytes
    return resp


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that closes a kept-alive connection early is normal in stream tests: no traceback."""


class FakeServer:
    """Start with `with FakeServer() as server:`; register handlers with `server.route(method, prefix, fn)`."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, str, Handler]] = []
        self.requests: list[Request] = []
        self.compress = False  # True: gzip answers when the request accepts it (streams: one flush per frame)
        outer = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    decoded = raw
                    if raw and (self.headers.get("Content-Encoding") or "").lower() == "gzip":
                        decoded = gzip.decompress(raw)  # a compressed request body (Claude Code sends these)
                    body = json.loads(decoded) if decoded else None
                except (ValueError, OSError, EOFError):
                    body = None
                parts = urlsplit(self.path)
                req = Request(self.command, parts.path, parse_qs(parts.query), dict(self.headers.items()), body, raw)
                outer.requests.append(req)
                handler = outer._find(self.command, parts.path)
                resp = handler(req) if handler else Response(404, {"error": {"message": "no fake route"}})
                if outer.compress and "gzip" in (self.headers.get("Accept-Encoding") or ""):
                    resp = _gzipped(resp)
                self._send(resp)

            def _send(self, resp: Response) -> None:
                if resp.frames is not None:
                    self.send_response(resp.status)
                    self.send_header("Content-Type", resp.headers.pop("Content-Type", "text/event-stream"))
                    self.send_header("Transfer-Encoding", "chunked")
                    for k, v in resp.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    try:
                        for frame in resp.frames:
                            if resp.delay:
                                time.sleep(resp.delay)
                            self.wfile.write(f"{len(frame):x}\r\n".encode() + frame + b"\r\n")
                            self.wfile.flush()
                        self.wfile.write(b"0\r\n\r\n")
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):  # the client closed the stream early
                        self.close_connection = True
                    return
                data = resp.body if isinstance(resp.body, bytes) else json.dumps(resp.body).encode()
                self.send_response(resp.status)
                self.send_header("Content-Type", resp.content_type)
                self.send_header("Content-Length", str(len(data)))
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._httpd = _QuietServer(("127.0.0.1", 0), _H)
        self._httpd.daemon_threads = True
        # No Nagle delay: small SSE frames and JSON bodies go out at once (else ~40 ms per response).
        self._httpd.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def route(self, method: str, prefix: str, handler: Handler) -> None:
        self.routes.append((method.upper(), prefix, handler))

    def _find(self, method: str, path: str) -> Handler | None:
        for m, prefix, handler in self.routes:
            if m == method and path.startswith(prefix):
                return handler
        return None

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
