"""Lambda entry point for the buffered invoke mode (API Gateway HTTP API, or a Function URL with
`InvokeMode: BUFFERED`): `tailpipe_ai.proxy.lambda_handler.handler`.

The same proxy app runs in-process, on its own event loop in a background thread, started once per
execution environment and reused by every invocation. Each event (payload format 2.0, which both API
Gateway HTTP APIs and Function URLs send; 1.0 REST-style events are accepted too) becomes one loopback
HTTP request to it; the answer becomes the Lambda response. Telemetry is flushed before the handler
returns, because Lambda freezes the environment afterwards.

For streamed answers (Function URL with `RESPONSE_STREAM`) use the Lambda Web Adapter instead:
deploy/lambda/run.sh starts `tailpipe proxy` as a web server and the adapter streams its responses
(docs/lambda.md). Buffered mode returns a stream only once it has ended (6 MB response limit).
"""

from __future__ import annotations

import base64
import http.client
import os
import threading
from typing import Any
from urllib.parse import urlsplit

from .app import ProxyThread, settle_process
from .config import load_config

_proxy: ProxyThread | None = None
_lock = threading.Lock()
_TEXT_TYPES = ("text/", "application/json", "application/problem+json")


def proxy() -> ProxyThread:
    """The environment's proxy, started on first use (a cold start) from TAILPIPE_PROXY_* variables."""
    global _proxy
    with _lock:
        if _proxy is None:
            env = {**os.environ, "TAILPIPE_PROXY_LAMBDA": "1"}
            config = load_config(os.environ.get("TAILPIPE_PROXY_CONFIG"), env=env)
            _proxy = ProxyThread(config).start()
            settle_process(config.gc_threshold)  # the execution environment runs nothing else
        return _proxy


def handler(event: dict[str, Any], context: Any = None, *, target: ProxyThread | None = None) -> dict[str, Any]:
    """Forward one API Gateway / Function URL event through the proxy; returns the buffered response."""
    p = target or proxy()
    method, path, headers, body = _request_of(event)
    netloc = urlsplit(p.url).netloc
    conn = http.client.HTTPConnection(netloc, timeout=None)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", netloc)
        for name, value in headers:
            conn.putheader(name, value)
        if body or method in ("POST", "PUT", "PATCH"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body if body else None)
        resp = conn.getresponse()
        data = resp.read()
        out_headers = resp.getheaders()
        status = resp.status
    finally:
        conn.close()
    p.telemetry.flush(10.0)  # the environment may freeze as soon as we return
    return _response_of(status, out_headers, data)


def _request_of(event: dict[str, Any]) -> tuple[str, str, list[tuple[str, str]], bytes]:
    if not isinstance(event, dict):
        raise ValueError("tailpipe proxy: the Lambda event is not an API Gateway / Function URL event (not an object)")
    ctx = event.get("requestContext") or {}
    if "rawPath" in event:  # payload format 2.0 (HTTP API, Function URL)
        method = (ctx.get("http") or {}).get("method") or "GET"
        path = event.get("rawPath") or "/"
        stage = ctx.get("stage")
        if stage and stage != "$default" and path.startswith(f"/{stage}/"):
            path = path[len(stage) + 1 :]
        query = event.get("rawQueryString") or ""
    elif "httpMethod" in event:  # payload format 1.0 (REST API)
        method = event["httpMethod"]
        path = event.get("path") or "/"
        multi = event.get("multiValueQueryStringParameters") or {}
        from urllib.parse import urlencode

        query = (
            urlencode([(k, v) for k, vs in multi.items() for v in vs])
            if multi
            else urlencode(event.get("queryStringParameters") or {})
        )
    else:
        raise ValueError("tailpipe proxy: the Lambda event has neither rawPath (format 2.0) nor httpMethod (1.0)")
    headers: list[tuple[str, str]] = []
    multi_headers = event.get("multiValueHeaders") or {}
    for name, value in (event.get("headers") or {}).items():
        if name.lower() in ("host", "content-length"):
            continue
        if name in multi_headers:
            headers.extend((name, v) for v in multi_headers[name])
        else:
            headers.append((name, value))
    cookies = event.get("cookies")
    if cookies:
        headers.append(("Cookie", "; ".join(cookies)))
    raw = event.get("body") or ""
    body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode("utf-8")
    return method, path + (f"?{query}" if query else ""), headers, body


def _response_of(status: int, headers: list[tuple[str, str]], data: bytes) -> dict[str, Any]:
    out: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key in ("transfer-encoding", "connection", "keep-alive"):
            continue
        if key == "set-cookie":
            cookies.append(value)
        else:
            out[key] = f"{out[key]},{value}" if key in out else value
    ctype = out.get("content-type", "")
    text = not out.get("content-encoding") and ctype.startswith(_TEXT_TYPES)
    if text:
        try:
            body, b64 = data.decode("utf-8"), False
        except UnicodeDecodeError:
            body, b64 = base64.b64encode(data).decode("ascii"), True
    else:
        body, b64 = base64.b64encode(data).decode("ascii"), True
    response: dict[str, Any] = {"statusCode": status, "headers": out, "body": body, "isBase64Encoded": b64}
    if cookies:
        response["cookies"] = cookies
    return response
