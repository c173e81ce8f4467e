"""Fake Gemini API / Vertex AI endpoints for the real `google-genai` SDK.

`install(server)` answers every `POST {prefix}/<version>/.../models/<model>:<method>` the SDK sends
(`generateContent`, `streamGenerateContent?alt=sse`, `batchEmbedContents`, `embedContent`, `predict`)
and returns the base URL to give `HttpOptions(base_url=...)`.

The model name picks the scenario:
- any other name: a normal answer with cache and thinking tokens (usage below);
- `fake-error-<status>`: that HTTP status with Google's error JSON (e.g. `fake-error-429`);
- `fake-no-usage`: no `usageMetadata`;
- `fake-malformed`: `usageMetadata` the SDK accepts but that makes no sense (negative counts);
- `fake-slow`: streamed frames `SLOW_DELAY` seconds apart;
- `fake-stream-error`: one streamed chunk, then an in-stream error frame;
- `fake-blocked`: the prompt is blocked (no candidates, `promptFeedback.blockReason`);
- `fake-tool`: the answer is a function call whose arguments hold `RESPONSE_CANARY`, unless the last turn
  of the request is a function response (then a normal answer: automatic function calling ends).
Imagen (`imagen*` on `:predict`) returns `sampleCount` images; a name containing `filtered` has its last
image replaced by a responsible-AI filtered entry.
"""

from __future__ import annotations

from typing import Any

from .server import Request, Response, sse

RESPONSE_CANARY = "CANARY-gemini-response-7f3a"

# Final usage of a normal generateContent call (and of the last stream chunk).
PROMPT, CACHED, CANDIDATES, THOUGHTS = 120, 80, 30, 50
TOTAL = PROMPT + CANDIDATES + THOUGHTS
EMBED_TOKENS_PER_INPUT = 7
SLOW_DELAY = 0.05

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def _error(code: int) -> dict[str, Any]:
    # Real errors can quote the request; this one quotes a canary, which must never reach telemetry.
    message = f"fake error {code} near {RESPONSE_CANARY!r}"
    return {"error": {"code": code, "message": message, "status": _STATUS.get(code, "UNKNOWN")}}


def _usage(candidates: int | None = CANDIDATES, thoughts: int = THOUGHTS) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "promptTokenCount": PROMPT,
        "cachedContentTokenCount": CACHED,
        "thoughtsTokenCount": thoughts,
        "totalTokenCount": PROMPT + (candidates or 0) + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": PROMPT}],
        "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": CACHED}],
    }
    if candidates is not None:
        usage["candidatesTokenCount"] = candidates
    return usage


def _malformed() -> dict[str, Any]:
    return {"promptTokenCount": -120, "candidatesTokenCount": -3, "thoughtsTokenCount": -1, "totalTokenCount": 7}


def _response(
    model: str, text: str, usage: dict[str, Any] | None, finish: str | None = "STOP", tool: bool = True
) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": text}]
    if model == "fake-tool" and tool:
        parts = [{"functionCall": {"name": "lookup", "args": {"secret": RESPONSE_CANARY}}}]
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    body: dict[str, Any] = {"candidates": [candidate], "modelVersion": model, "responseId": f"resp-{model}"}
    if usage is not None:
        body["usageMetadata"] = usage
    return body


def _final_usage(model: str) -> dict[str, Any] | None:
    if model == "fake-no-usage":
        return None
    if model == "fake-malformed":
        return _malformed()
    return _usage()


def _answered_tool(body: Any) -> bool:
    """True when the request's last turn carries a functionResponse (checked by key, content unread)."""
    contents = body.get("contents") if isinstance(body, dict) else None
    if not isinstance(contents, list) or not contents or not isinstance(contents[-1], dict):
        return False
    return any(isinstance(p, dict) and "functionResponse" in p for p in contents[-1].get("parts") or [])


def _generate(model: str, body: Any = None) -> Response:
    if model == "fake-tool" and _answered_tool(body):
        model = "fake-tool-answered"
    if model == "fake-blocked":
        body = {
            "promptFeedback": {"blockReason": "SAFETY"},
            "usageMetadata": {"promptTokenCount": PROMPT, "totalTokenCount": PROMPT},
            "modelVersion": model,
            "responseId": f"resp-{model}",
        }
        return Response(body=body)
    return Response(body=_response(model, f"Hello. {RESPONSE_CANARY}", _final_usage(model)))


def _stream(model: str, body: Any = None) -> Response:
    if model == "fake-tool" and _answered_tool(body):
        model = "fake-tool-answered"
    final = _final_usage(model)
    # Cumulative usage on every chunk: thinking first (no candidates yet), then partial, then final.
    first = None if final is None else (_malformed() if model == "fake-malformed" else _usage(candidates=None))
    middle = None if final is None else (_malformed() if model == "fake-malformed" else _usage(candidates=12))
    events: list[tuple[str | None, Any]] = [(None, _response(model, "Hel", first, finish=None, tool=False))]
    if model == "fake-stream-error":
        events.append((None, _error(500)))
        return Response(frames=sse(events))
    events.append((None, _response(model, "lo. ", middle, finish=None, tool=False)))
    events.append((None, _response(model, RESPONSE_CANARY, final)))
    return Response(frames=sse(events), delay=SLOW_DELAY if model == "fake-slow" else 0.0)


def _embed_usage(model: str, n: int) -> dict[str, Any] | None:
    if model == "fake-no-usage":
        return None
    if model == "fake-malformed":
        return {"promptTokenCount": -1}
    return {"promptTokenCount": n * EMBED_TOKENS_PER_INPUT, "totalTokenCount": n * EMBED_TOKENS_PER_INPUT}


def _batch_embed(model: str, body: Any) -> Response:
    n = len(body.get("requests") or []) if isinstance(body, dict) else 0
    out: dict[str, Any] = {"embeddings": [{"values": [0.1, 0.2, 0.3]} for _ in range(n)]}
    usage = _embed_usage(model, n)
    if usage is not None:
        out["usageMetadata"] = usage
    return Response(body=out)


def _embed_one(model: str) -> Response:
    out: dict[str, Any] = {"embedding": {"values": [0.1, 0.2, 0.3]}}
    usage = _embed_usage(model, 1)
    if usage is not None:
        out["usageMetadata"] = usage
    return Response(body=out)


def _predict(model: str, body: Any) -> Response:
    body = body if isinstance(body, dict) else {}
    if model.startswith("imagen"):
        count = (body.get("parameters") or {}).get("sampleCount") or 1
        predictions: list[dict[str, Any]] = [
            {"bytesBase64Encoded": "iVBORw0KGgo=", "mimeType": "image/png"} for _ in range(count)
        ]
        if "filtered" in model:
            predictions[-1] = {"raiFilteredReason": "filtered by the fake"}
        return Response(body={"predictions": predictions})
    instances = body.get("instances") or []
    stats: dict[str, Any] = {"truncated": False}
    if model != "fake-no-usage":
        stats["token_count"] = EMBED_TOKENS_PER_INPUT
    predictions = [{"embeddings": {"values": [0.1, 0.2, 0.3], "statistics": stats}} for _ in instances]
    return Response(body={"predictions": predictions, "metadata": {"billableCharacterCount": 10 * len(instances)}})


def _handle(req: Request) -> Response:
    tail = req.path.rsplit("/models/", 1)[-1]
    model, _, method = tail.partition(":")
    if model.startswith("fake-error-"):
        code = int(model.rsplit("-", 1)[-1])
        return Response(status=code, body=_error(code))
    if method == "generateContent":
        return _generate(model, req.body)
    if method == "streamGenerateContent":
        return _stream(model, req.body)
    if method == "batchEmbedContents":
        return _batch_embed(model, req.body)
    if method == "embedContent":
        return _embed_one(model)
    if method == "predict":
        return _predict(model, req.body)
    if method == "predictLongRunning":  # Veo: an operation to poll
        operation: dict[str, Any] = {"name": f"models/{model}/operations/fakeop123"}
        if model == "fake-video-failed":
            operation.update(done=True, error={"code": 3, "message": "blocked by the fake"})
        return Response(body=operation)
    return Response(status=404, body=_error(404))


def install(server: Any, prefix: str = "") -> str:
    """Register the fake on `server` under `prefix` (e.g. "/gemini"); returns the SDK's base URL."""
    server.route("POST", prefix + "/", _handle)
    return server.url + prefix
