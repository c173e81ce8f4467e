"""Amazon Bedrock Runtime: usage from Converse and ConverseStream, from InvokeModel bodies of each model
family, from the token-count response headers and from the invocation metrics Bedrock appends to
streams; image and video counts of the media models from their requests and responses.

Every function takes plain JSON values (dicts, lists, bytes), which is what botocore hands back after
parsing and what a proxy sees on the wire, so the SDK instrumentation and the proxy share them.

Token counts are normalised to GenAI semconv: Bedrock reports ``inputTokens`` (and the
``x-amzn-bedrock-input-token-count`` header, and ``inputTokenCount`` in invocation metrics) *without* the
tokens read from or written to the prompt cache, so ``input_tokens = input + cache read + cache write``
and the cache parts are reported on their own as well.

Only usage, stop reasons, model names, ids and numeric media parameters (image count, width, height,
quality, video duration and resolution) are read; prompts, messages and generated content never are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import anthropic as anthropic_parser
from . import openai as openai_parser
from .base import CallInfo, as_int, get

# Converse stop reasons -> the common GenAI finish reasons; others are reported as sent.
FINISH_REASONS = {
    **anthropic_parser.FINISH_REASONS,
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}

HEADER_INPUT = "x-amzn-bedrock-input-token-count"
HEADER_OUTPUT = "x-amzn-bedrock-output-token-count"
HEADER_CACHE_READ = "x-amzn-bedrock-cache-read-input-token-count"
HEADER_CACHE_WRITE = "x-amzn-bedrock-cache-write-input-token-count"
INVOCATION_METRICS = "amazon-bedrock-invocationMetrics"


def finish_reason(value: Any) -> tuple[str, ...]:
    if not isinstance(value, str) or not value:
        return ()
    return (FINISH_REASONS.get(value, value),)


def _counts(info: CallInfo, inp: int | None, out: int | None, cache_read: int | None, cache_write: int | None):
    """Fill `info` from Bedrock-style counts (input excluding cache) and return it."""
    if inp is not None:
        info.input_tokens = inp + (cache_read or 0) + (cache_write or 0)
    info.output_tokens = out
    info.cache_read_tokens = cache_read
    info.cache_write_tokens = cache_write
    return info


def usage(block: Any, info: CallInfo | None = None) -> CallInfo:
    """A Converse ``usage`` block (also Nova's InvokeModel ``usage``, whose cache fields end in ``Count``)."""
    info = info if info is not None else CallInfo()
    if not isinstance(block, Mapping):
        return info
    return _counts(
        info,
        as_int(block.get("inputTokens")),
        as_int(block.get("outputTokens")),
        as_int(_first(block, "cacheReadInputTokens", "cacheReadInputTokenCount")),
        as_int(_first(block, "cacheWriteInputTokens", "cacheWriteInputTokenCount")),
    )


def parse_converse(response: Any) -> CallInfo:
    """A Converse response (botocore's parsed dict, or the JSON body)."""
    info = usage(get(response, "usage"))
    info.finish_reasons = finish_reason(get(response, "stopReason"))
    return info


class ConverseStreamParser:
    """ConverseStream events (``{"metadata": {...}}``, ``{"messageStop": {...}}``, ...) -> `CallInfo`.

    Usage arrives once, in the ``metadata`` event at the end; the stop reason in ``messageStop``. Events
    carrying content (``contentBlockDelta``) are skipped after two dict lookups each.
    """

    __slots__ = ()

    def __call__(self, event: Any) -> CallInfo | None:
        if not isinstance(event, Mapping):
            return None
        meta = event.get("metadata")
        if meta is not None:
            return usage(get(meta, "usage"))
        stop = event.get("messageStop")
        if stop is not None:
            return CallInfo(finish_reasons=finish_reason(get(stop, "stopReason")))
        return None


def parse_headers(headers: Mapping[str, Any] | None) -> CallInfo:
    """The ``x-amzn-bedrock-*-token-count`` response headers of InvokeModel (names compared lower case)."""
    info = CallInfo()
    if not headers:
        return info
    lower = {str(k).lower(): v for k, v in headers.items() if str(k).lower().startswith("x-amzn-bedrock-")}

    def count(name: str) -> int | None:
        value = lower.get(name)
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
        return as_int(value)

    return _counts(info, count(HEADER_INPUT), count(HEADER_OUTPUT), count(HEADER_CACHE_READ), count(HEADER_CACHE_WRITE))


def invocation_metrics(metrics: Any) -> CallInfo | None:
    """``amazon-bedrock-invocationMetrics`` (the last chunk of every InvokeModelWithResponseStream)."""
    if not isinstance(metrics, Mapping):
        return None
    inp, out = as_int(metrics.get("inputTokenCount")), as_int(metrics.get("outputTokenCount"))
    if inp is None and out is None:
        return None
    return _counts(
        CallInfo(),
        inp,
        out,
        as_int(metrics.get("cacheReadInputTokenCount")),
        as_int(metrics.get("cacheWriteInputTokenCount")),
    )


# ---------------------------------------------------------------------------------------------------------
# InvokeModel bodies: recognised by their shape, so provisioned models and application inference
# profiles (whose ids name no model family) are read as well as foundation-model ids
# ---------------------------------------------------------------------------------------------------------


def parse_invoke_body(body: Any) -> CallInfo:
    """A non-streamed InvokeModel response body (parsed JSON) of any model family."""
    info = CallInfo()
    if not isinstance(body, Mapping):
        return info
    body_usage = body.get("usage")
    if body.get("type") == "message" or (isinstance(body_usage, Mapping) and "input_tokens" in body_usage):
        info = anthropic_parser.parse_response(body)  # Anthropic Messages
    elif isinstance(body_usage, Mapping) and ("prompt_tokens" in body_usage or "completion_tokens" in body_usage):
        info = openai_parser.parse_response(body)  # OpenAI-compatible chat (gpt-oss, Mistral Large, DeepSeek...)
    elif isinstance(body_usage, Mapping):
        usage(body_usage, info)  # Amazon Nova
        info.finish_reasons = finish_reason(body.get("stopReason"))
    elif "prompt_token_count" in body or "generation_token_count" in body:  # Meta Llama
        info.input_tokens = as_int(body.get("prompt_token_count"))
        info.output_tokens = as_int(body.get("generation_token_count"))
        info.finish_reasons = _reasons([body.get("stop_reason")])
    elif "inputTextTokenCount" in body:  # Amazon Titan text and embeddings
        info.input_tokens = as_int(body.get("inputTextTokenCount"))
        results = body.get("results")
        if isinstance(results, list):
            counts = [c for c in (as_int(get(r, "tokenCount")) for r in results) if c is not None]
            info.output_tokens = sum(counts) if counts else None
            info.finish_reasons = _reasons([get(r, "completionReason") for r in results])
    else:
        _cohere_or_mistral(body, info)
    metrics = invocation_metrics(body.get(INVOCATION_METRICS))
    if metrics is not None and not info.has_usage:
        info.update(metrics)
    images = _image_count(body)
    if images is not None:
        info.images = images
    return info


def _cohere_or_mistral(body: Mapping[str, Any], info: CallInfo) -> None:
    """Bodies without usage of their own (the token-count headers carry it): only stop reasons, ids and,
    for Cohere Command R, the ``meta.billed_units`` counts when present."""
    outputs = body.get("outputs")  # Mistral (prompt format)
    if isinstance(outputs, list):
        info.finish_reasons = _reasons([get(o, "stop_reason") for o in outputs])
        return
    generations = body.get("generations")  # Cohere Command
    if isinstance(generations, list):
        info.finish_reasons = _reasons([get(g, "finish_reason") for g in generations])
        info.response_id = _str(body.get("id"))
        return
    if "finish_reason" in body:  # Cohere Command R
        info.finish_reasons = _reasons([body.get("finish_reason")])
        info.response_id = _str(body.get("response_id"))
        billed = get(get(body, "meta"), "billed_units")
        info.input_tokens = as_int(get(billed, "input_tokens"))
        info.output_tokens = as_int(get(billed, "output_tokens"))


def _image_count(body: Mapping[str, Any]) -> int | None:
    """Titan Image, Nova Canvas and Stability SD3/Core/Ultra return ``images``; Stability SDXL ``artifacts``."""
    for key in ("images", "artifacts"):
        value = body.get(key)
        if isinstance(value, list):
            return len(value)
    return None


def parse_invoke(body: Any, headers: Mapping[str, Any] | None = None) -> CallInfo:
    """An InvokeModel response: the body's own usage first, the token-count headers for what it lacks."""
    info = parse_invoke_body(body)
    from_headers = parse_headers(headers)
    if not info.has_usage and from_headers.has_usage:
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
            setattr(info, name, getattr(from_headers, name))
    return info


def decode_json(data: bytes | bytearray | str) -> Any:
    """JSON of a body or chunk; None when it is not JSON (the body is then read for nothing else)."""
    try:
        return json.loads(data)
    except (ValueError, TypeError, RecursionError):
        return None


class InvokeStreamParser:
    """InvokeModelWithResponseStream chunk payloads (the decoded ``chunk.bytes``) -> `CallInfo`.

    Anthropic models stream Messages events (read by the Anthropic parser, cache tokens included); every
    family ends with ``amazon-bedrock-invocationMetrics``, which gives the usage of the others. A payload
    is JSON-decoded only when it contains one of the few keys read here, so content deltas cost a
    handful of substring checks.
    """

    _MARKERS = (b"message_start", b"message_delta", b"message_stop", b"invocationMetrics", b"metadata", b"messageStop")

    __slots__ = ("_anthropic", "_usage_seen")

    def __init__(self) -> None:
        self._anthropic = anthropic_parser.StreamParser()
        self._usage_seen = False

    def __call__(self, payload: Any) -> CallInfo | None:
        if isinstance(payload, (bytes, bytearray)):
            if not any(marker in payload for marker in self._MARKERS):
                return None
            payload = decode_json(payload)
        if not isinstance(payload, Mapping):
            return None
        if isinstance(payload.get("type"), str) and payload["type"].startswith("message_"):
            info = self._anthropic(payload)
            if info is not None and info.has_usage:
                self._usage_seen = True
            return info
        info = CallInfo()
        meta = payload.get("metadata")  # Amazon Nova: usage (with cache) in a metadata event
        if isinstance(meta, Mapping) and isinstance(meta.get("usage"), Mapping):
            usage(meta["usage"], info)
            self._usage_seen = True
        metrics = invocation_metrics(payload.get(INVOCATION_METRICS))
        if metrics is not None and not self._usage_seen:
            info.update(metrics)
        info.finish_reasons = _stream_finish(payload)
        return info


def _stream_finish(payload: Mapping[str, Any]) -> tuple[str, ...]:
    """The stop reason of the last chunk of Llama, Titan, Mistral, Cohere and Nova streams."""
    for key in ("stop_reason", "completionReason", "finish_reason"):
        if payload.get(key):
            return _reasons([payload.get(key)])
    outputs = payload.get("outputs")
    if isinstance(outputs, list):
        return _reasons([get(o, "stop_reason") for o in outputs])
    stop = payload.get("messageStop")
    if isinstance(stop, Mapping):
        return finish_reason(stop.get("stopReason"))
    return ()


# ---------------------------------------------------------------------------------------------------------
# Media models: what the request asks for (image count and size, video length and resolution)
# ---------------------------------------------------------------------------------------------------------

_IMAGE_MODEL = re.compile(r"(?:titan-image|nova-canvas|stability\.|stable-diffusion|stable-image|sd3)")
_VIDEO_MODEL = re.compile(r"(?:nova-reel|luma\.ray)")
_EMBEDDING_MODEL = re.compile(r"embed")
_COMPLETION_MODEL = re.compile(r"(?:^|\.)(?:meta\.llama|amazon\.titan-text|cohere\.command-(?:light-)?text|ai21\.j2)")
_NOVA_REEL_SHOT_SECONDS = 6  # MULTI_SHOT_MANUAL: every shot is six seconds long


def model_kind(model_id: str | None) -> str:
    """'image', 'video', 'embeddings', 'text_completion' or 'chat', from a model id (chat when unknown)."""
    m = (model_id or "").lower()
    if _IMAGE_MODEL.search(m):
        return "image"
    if _VIDEO_MODEL.search(m):
        return "video"
    if _EMBEDDING_MODEL.search(m):
        return "embeddings"
    if _COMPLETION_MODEL.search(m):
        return "text_completion"
    return "chat"


@dataclass(slots=True)
class MediaRequest:
    """What an image or video request asks for (numbers only)."""

    images: int | None = None
    image_size: str | None = None
    image_quality: str | None = None
    video_seconds: float | None = None
    video_resolution: str | None = None

    def apply(self, info: CallInfo) -> CallInfo:
        """Fill what the response did not say (a response's own image count wins)."""
        if info.images is None:
            info.images = self.images
        info.image_size = info.image_size or self.image_size
        info.image_quality = info.image_quality or self.image_quality
        if info.video_seconds is None:
            info.video_seconds = self.video_seconds
        info.video_resolution = info.video_resolution or self.video_resolution
        return info


def image_request(body: Any) -> MediaRequest:
    """Titan Image / Nova Canvas (``imageGenerationConfig``), Stability SDXL (``width``/``height``/``samples``)
    and Stability SD3/Core/Ultra (``aspect_ratio``; one image, 1:1 is 1024x1024, other ratios unsized)."""
    req = MediaRequest()
    if not isinstance(body, Mapping):
        return req
    config = body.get("imageGenerationConfig")
    if isinstance(config, Mapping):
        req.images = as_int(config.get("numberOfImages")) or 1
        req.image_size = _size(config.get("width"), config.get("height"))
        req.image_quality = _str(config.get("quality"))
        return req
    if "text_prompts" in body:  # Stability SDXL
        req.images = as_int(body.get("samples")) or 1
        req.image_size = _size(body.get("width"), body.get("height"))
        return req
    if "prompt" in body:  # Stability SD3 / Stable Image Core / Ultra: one image per request
        req.images = 1
        ratio = body.get("aspect_ratio")
        req.image_size = "1024x1024" if ratio in (None, "1:1") else None
    return req


def video_request(model_input: Any) -> MediaRequest:
    """Nova Reel (``videoGenerationConfig``: ``durationSeconds``, ``dimension``, or six-second ``shots``)
    and Luma Ray (``duration`` such as ``"5s"``, ``resolution`` such as ``"720p"``) as sent to
    StartAsyncInvoke: the video asked for, generated later by the asynchronous job."""
    req = MediaRequest()
    if not isinstance(model_input, Mapping):
        return req
    config = model_input.get("videoGenerationConfig")
    if isinstance(config, Mapping):
        seconds = _number(config.get("durationSeconds"))
        shots = get(model_input.get("multiShotManualParams"), "shots")
        if seconds is None and isinstance(shots, list):
            seconds = float(_NOVA_REEL_SHOT_SECONDS * len(shots))
        req.video_seconds = seconds
        req.video_resolution = _str(config.get("dimension"))
        return req
    duration = model_input.get("duration")
    if isinstance(duration, str) and duration.endswith("s"):
        req.video_seconds = _number(duration[:-1])
    else:
        req.video_seconds = _number(duration)
    req.video_resolution = _str(model_input.get("resolution"))
    return req


# ---------------------------------------------------------------------------------------------------------


def _first(block: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        value = block.get(name)
        if value is not None:
            return value
    return None


def _reasons(values: list[Any]) -> tuple[str, ...]:
    return tuple(FINISH_REASONS.get(v, v) for v in values if isinstance(v, str) and v)


def _size(width: Any, height: Any) -> str | None:
    w, h = as_int(width), as_int(height)
    return f"{w}x{h}" if w and h else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and value >= 0:
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if number >= 0 else None
    return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
