"""A fake OpenAI (and Azure OpenAI) API on the loopback FakeServer, answering like the real one.

Endpoints: chat/completions, responses, completions, embeddings, images/{generations,edits,variations},
videos (create, `{id}/remix`, edits, extensions: multipart forms as the SDK sends them),
under `/v1` (OpenAI) and `/openai/...` (Azure: `/openai/deployments/{deployment}/...`). JSON answers
and SSE streams have the real shapes: chat chunks with `obfuscation`, the usage-only final chunk only
when the request set `stream_options.include_usage`, Responses lifecycle events ending with
`response.completed`, image stream events.

The requested model (or the Azure deployment) picks the scenario:
- `fake-error-<status>`: the provider's error JSON with that HTTP status (429, 500, 400, ...);
- `fake-no-usage`: no usage anywhere (not even a usage chunk when include_usage was asked);
- `fake-malformed`: usage with unexpected types/shapes;
- `fake-slow`: a stream with a delay before every frame;
- `fake-stream-error`: a stream that sends an error event in the middle;
- `fake-rejects-stream-options`: HTTP 400 whenever the request has `stream_options` (old Azure style);
- anything else: a normal answer with the usage below (cached and reasoning tokens included).

Text answers echo the last user text (so canaries sent in prompts come back in responses); with `tools`
the answer is a tool call whose arguments echo it; with a JSON response format the content is
`{"answer": <echo>}`.
"""

from __future__ import annotations

import base64
import email
import json
import re
import struct
from typing import Any

from .server import FakeServer, Request, Response, sse

CREATED = 1_760_000_000

CHAT_USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 128,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
COMPLETION_USAGE = {"prompt_tokens": 20, "completion_tokens": 40, "total_tokens": 60}
RESPONSES_USAGE = {
    "input_tokens": 2000,
    "input_tokens_details": {"cached_tokens": 1536, "cache_write_tokens": 0},
    "output_tokens": 500,
    "output_tokens_details": {"reasoning_tokens": 256},
    "total_tokens": 2500,
}
EMBEDDINGS_USAGE = {"prompt_tokens": 8, "total_tokens": 8}
IMAGE_USAGE = {
    "input_tokens": 50,
    "input_tokens_details": {"text_tokens": 50, "image_tokens": 0},
    "output_tokens": 4160,
    "total_tokens": 4210,
}
MALFORMED_USAGE = {
    "prompt_tokens": "lots",
    "completion_tokens": -5,
    "total_tokens": None,
    "prompt_tokens_details": "cached?",
    "input_tokens": [1, 2],
}
EMBEDDING = [0.25, -0.5, 0.125]


def response_model(model: str) -> str:
    """The dated model name the API reports back (scenario models come back unchanged)."""
    return model if model.startswith("fake-") else f"{model}-2025-01-01"


def install(server: FakeServer, prefix: str = "/v1") -> None:
    server.route("POST", prefix + "/", _dispatch)
    server.route("POST", "/openai/", _dispatch)  # Azure OpenAI


_ROUTES = (
    ("/chat/completions", "chat"),
    ("/completions", "completion"),
    ("/responses", "responses"),
    ("/embeddings", "embeddings"),
    ("/images/generations", "images"),
    ("/images/edits", "images"),
    ("/images/variations", "images"),
    ("/videos", "videos"),
    ("/remix", "videos"),
    ("/videos/edits", "videos"),
    ("/videos/extensions", "videos"),
)


def _dispatch(req: Request) -> Response:
    body = req.body if isinstance(req.body, dict) else _form(req)
    deployment = re.search(r"/deployments/([^/]+)/", req.path)
    model = deployment.group(1) if deployment else str(body.get("model") or "dall-e-2")
    if model.startswith("fake-error-"):
        return _error(int(model.rsplit("-", 1)[1]))
    if model == "fake-rejects-stream-options" and "stream_options" in body:
        return _error(400, "Unrecognized request argument supplied: stream_options")
    for suffix, name in _ROUTES:
        if req.path.endswith(suffix):
            if name == "videos":
                return _videos(body, req.path)
            return globals()["_" + name](body, model)
    return _error(404, "Unknown endpoint")


def _form(req: Request) -> dict[str, Any]:
    """The text fields of a multipart/form-data body (the SDK sends video and image uploads this way)."""
    content_type = req.headers.get("Content-Type") or req.headers.get("content-type") or ""
    if not content_type.startswith("multipart/form-data"):
        return {}
    message = email.message_from_bytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + req.raw)
    fields: dict[str, Any] = {}
    for part in message.get_payload() if message.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        if name and part.get_filename() is None:
            fields[name] = part.get_payload(decode=True).decode()
    return fields


def _error(status: int, message: str | None = None) -> Response:
    kinds = {
        400: ("invalid_request_error", None),
        401: ("invalid_request_error", "invalid_api_key"),
        404: ("invalid_request_error", "not_found"),
        429: ("requests", "rate_limit_exceeded"),
    }
    kind, code = kinds.get(status, ("server_error", None))
    text = message or {429: "Rate limit reached for requests", 401: "Incorrect API key provided"}.get(
        status, "The server had an error while processing your request."
    )
    headers = {"x-request-id": "req_fake"}
    if status == 429:
        headers["retry-after-ms"] = "10"
    return Response(status, {"error": {"message": text, "type": kind, "param": None, "code": code}}, headers=headers)


def _usage(model: str, normal: dict[str, Any]) -> dict[str, Any] | None:
    if model == "fake-no-usage":
        return None
    return MALFORMED_USAGE if model == "fake-malformed" else normal


def _last_user_text(body: dict[str, Any]) -> str:
    if isinstance(body.get("input"), str):
        return body["input"]
    if isinstance(body.get("prompt"), str):
        return body["prompt"]
    for message in reversed(body.get("messages") or body.get("input") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _wants_json(fmt: Any) -> bool:
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


def _stream_response(model: str, events: list[tuple[str | None, Any]]) -> Response:
    frames = sse(events)
    return Response(frames=frames, delay=0.05 if model == "fake-slow" else 0.0)


# ----------------------------------------------------------------------------------------------- chat


def _chat(body: dict[str, Any], model: str) -> Response:
    text = "echo: " + _last_user_text(body)
    if _wants_json(body.get("response_format")):
        text = json.dumps({"answer": text})
    tools = bool(body.get("tools"))
    usage = _usage(model, CHAT_USAGE)
    base = {"id": "chatcmpl-fake1", "created": CREATED, "model": response_model(model), "system_fingerprint": "fp_fake"}
    if not body.get("stream"):
        message: dict[str, Any] = {"role": "assistant", "content": None if tools else text, "refusal": None}
        if tools:
            message["tool_calls"] = [_tool_call(text)]
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls" if tools else "stop"}
        out = {**base, "object": "chat.completion", "choices": [choice], "service_tier": "default"}
        if usage is not None:
            out["usage"] = usage
        return Response(200, out, headers={"x-request-id": "req_fake"})
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        out = {**base, "object": "chat.completion.chunk", "choices": [choice], "obfuscation": "xq"}
        if include_usage:
            out["usage"] = None
        return out

    events: list[tuple[str | None, Any]] = [(None, chunk({"role": "assistant", "content": "", "refusal": None}))]
    if tools:
        call = _tool_call(text)
        events.append((None, chunk({"tool_calls": [{"index": 0, **call}]})))
    else:
        events += [(None, chunk({"content": part})) for part in _pieces(text)]
    if model == "fake-stream-error":
        events.append((None, {"error": {"message": "The server had an error", "type": "server_error"}}))
    events.append((None, chunk({}, "tool_calls" if tools else "stop")))
    if include_usage and usage is not None:
        events.append((None, {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}))
    events.append((None, "[DONE]"))
    return _stream_response(model, events)


def _tool_call(text: str) -> dict[str, Any]:
    arguments = json.dumps({"q": text})
    return {"id": "call_fake1", "type": "function", "function": {"name": "lookup", "arguments": arguments}}


def _pieces(text: str) -> list[str]:
    third = max(1, len(text) // 3)
    return [text[:third], text[third : 2 * third], text[2 * third :]]


# ------------------------------------------------------------------------------------ legacy completions


def _completion(body: dict[str, Any], model: str) -> Response:
    text = "echo: " + _last_user_text(body)
    usage = _usage(model, COMPLETION_USAGE)
    base = {"id": "cmpl-fake1", "object": "text_completion", "created": CREATED, "model": response_model(model)}
    if not body.get("stream"):
        out = {**base, "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": "stop"}]}
        if usage is not None:
            out["usage"] = usage
        return Response(200, out)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(piece: str, finish: str | None = None) -> dict[str, Any]:
        out = {**base, "choices": [{"text": piece, "index": 0, "logprobs": None, "finish_reason": finish}]}
        if include_usage:
            out["usage"] = None
        return out

    events: list[tuple[str | None, Any]] = [(None, chunk(part)) for part in _pieces(text)]
    events.append((None, chunk("", "stop")))
    if include_usage and usage is not None:
        events.append((None, {**base, "choices": [], "usage": usage}))
    events.append((None, "[DONE]"))
    return _stream_response(model, events)


# ------------------------------------------------------------------------------------------ responses


def _responses(body: dict[str, Any], model: str) -> Response:
    text = "echo: " + _last_user_text(body)
    if _wants_json((body.get("text") or {}).get("format")):
        text = json.dumps({"answer": text})
    usage = _usage(model, RESPONSES_USAGE)
    item_done = {
        "type": "message",
        "id": "msg_fake1",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }
    response = {
        "id": "resp_fake1",
        "object": "response",
        "created_at": CREATED,
        "status": "completed",
        "model": response_model(model),
        "output": [item_done],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "text": {"format": {"type": "text"}},
        "usage": usage,
    }
    if not body.get("stream"):
        return Response(200, response)
    started = {**response, "status": "in_progress", "output": [], "usage": None}
    item = {**item_done, "status": "in_progress", "content": []}
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    where = {"item_id": "msg_fake1", "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.content_part.added", **where, "part": part},
    ]
    events += [{"type": "response.output_text.delta", **where, "delta": p, "logprobs": []} for p in _pieces(text)]
    if model == "fake-stream-error":
        events.append({"type": "error", "code": "server_error", "message": "The server had an error", "param": None})
    events += [
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": {**part, "text": text}},
        {"type": "response.output_item.done", "output_index": 0, "item": item_done},
        {"type": "response.completed", "response": response},
    ]
    return _stream_response(model, [(e["type"], {**e, "sequence_number": i}) for i, e in enumerate(events)])


# ------------------------------------------------------------------------------------ embeddings, images


def _embeddings(body: dict[str, Any], model: str) -> Response:
    inputs = body.get("input")
    count = len(inputs) if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int) else 1
    if body.get("encoding_format") == "base64":
        vector: Any = base64.b64encode(struct.pack(f"<{len(EMBEDDING)}f", *EMBEDDING)).decode()
    else:
        vector = EMBEDDING
    data = [{"object": "embedding", "index": i, "embedding": vector} for i in range(count)]
    out: dict[str, Any] = {"object": "list", "data": data, "model": response_model(model)}
    usage = _usage(model, EMBEDDINGS_USAGE)
    if usage is not None:
        out["usage"] = usage
    return Response(200, out)


def _videos(body: dict[str, Any], path: str) -> Response:
    """A queued video job, as videos.create/remix/edit/extend answer (model `fake-video-failed`: failed)."""
    model = str(body.get("model") or "sora-2")
    if model.startswith("fake-error-"):
        return _error(int(model.rsplit("-", 1)[1]))
    seconds = str(body.get("seconds") or "4")
    if path.endswith("/extensions"):
        seconds = str(int(seconds) + 8)  # the response describes the whole extended clip (an 8 s source here)
    failed = model == "fake-video-failed"
    video = {
        "id": "video_fake",
        "object": "video",
        "model": "sora-2" if failed else model,
        "status": "failed" if failed else "queued",
        "progress": 0,
        "created_at": CREATED,
        "completed_at": None,
        "expires_at": None,
        "error": {"code": "moderation_blocked", "message": "blocked"} if failed else None,
        "prompt": body.get("prompt"),
        "remixed_from_video_id": None,
        "seconds": seconds,
        "size": str(body.get("size") or "720x1280"),
    }
    return Response(200, video)


_PNG = base64.b64encode(b"\x89PNG fake image").decode()


def _images(body: dict[str, Any], model: str) -> Response:
    n = body.get("n") if isinstance(body.get("n"), int) else 1
    gpt_image = model.startswith("gpt-image")
    if not body.get("stream"):
        if gpt_image:
            out: dict[str, Any] = {"created": CREATED, "data": [{"b64_json": _PNG} for _ in range(n)]}
            out.update(size=body.get("size") or "1024x1024", quality=body.get("quality") or "high", output_format="png")
            usage = _usage(model, IMAGE_USAGE)
            if usage is not None:
                out["usage"] = usage
        else:
            revised = "revised: " + str(body.get("prompt", ""))
            out = {
                "created": CREATED,
                "data": [{"url": "https://example.invalid/i.png", "revised_prompt": revised}] * n,
            }
        return Response(200, out)
    size, quality = body.get("size") or "1024x1024", body.get("quality") or "high"
    partial = {"type": "image_generation.partial_image", "b64_json": _PNG, "partial_image_index": 0}
    partial.update(created_at=CREATED, size=size, quality=quality, background="opaque", output_format="png")
    done = {"type": "image_generation.completed", "b64_json": _PNG, "created_at": CREATED, "size": size}
    done.update(quality=quality, background="opaque", output_format="png", usage=_usage(model, IMAGE_USAGE))
    return _stream_response(model, [(e["type"], e) for e in (partial, done)])
