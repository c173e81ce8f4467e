"""A fake Amazon Bedrock Runtime for the real boto3 client (``endpoint_url=server.url``) on the loopback
`FakeServer`: Converse and InvokeModel answer JSON as AWS does; ConverseStream and
InvokeModelWithResponseStream answer with binary AWS event-stream messages
(``application/vnd.amazon.eventstream``: prelude, headers, payload, CRC32s), which botocore's own
``botocore.eventstream`` decodes, so the framing is checked by the SDK itself.

The model id picks the answer, so a test needs nothing but the id:

- ``*anthropic.*``: Anthropic Messages bodies (the Anthropic fake's message, usage and stream events);
- ``*meta.llama*``, ``*amazon.titan-text*``, ``*amazon.titan-embed*``, ``*amazon.nova-*``, ``*mistral.*``,
  ``*cohere.command-r*``: each family's InvokeModel body (Mistral and Cohere carry usage only in the
  ``x-amzn-bedrock-*-token-count`` headers, as on AWS);
- ``*titan-image*``, ``*nova-canvas*``, ``*stability.*``: one base64 "image" per requested image;
- ``*fake-throttle*``: HTTP 429 ``ThrottlingException``; ``*fake-invalid*``: HTTP 400 ``ValidationException``;
- ``*fake-stream-error*``: a stream that breaks with a ``modelStreamErrorException`` after its first event;
- ``*fake-no-usage*``: Converse answers without ``usage``;
- ``*fake-stalled-body*``: InvokeModel sends `STALLED_PART` of its body, then stalls for `STALL_SECONDS`
  (a client read timeout shorter than that breaks the body read after those bytes);
- any other id: a Converse answer with `CONVERSE_USAGE` (cache tokens included).

Answers echo the last user message (plus `RESPONSE_CANARY` when the request holds a canary), so
privacy tests can check that response content never leaves.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import unquote

from . import anthropic as anthropic_fake
from .server import FakeServer, Request, Response

REQUEST_ID = "fake-bedrock-request-0001"
RESPONSE_CANARY = "CANARY-BEDROCK-RESPONSE-5e1a"  # in answers to canary requests and in validation errors
INVOCATION_ARN = "arn:aws:bedrock:us-east-1:123456789012:async-invoke/fake0001"
IMAGE_BYTES = base64.b64encode(b"\x89PNG fake image bytes").decode()

# Converse usage: inputTokens excludes the cache parts, so the semconv input count is 30 + 1000 + 200.
CONVERSE_USAGE = {
    "inputTokens": 30,
    "outputTokens": 50,
    "totalTokens": 1280,
    "cacheReadInputTokens": 1000,
    "cacheWriteInputTokens": 200,
}
CONVERSE_EXPECTED = {"input": 1230, "output": 50, "cache_read": 1000, "cache_write": 200}
HEADER_TOKENS = {"input": 17, "output": 23}  # what the token-count headers say for families without body usage
LLAMA = {"prompt_token_count": 12, "generation_token_count": 34}
TITAN_TEXT = {"input": 9, "output": 21}
NOVA_USAGE = {"inputTokens": 40, "outputTokens": 60, "totalTokens": 600, "cacheReadInputTokenCount": 500}
STREAM_METRICS = {"inputTokenCount": 11, "outputTokenCount": 22}
STALLED_PART = b'{"generation": "echo: '  # what a stalled body sends before it stalls
STALL_SECONDS = 2.0


def install(server: FakeServer) -> None:
    server.route("POST", "/model/", _model)
    server.route("POST", "/async-invoke", _async_invoke)


# ---------------------------------------------------------------------------------------------------------
# routes
# ---------------------------------------------------------------------------------------------------------


def _model(req: Request) -> Response:
    rest = req.path[len("/model/") :]
    model_part, _, action = rest.rpartition("/")
    model = unquote(model_part)
    body = req.body if isinstance(req.body, dict) else {}
    if "fake-throttle" in model:
        return error(429, "ThrottlingException", "Too many requests, please wait before trying again.")
    if "fake-invalid" in model:
        return error(400, "ValidationException", f"The provided model identifier is invalid. {RESPONSE_CANARY}")
    if action == "converse":
        return _converse(model, body)
    if action == "converse-stream":
        return _converse_stream(model, body)
    if action == "invoke":
        return _invoke(model, body)
    if action == "invoke-with-response-stream":
        return _invoke_stream(model, body)
    return error(404, "ResourceNotFoundException", "no such action")


def _async_invoke(req: Request) -> Response:
    return Response(body={"invocationArn": INVOCATION_ARN}, headers={"x-amzn-RequestId": REQUEST_ID})


def error(status: int, kind: str, message: str) -> Response:
    """Bedrock's error shape: the code in ``x-amzn-ErrorType``, the message in the body."""
    headers = {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    headers["x-amzn-RequestId"] = REQUEST_ID
    return Response(status=status, body={"message": message}, headers=headers)


# ---------------------------------------------------------------------------------------------------------
# Converse
# ---------------------------------------------------------------------------------------------------------


def _converse(model: str, body: dict) -> Response:
    answer: dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": [{"text": converse_echo(body)}]}},
        "stopReason": "end_turn",
        "metrics": {"latencyMs": 120},
    }
    if "fake-no-usage" not in model:
        answer["usage"] = dict(CONVERSE_USAGE)
    return Response(body=answer, headers={"x-amzn-RequestId": REQUEST_ID})


def _converse_stream(model: str, body: dict) -> Response:
    text = converse_echo(body)
    third = max(1, len(text) // 3)
    events: list[tuple[str, dict]] = [("messageStart", {"role": "assistant"})]
    if "fake-stream-error" in model:
        frames = [event(*events[0]), exception("modelStreamErrorException", "The model stopped unexpectedly.")]
        return _stream(frames)
    for piece in (text[:third], text[third : 2 * third], text[2 * third :]):
        events.append(("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}))
    events.append(("contentBlockStop", {"contentBlockIndex": 0}))
    events.append(("messageStop", {"stopReason": "end_turn"}))
    events.append(("metadata", {"usage": dict(CONVERSE_USAGE), "metrics": {"latencyMs": 130}}))
    return _stream([event(name, payload) for name, payload in events])


def converse_echo(body: dict) -> str:
    for msg in reversed(body.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            texts = [b.get("text", "") for b in msg.get("content") or [] if isinstance(b, dict)]
            return "echo: " + " ".join(texts) + _canary(body)
    return "echo: (nothing)" + _canary(body)


def _canary(body: dict) -> str:
    """The response canary, added only when the request carries a canary (so ordinary tests see plain echoes)."""
    return f" {RESPONSE_CANARY}" if "CANARY" in json.dumps(body) else ""


# ---------------------------------------------------------------------------------------------------------
# InvokeModel
# ---------------------------------------------------------------------------------------------------------


def _invoke(model: str, body: dict) -> Response:
    headers = {"x-amzn-RequestId": REQUEST_ID, "X-Amzn-Bedrock-Invocation-Latency": "100"}
    if "fake-stalled-body" in model:
        return _stalled(headers)
    if "anthropic." in model:
        answer = anthropic_fake.message(model, anthropic_fake._echo(body), dict(anthropic_fake.USAGE))
        raw = anthropic_fake.USAGE
        headers.update(
            token_headers(raw["input_tokens"], raw["output_tokens"])
            | {
                "X-Amzn-Bedrock-Cache-Read-Input-Token-Count": str(raw["cache_read_input_tokens"]),
                "X-Amzn-Bedrock-Cache-Write-Input-Token-Count": str(raw["cache_creation_input_tokens"]),
            }
        )
        return Response(body=answer, headers=headers)
    prompt = "echo: " + str(body.get("prompt") or body.get("inputText") or body.get("message") or "") + _canary(body)
    if any(k in model for k in ("titan-image", "nova-canvas", "stability.")):
        return Response(body=_image_answer(body), headers=headers)
    if "meta.llama" in model:
        answer = {"generation": prompt, **LLAMA, "stop_reason": "stop"}
        headers.update(token_headers(LLAMA["prompt_token_count"], LLAMA["generation_token_count"]))
    elif "titan-embed" in model:
        answer = {"embedding": [0.1, 0.2, 0.3], "inputTextTokenCount": TITAN_TEXT["input"]}
        headers.update(token_headers(TITAN_TEXT["input"], 0))
    elif "amazon.titan-text" in model:
        answer = {
            "inputTextTokenCount": TITAN_TEXT["input"],
            "results": [{"tokenCount": TITAN_TEXT["output"], "outputText": prompt, "completionReason": "FINISH"}],
        }
        headers.update(token_headers(TITAN_TEXT["input"], TITAN_TEXT["output"]))
    elif "amazon.nova" in model:
        answer = {
            "output": {"message": {"role": "assistant", "content": [{"text": _nova_echo(body)}]}},
            "stopReason": "end_turn",
            "usage": dict(NOVA_USAGE),
        }
        headers.update(token_headers(NOVA_USAGE["inputTokens"], NOVA_USAGE["outputTokens"]))
    elif "mistral." in model:
        answer = {"outputs": [{"text": prompt, "stop_reason": "stop"}]}
        headers.update(token_headers(HEADER_TOKENS["input"], HEADER_TOKENS["output"]))
    elif "cohere.command-r" in model:
        answer = {"response_id": "cohere-1", "text": prompt, "generation_id": "g-1", "finish_reason": "COMPLETE"}
        headers.update(token_headers(HEADER_TOKENS["input"], HEADER_TOKENS["output"]))
    else:
        answer = {"completion": prompt}
        headers.update(token_headers(HEADER_TOKENS["input"], HEADER_TOKENS["output"]))
    return Response(body=answer, headers=headers)


def _stalled(headers: dict[str, str]) -> Response:
    """A body sent chunked that stops after its first bytes (the rest follows after `STALL_SECONDS`)."""

    def frames():
        yield STALLED_PART
        time.sleep(STALL_SECONDS)
        yield b'stalled", "stop_reason": "stop"}'

    headers = {**headers, **token_headers(HEADER_TOKENS["input"], HEADER_TOKENS["output"])}
    return Response(frames=frames(), headers={"Content-Type": "application/json", **headers})


def _image_answer(body: dict) -> dict:
    config = body.get("imageGenerationConfig")
    if isinstance(config, dict):
        return {"images": [IMAGE_BYTES] * int(config.get("numberOfImages") or 1), "error": None}
    if "text_prompts" in body:  # Stability SDXL
        n = int(body.get("samples") or 1)
        return {"result": "success", "artifacts": [{"seed": 1, "base64": IMAGE_BYTES, "finishReason": "SUCCESS"}] * n}
    return {"seeds": [1], "finish_reasons": [None], "images": [IMAGE_BYTES]}


def _nova_echo(body: dict) -> str:
    for msg in reversed(body.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            texts = [b.get("text", "") for b in msg.get("content") or [] if isinstance(b, dict)]
            return "echo: " + " ".join(texts) + _canary(body)
    return "echo: (nothing)"


def token_headers(inp: int, out: int) -> dict[str, str]:
    return {"X-Amzn-Bedrock-Input-Token-Count": str(inp), "X-Amzn-Bedrock-Output-Token-Count": str(out)}


def _invoke_stream(model: str, body: dict) -> Response:
    if "anthropic." in model:
        events = anthropic_fake._events(model, anthropic_fake._echo(body))
        frames, _ = anthropic_fake._eventstream_frames(events)
        return _stream(frames)
    if "fake-stream-error" in model:
        return _stream([chunk({"generation": "echo"}), exception("modelStreamErrorException", "stopped")])
    prompt = "echo: " + str(body.get("prompt") or body.get("inputText") or "") + _canary(body)
    third = max(1, len(prompt) // 3)
    pieces = [prompt[:third], prompt[third : 2 * third], prompt[2 * third :]]
    if "amazon.nova" in model:
        payloads: list[dict] = [{"messageStart": {"role": "assistant"}}]
        payloads += [{"contentBlockDelta": {"delta": {"text": p}, "contentBlockIndex": 0}} for p in pieces]
        payloads.append({"messageStop": {"stopReason": "end_turn"}})
        payloads.append(
            {"metadata": {"usage": dict(NOVA_USAGE)}, "amazon-bedrock-invocationMetrics": dict(STREAM_METRICS)}
        )
    else:  # Llama-shaped chunks (the other families differ only in key names)
        payloads = [
            {"generation": p, "generation_token_count": i + 1, "stop_reason": None} for i, p in enumerate(pieces)
        ]
        payloads[-1] = {**payloads[-1], "stop_reason": "stop", "amazon-bedrock-invocationMetrics": dict(STREAM_METRICS)}
    return _stream([chunk(p) for p in payloads])


# ---------------------------------------------------------------------------------------------------------
# AWS event-stream framing
# ---------------------------------------------------------------------------------------------------------


def event(event_type: str, payload: dict) -> bytes:
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return anthropic_fake.eventstream_message(headers, json.dumps(payload).encode())


def chunk(payload: dict) -> bytes:
    """An InvokeModelWithResponseStream ``chunk`` event: the model's JSON, base64-encoded in ``bytes``."""
    return event("chunk", {"bytes": base64.b64encode(json.dumps(payload).encode()).decode()})


def exception(exception_type: str, message: str) -> bytes:
    headers = {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}
    return anthropic_fake.eventstream_message(headers, json.dumps({"message": message}).encode())


def _stream(frames: list[bytes]) -> Response:
    headers = {"Content-Type": "application/vnd.amazon.eventstream", "x-amzn-RequestId": REQUEST_ID}
    return Response(frames=frames, headers=headers)
