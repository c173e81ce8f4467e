"""A fake Anthropic Messages API (first party, Bedrock and Vertex AI routes) for the loopback `FakeServer`.

The requested model picks the scenario, so a test needs nothing but the model name:

- any other model: a normal answer with cache and thinking tokens (`USAGE`); streams end with a
  ``message_delta`` that repeats the input side, as the API does today;
- ``fake-legacy-delta``: streamed ``message_delta`` carries only the output side (older API);
- ``fake-no-usage``: no ``usage`` anywhere;
- ``fake-malformed``: usage values of the wrong types/shapes;
- ``fake-slow``: each stream frame is sent after `SLOW_DELAY` seconds;
- ``fake-stream-error``: the stream breaks with an ``overloaded_error`` event after ``message_start``;
- ``fake-error-<status>`` (400, 401, 429, 500, 529): the provider's error JSON with that status.

The answer's text echoes the last user message, so privacy tests can check that response content (not
only prompts) never leaves the process. Bedrock routes live under `BEDROCK_PREFIX` and Vertex routes under
`VERTEX_PREFIX`, so this fake can share a server with the boto3 Bedrock fake.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any
from urllib.parse import unquote

from .server import FakeServer, Request, Response, sse

BEDROCK_PREFIX = "/anthropic-bedrock"
VERTEX_PREFIX = "/anthropic-vertex/v1"
SLOW_DELAY = 0.05
MESSAGE_ID = "msg_fake_0001"
REQUEST_ID = "req_fake_0001"
COUNT_TOKENS = 42

# Raw Anthropic usage of the normal scenario, and the semconv figures it normalises to.
USAGE = {
    "input_tokens": 25,
    "cache_creation_input_tokens": 100,
    "cache_read_input_tokens": 1000,
    "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 0},
    "output_tokens": 40,
    "output_tokens_details": {"thinking_tokens": 12},
    "service_tier": "standard",
}
EXPECTED = {"input": 1125, "output": 40, "cache_read": 1000, "cache_write": 100, "reasoning": 12}
MALFORMED_USAGE = {
    "input_tokens": "25",
    "cache_creation_input_tokens": {"tokens": 3},
    "cache_read_input_tokens": [1000],
    "output_tokens": -4,
    "output_tokens_details": "lots",
}

_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def install(server: FakeServer) -> None:
    """Register the first-party, Bedrock and Vertex routes on `server`."""
    server.route("POST", "/v1/messages/count_tokens", _count_tokens)
    server.route("POST", "/v1/messages", _first_party)
    server.route("POST", BEDROCK_PREFIX + "/model/", _bedrock)
    server.route("POST", VERTEX_PREFIX + "/projects/", _vertex)


def bedrock_base_url(server: FakeServer) -> str:
    return server.url + BEDROCK_PREFIX


def vertex_base_url(server: FakeServer) -> str:
    return server.url + VERTEX_PREFIX


# ---------------------------------------------------------------------------------------------------------
# routes
# ---------------------------------------------------------------------------------------------------------


def _count_tokens(req: Request) -> Response:
    return Response(body={"input_tokens": COUNT_TOKENS}, headers={"request-id": REQUEST_ID})


def _first_party(req: Request) -> Response:
    body = req.body if isinstance(req.body, dict) else {}
    return _answer(str(body.get("model", "")), body, bool(body.get("stream")), _sse_frames)


def _bedrock(req: Request) -> Response:
    # /model/{model}/invoke or /model/{model}/invoke-with-response-stream; the model is not in the body.
    rest = req.path[len(BEDROCK_PREFIX + "/model/") :]
    model, _, action = rest.rpartition("/")
    body = req.body if isinstance(req.body, dict) else {}
    stream = action == "invoke-with-response-stream"
    resp = _answer(unquote(model), body, stream, _eventstream_frames)
    if resp.status >= 400:  # Bedrock's error shape
        message = resp.body["error"]["message"]
        resp.body = {"message": message}
        resp.headers["x-amzn-ErrorType"] = "ThrottlingException" if resp.status == 429 else "InternalServerException"
    return resp


def _vertex(req: Request) -> Response:
    # /projects/{p}/locations/{region}/publishers/anthropic/models/{model}:rawPredict | :streamRawPredict
    tail = unquote(req.path.rsplit("/models/", 1)[-1])
    model, _, specifier = tail.rpartition(":")
    body = req.body if isinstance(req.body, dict) else {}
    return _answer(model, body, specifier == "streamRawPredict", _sse_frames)


# ---------------------------------------------------------------------------------------------------------
# answers
# ---------------------------------------------------------------------------------------------------------


def _answer(model: str, body: dict, stream: bool, framer) -> Response:
    headers = {"request-id": REQUEST_ID}
    if model.startswith("fake-error-"):
        status = int(model.rsplit("-", 1)[1])
        kind = _ERRORS.get(status, "api_error")
        error = {"type": "error", "error": {"type": kind, "message": f"fake {kind}"}, "request_id": REQUEST_ID}
        return Response(status=status, body=error, headers=headers)
    text = _echo(body)
    if not stream:
        return Response(body=message(model, text, _final_usage(model)), headers=headers)
    frames, content_type = framer(_events(model, text))
    headers["Content-Type"] = content_type
    return Response(frames=frames, headers=headers, delay=SLOW_DELAY if model == "fake-slow" else 0.0)


def message(model: str, text: str, usage: Any) -> dict:
    """A Message body as the API returns it."""
    out: dict[str, Any] = {
        "id": MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
    }
    if usage is not None:
        out["usage"] = usage
    return out


def _final_usage(model: str) -> Any:
    if model == "fake-no-usage":
        return None
    if model == "fake-malformed":
        return MALFORMED_USAGE
    return dict(USAGE)


def _events(model: str, text: str) -> list[tuple[str, dict]]:
    """The stream of one answer: message_start, one text block in three deltas, message_delta, message_stop."""
    start_usage: Any = {k: v for k, v in USAGE.items() if k != "output_tokens_details"}
    start_usage["output_tokens"] = 1  # a placeholder: the total arrives in message_delta
    delta_usage: Any = dict(USAGE)
    if model == "fake-legacy-delta":
        delta_usage = {"output_tokens": USAGE["output_tokens"], "output_tokens_details": USAGE["output_tokens_details"]}
    elif model == "fake-no-usage":
        start_usage = delta_usage = None
    elif model == "fake-malformed":
        start_usage, delta_usage = MALFORMED_USAGE, {"output_tokens": "forty"}
    start = message(model, "", start_usage)
    start["content"], start["stop_reason"] = [], None
    third = max(1, len(text) // 3)
    pieces = [text[:third], text[third : 2 * third], text[2 * third :]]
    events: list[tuple[str, dict]] = [("message_start", {"type": "message_start", "message": start})]
    events.append(
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )
    )
    events.append(("ping", {"type": "ping"}))
    if model == "fake-stream-error":
        events.append(("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
        return events
    for piece in pieces:
        events.append(
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
            )
        )
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    delta: dict[str, Any] = {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}}
    if delta_usage is not None:
        delta["usage"] = delta_usage
    events.append(("message_delta", delta))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _echo(body: dict) -> str:
    """The answer text: an echo of the last user message's text (so responses carry the prompt's canaries)."""
    for msg in reversed(body.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return f"echo: {content}"
            texts = [b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text"]
            return "echo: " + " ".join(texts)
    return "echo: (nothing)"


# ---------------------------------------------------------------------------------------------------------
# framing: SSE (first party, Vertex) and the AWS event stream (Bedrock)
# ---------------------------------------------------------------------------------------------------------


def _sse_frames(events: list[tuple[str, dict]]) -> tuple[list[bytes], str]:
    return sse(events), "text/event-stream"


def _eventstream_frames(events: list[tuple[str, dict]]) -> tuple[list[bytes], str]:
    """Bedrock's invoke-with-response-stream: each event is a ``chunk`` whose ``bytes`` is the event JSON."""
    frames = []
    for name, data in events:
        if name == "ping":
            continue
        if name == "message_stop":  # Bedrock appends its invocation metrics here
            data = {
                **data,
                "amazon-bedrock-invocationMetrics": {
                    "inputTokenCount": USAGE["input_tokens"],
                    "outputTokenCount": USAGE["output_tokens"],
                    "invocationLatency": 10,
                    "firstByteLatency": 5,
                },
            }
        payload = json.dumps({"bytes": base64.b64encode(json.dumps(data).encode()).decode()}).encode()
        headers = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
        frames.append(eventstream_message(headers, payload))
    return frames, "application/vnd.amazon.eventstream"


def eventstream_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One binary AWS event-stream message (string headers only), with its prelude and message CRC32s."""
    encoded = b""
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        encoded += struct.pack(">B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    head = prelude + struct.pack(">I", zlib.crc32(prelude))
    body = head + encoded + payload
    return body + struct.pack(">I", zlib.crc32(body))
