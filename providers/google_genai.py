"""Google Gemini (Gemini API and Vertex AI): usage from google-genai SDK objects and from the REST JSON.

Every reader accepts both shapes: SDK objects use snake_case (`usage_metadata.prompt_token_count`), the
wire uses camelCase (`usageMetadata.promptTokenCount`), so the proxy can reuse these on JSON bodies.

Normalisation (GenAI semconv): `promptTokenCount` already includes `cachedContentTokenCount`; tool-use
prompt tokens (results of built-in tools fed back to the model) are added to input, and
`thoughtsTokenCount` is added to output, because `candidatesTokenCount` excludes thinking
(total = prompt + toolUsePrompt + candidates + thoughts). Stream chunks carry *cumulative* usage, so a
stream's usage is the last chunk's, never a sum.
"""

from __future__ import annotations

from typing import Any

from .base import CallInfo, as_int, get

# Imagen output dimensions per aspect ratio at the default "1K" size; "2K" doubles both sides.
_IMAGEN_1K = {
    "1:1": (1024, 1024),
    "3:4": (896, 1280),
    "4:3": (1280, 896),
    "9:16": (768, 1408),
    "16:9": (1408, 768),
}


def _field(obj: Any, snake: str, camel: str) -> Any:
    value = get(obj, snake)
    return value if value is not None else get(obj, camel)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _enum_name(value: Any) -> str | None:
    """`FinishReason.STOP` (SDK enum) or "STOP" (JSON) -> "stop"; None for unspecified/unknown shapes."""
    value = getattr(value, "value", value)
    if not isinstance(value, str) or not value or value.upper().endswith("_UNSPECIFIED"):
        return None
    return value.lower()


def usage(meta: Any, info: CallInfo) -> None:
    """Fill the token fields of `info` from a `usageMetadata` object or dict (no-op when absent)."""
    if meta is None or isinstance(meta, (str, bytes, int, float, list, tuple)):
        return
    prompt = as_int(_field(meta, "prompt_token_count", "promptTokenCount"))
    tool_use = as_int(_field(meta, "tool_use_prompt_token_count", "toolUsePromptTokenCount"))
    candidates = as_int(_field(meta, "candidates_token_count", "candidatesTokenCount"))
    if candidates is None:  # embeddings / newer UsageMetadata name
        candidates = as_int(_field(meta, "response_token_count", "responseTokenCount"))
    thoughts = as_int(_field(meta, "thoughts_token_count", "thoughtsTokenCount"))
    if prompt is not None or tool_use is not None:
        info.input_tokens = (prompt or 0) + (tool_use or 0)
    if candidates is not None or thoughts is not None:
        info.output_tokens = (candidates or 0) + (thoughts or 0)
    info.cache_read_tokens = as_int(_field(meta, "cached_content_token_count", "cachedContentTokenCount"))
    info.reasoning_tokens = thoughts


def parse_response(obj: Any) -> CallInfo:
    """A `GenerateContentResponse` (SDK object or JSON dict), whole or one stream chunk."""
    info = CallInfo(
        _str(_field(obj, "model_version", "modelVersion")),  # response_model
        _str(_field(obj, "response_id", "responseId")),  # response_id
    )
    usage(_field(obj, "usage_metadata", "usageMetadata"), info)
    candidates = get(obj, "candidates")
    reasons: list[str] = []
    if isinstance(candidates, list):
        for candidate in candidates:
            reason = _enum_name(_field(candidate, "finish_reason", "finishReason"))
            if reason:
                reasons.append(reason)
    if not candidates:  # the prompt itself was blocked: no candidates, a block reason instead
        block = _enum_name(_field(_field(obj, "prompt_feedback", "promptFeedback"), "block_reason", "blockReason"))
        if block:
            reasons.append(block)
    info.finish_reasons = tuple(reasons)
    return info


def parse_chunk(chunk: Any) -> CallInfo | None:
    """One `streamGenerateContent` chunk; its usage is cumulative, so later chunks replace earlier ones."""
    info = parse_response(chunk)
    if info.has_usage or info.finish_reasons or info.response_model or info.response_id:
        return info
    return None


def parse_embeddings(obj: Any) -> CallInfo:
    """`EmbedContentResponse` / `batchEmbedContents` / `embedContent` / Vertex `predict` embeddings.

    Usage comes from `usageMetadata` when present, else from the per-embedding `statistics.token_count`
    that Vertex reports (summed over the inputs)."""
    info = CallInfo()
    usage(_field(obj, "usage_metadata", "usageMetadata"), info)
    info.output_tokens = None  # an embedding has no output tokens
    if info.input_tokens is not None:
        return info
    embeddings = get(obj, "embeddings")
    if not isinstance(embeddings, list):
        predictions = get(obj, "predictions")  # Vertex predict JSON: predictions[].embeddings
        embeddings = [get(p, "embeddings") for p in predictions] if isinstance(predictions, list) else []
    single = get(obj, "embedding")
    if single is not None:
        embeddings = [*embeddings, single]
    total = None
    for embedding in embeddings:
        count = as_int(_field(get(embedding, "statistics"), "token_count", "tokenCount"))
        if count is not None:
            total = (total or 0) + count
    info.input_tokens = total
    return info


def _has_image(generated: Any) -> bool:
    image = get(generated, "image")
    if image is not None:
        return get(image, "image_bytes") is not None or get(image, "gcs_uri") is not None
    return bool(_field(generated, "bytes_base64_encoded", "bytesBase64Encoded") or get(generated, "gcsUri"))


def image_size(aspect_ratio: Any = None, size: Any = None) -> str | None:
    """Pixel size ("1408x768") of an Imagen request from its aspect ratio and size ("1K"/"2K").

    Defaults are Imagen's own (1:1, 1K). An unrecognised value is returned as given, so the record
    still says what was asked for (the carbon engine then flags the size as unknown)."""
    ratio = aspect_ratio if isinstance(aspect_ratio, str) and aspect_ratio else "1:1"
    scale = size.strip().upper() if isinstance(size, str) and size else "1K"
    dims = _IMAGEN_1K.get(ratio.replace(" ", ""))
    if dims is None:
        return ratio
    factor = {"1K": 1, "2K": 2}.get(scale)
    if factor is None:
        return f"{ratio}@{scale}"
    return f"{dims[0] * factor}x{dims[1] * factor}"


def parse_images(obj: Any, size: str | None = None, quality: str | None = None) -> CallInfo:
    """`GenerateImagesResponse` (SDK) or Imagen `predict` JSON: the images actually returned.

    Entries filtered by responsible-AI checks and the "Positive Prompt" safety entry carry no image
    and are not counted."""
    items = _field(obj, "generated_images", "generatedImages")
    if not isinstance(items, list):
        items = get(obj, "predictions")
    count = sum(1 for item in items if _has_image(item)) if isinstance(items, list) else None
    return CallInfo(images=count, image_size=size, image_quality=quality)


VEO_DEFAULT_SECONDS = 8  # Veo's clip length when `duration_seconds` is not set (Gemini API video docs)
VEO_DEFAULT_RESOLUTION = "720p"


def parse_video_operation(obj: Any, seconds: Any = None, count: Any = None, resolution: Any = None) -> CallInfo:
    """`generate_videos`: a long-running operation, counted when it is accepted for the seconds of video
    asked for (`duration_seconds` x `number_of_videos`, Veo's defaults otherwise). An operation that
    already failed generated nothing."""
    name = _str(get(obj, "name"))
    info = CallInfo(response_id=name)
    seconds = seconds if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) else None
    count = count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 1
    failed = get(obj, "error") is not None
    info.video_seconds = 0.0 if failed else float((seconds or VEO_DEFAULT_SECONDS) * count)
    info.video_resolution = _str(resolution) or VEO_DEFAULT_RESOLUTION
    return info
