"""Fake Mistral AI API (La Plateforme) for the real `mistralai` SDK.

`install(server)` answers `POST {prefix}/v1/chat/completions`, `/v1/agents/completions`,
`/v1/fim/completions` (JSON, or SSE ending in `data: [DONE]` when the body says `"stream": true`) and
`/v1/embeddings`, and returns the URL to give `Mistral(server_url=...)`.

The model name (`agent_id` for agents) picks the scenario:
- any other name: a normal answer; usage with cached prompt tokens (stream: on the final chunk only,
  next to `finish_reason`, as Mistral sends it);
- `fake-error-<status>`: that HTTP status with Mistral's error JSON (`422`: a validation error body);
- `fake-no-usage`: `usage: {}` (the SDK fills zeros) or, streamed, no usage at all;
- `fake-malformed`: usage the SDK accepts but that makes no sense (negative counts, junk details);
- `fake-slow`: streamed frames `SLOW_DELAY` seconds apart;
- `fake-stream-error`: one streamed chunk, then a frame that is not JSON;
- `fake-tool`: the answer is a tool call whose arguments hold `RESPONSE_CANARY`.
"""

from __future__ import annotations

from typing import Any

from .server import Request, Response, sse

RESPONSE_CANARY = "CANARY-mistral-response-2c8e"
AGENT_MODEL = "mistral-medium-latest"  # the model the fake agent runs on

PROMPT, CACHED, COMPLETION = 90, 40, 25
EMBED_TOKENS_PER_INPUT = 6
SLOW_DELAY = 0.05

_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "internal_server_error",
    503: "service_unavailable",
}


def _error(code: int) -> dict[str, Any]:
    # Real errors can quote the request; this one quotes a canary, which must never reach telemetry.
    message = f"fake error {code} near {RESPONSE_CANARY!r}"
    if code == 422:
        return {"detail": [{"loc": ["body", "messages"], "msg": message, "type": "value_error"}]}
    return {
        "object": "error",
        "message": message,
        "type": _ERRORS.get(code, "api_error"),
        "param": None,
        "code": str(code),
    }


def _usage(model: str) -> dict[str, Any] | None:
    if model == "fake-no-usage":
        return None
    if model == "fake-malformed":
        return {"prompt_tokens": -5, "completion_tokens": -1, "total_tokens": -6, "prompt_tokens_details": "junk"}
    return {
        "prompt_tokens": PROMPT,
        "completion_tokens": COMPLETION,
        "total_tokens": PROMPT + COMPLETION,
        "prompt_tokens_details": {"cached_tokens": CACHED},
    }


def _message(model: str, text: str) -> dict[str, Any]:
    if model == "fake-tool":
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "lookup", "arguments": f'{{"secret": "{RESPONSE_CANARY}"}}'},
        }
        return {"role": "assistant", "content": "", "tool_calls": [call]}
    return {"role": "assistant", "content": text}


def _complete(model: str) -> Response:
    finish = "tool_calls" if model == "fake-tool" else "stop"
    body: dict[str, Any] = {
        "id": f"cmpl-{model}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": _message(model, f"Hello. {RESPONSE_CANARY}"), "finish_reason": finish}],
        "usage": _usage(model) or {},
    }
    return Response(body=body)


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": f"cmpl-{model}",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def _stream(model: str) -> Response:
    frames = sse([(None, _chunk(model, {"role": "assistant", "content": "Hel"}))])
    if model == "fake-stream-error":
        return Response(frames=[*frames, b'data: {"id": "cmpl-broken", "choices": [\n\n'])
    finish = "tool_calls" if model == "fake-tool" else "stop"
    frames += sse(
        [
            (None, _chunk(model, {"content": "lo. "})),
            (None, _chunk(model, _message(model, RESPONSE_CANARY), finish, _usage(model))),
            (None, "[DONE]"),
        ]
    )
    return Response(frames=frames, delay=SLOW_DELAY if model == "fake-slow" else 0.0)


def _embeddings(model: str, body: dict[str, Any]) -> Response:
    inputs = body.get("input")
    n = len(inputs) if isinstance(inputs, list) else 1
    out: dict[str, Any] = {
        "id": f"embd-{model}",
        "object": "list",
        "model": model,
        "data": [{"object": "embedding", "embedding": [0.1, 0.2, 0.3], "index": i} for i in range(n)],
        "usage": {"prompt_tokens": n * EMBED_TOKENS_PER_INPUT, "total_tokens": n * EMBED_TOKENS_PER_INPUT},
    }
    if model == "fake-no-usage":
        out["usage"] = {}
    elif model == "fake-malformed":
        out["usage"] = {"prompt_tokens": -1, "total_tokens": -1}
    return Response(body=out)


def _handle(req: Request) -> Response:
    body = req.body if isinstance(req.body, dict) else {}
    model = str(body.get("model") or body.get("agent_id") or "")
    if model.startswith("fake-error-"):
        code = int(model.rsplit("-", 1)[-1])
        return Response(status=code, body=_error(code))
    if req.path.endswith("/embeddings"):
        return _embeddings(model, body)
    if "agent_id" in body and not model.startswith("fake-"):
        model = AGENT_MODEL
    if body.get("stream"):
        return _stream(model)
    return _complete(model)


def install(server: Any, prefix: str = "") -> str:
    """Register the fake on `server` under `prefix` (e.g. "/mistral"); returns the SDK's server URL."""
    for path in ("/v1/chat/completions", "/v1/agents/completions", "/v1/fim/completions", "/v1/embeddings"):
        server.route("POST", prefix + path, _handle)
    return server.url + prefix
