"""OpenAI (and Azure OpenAI, and OpenAI-compatible APIs): usage from SDK objects, JSON bodies and
stream chunks/events of Chat Completions, Completions, Responses, Embeddings and Images.

Everything here reads only usage, model names, ids, statuses and finish reasons, through `get`, so the
same functions work on the SDK's pydantic objects and on the JSON dicts the proxy sees.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .base import CallInfo, as_int, get, reader

# Responses API stream events that carry the whole `response` object (the last three end the stream).
_RESPONSE_START = ("response.created", "response.queued", "response.in_progress")
RESPONSE_END_EVENTS = ("response.completed", "response.incomplete", "response.failed")


def _finish_reasons(choices: Any) -> tuple[str, ...]:
    if not isinstance(choices, (list, tuple)):
        return ()
    out = []
    for choice in choices:
        reason = get(choice, "finish_reason")
        if isinstance(reason, str):
            out.append(reason)
    return tuple(out)


# The two usage shapes' key names, spelled once (building them per call cost a string hash each time).
_CHAT_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details")
_RESPONSES_USAGE_KEYS = ("input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details")


def _usage(usage: Any, info: CallInfo) -> None:
    """Chat/Completions (prompt_/completion_tokens) and Responses/Images (input_/output_tokens) shapes.

    OpenAI's input count already includes cached tokens and its output count already includes reasoning
    tokens, as GenAI semconv wants. A usage object whose counts are present but not whole numbers is
    distrusted as a whole (nothing is taken from it), so the call is flagged instead of half-counted.
    """
    if usage is None:
        return
    field = reader(usage)
    raw_in = field("prompt_tokens")
    in_key, out_key, in_details, out_details = _CHAT_USAGE_KEYS if raw_in is not None else _RESPONSES_USAGE_KEYS
    if raw_in is None:
        raw_in = field(in_key)
    raw_out = field(out_key)
    inp, out = as_int(raw_in), as_int(raw_out)
    if (raw_in is not None and inp is None) or (raw_out is not None and out is None):
        return  # malformed: unexpected types or negative counts
    if inp is None and out is None:  # only the sum is known (nothing OpenAI itself sends, but compatibles do)
        info.total_tokens = as_int(field("total_tokens"))
    info.input_tokens = inp
    info.output_tokens = out
    details = field(in_details)
    if details is not None:
        detail = reader(details)
        info.cache_read_tokens = as_int(detail("cached_tokens"))
        info.cache_write_tokens = as_int(detail("cache_write_tokens"))
    details = field(out_details)
    if details is not None:
        info.reasoning_tokens = as_int(get(details, "reasoning_tokens"))


def parse_response(obj: Any) -> CallInfo:
    """A non-streamed response: ChatCompletion, Completion, Response, CreateEmbeddingResponse,
    ImagesResponse (SDK object or JSON dict)."""
    field = reader(obj)
    info = CallInfo(_str(field("model")), _str(field("id")))
    _usage(field("usage"), info)
    choices = field("choices")
    if choices:
        info.finish_reasons = _finish_reasons(choices)
    else:
        status = field("status")  # Responses API: completed | incomplete | failed | ...
        reason = _str(get(field("incomplete_details"), "reason"))
        if isinstance(status, str):
            info.finish_reasons = (reason or status,) if status == "incomplete" else (status,)
    return info


def parse_images(obj: Any, size: str | None = None, quality: str | None = None) -> CallInfo:
    """images.generate/edit/create_variation: the number of images returned, with the size and quality
    the response reports (GPT image models) or, failing that, the requested ones."""
    info = parse_response(obj)
    data = get(obj, "data")
    info.images = len(data) if isinstance(data, (list, tuple)) else None
    info.image_size = _str(get(obj, "size")) or size
    info.image_quality = _str(get(obj, "quality")) or quality
    return info


def parse_video(obj: Any, seconds: Any = None, size: str | None = None, *, generated_seconds: Any = None) -> CallInfo:
    """videos.create/remix/edit/extend: the job's model, id, status, clip length and size, read from the
    `Video` object the call returns (the requested `seconds`/`size` when it does not say).

    Energy is counted when the job is accepted, as the seed counts per second of video generated; a job
    that has already failed generated nothing. `generated_seconds` is what videos.extend adds, since its
    response describes the whole extended clip."""
    status = _str(get(obj, "status"))
    info = CallInfo(_str(get(obj, "model")), _str(get(obj, "id")))
    info.finish_reasons = (status,) if status else ()
    if status == "failed":
        info.video_seconds = 0.0
    elif generated_seconds is not None:
        info.video_seconds = _seconds(generated_seconds)
    else:
        info.video_seconds = _seconds(get(obj, "seconds"))
        if info.video_seconds is None:
            info.video_seconds = _seconds(seconds)
    info.video_resolution = _str(get(obj, "size")) or size
    return info


def _seconds(value: Any) -> float | None:
    """A clip length given as 4, 4.0 or "4" (the API's VideoSeconds are strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, (int, float)) and value >= 0:
        return float(value)
    return None


def parse_chunk(chunk: Any) -> CallInfo | None:
    """One Chat Completions / Completions stream chunk, or one Responses / Images stream event;
    None when it carries nothing we use. Stateless: use `stream_parser()` to count streamed images."""
    kind = get(chunk, "type")
    if isinstance(kind, str):
        if kind in RESPONSE_END_EVENTS:
            return parse_response(get(chunk, "response"))
        if kind in _RESPONSE_START:  # id and model only: its status ("in_progress") is no finish reason
            response = get(chunk, "response")
            return CallInfo(_str(get(response, "model")), _str(get(response, "id")))
        if kind in ("image_generation.completed", "image_edit.completed"):
            info = CallInfo(images=1, image_size=_str(get(chunk, "size")), image_quality=_str(get(chunk, "quality")))
            _usage(get(chunk, "usage"), info)
            return info
        return None
    field = reader(chunk)
    info = CallInfo(_str(field("model")), _str(field("id")))
    _usage(field("usage"), info)
    info.finish_reasons = _finish_reasons(field("choices"))
    return info


def stream_parser() -> Callable[[Any], CallInfo | None]:
    """A per-stream chunk parser: `parse_chunk`, plus the running count of images in an image stream
    (each `*.completed` event is one image; partial images are previews and do not count).

    Its `quiet` attribute tells stream wrappers which chunks they may pass without parsing, after the
    first one (see `is_quiet_chunk`)."""
    images = 0

    def parse(chunk: Any) -> CallInfo | None:
        nonlocal images
        info = parse_chunk(chunk)
        if info is not None and info.images:
            images += info.images
            info.images = images
        return info

    parse.quiet = is_quiet_chunk  # type: ignore[attr-defined]
    return parse


def is_quiet_chunk(chunk: Any) -> bool:
    """True for a Chat Completions chunk with neither usage nor a finish reason: after the first chunk
    (id, model) such chunks carry nothing we use, and most chunks of a stream are like that. A quiet
    chunk is never the usage-only chunk.

    It runs on every chunk of every stream, so an SDK chunk class known to be a Chat Completions chunk is
    read with three plain attribute reads; anything else (dicts, other event classes) goes through the
    field lookups of `_quiet_fields`."""
    if type(chunk) is not _chat_chunk_class and not _is_chat_chunk(chunk):
        return _quiet_fields(chunk)
    try:
        if chunk.usage is not None:
            return False
        choices = chunk.choices
        if len(choices) == 1:
            return choices[0].finish_reason is None
        return all(choice.finish_reason is None for choice in choices)
    except (AttributeError, TypeError):  # a field missing or of another type: parse the chunk instead
        return False


_chat_chunk_class: type | None = None  # the chat chunk class seen last: one identity test per chunk


def _is_chat_chunk(chunk: Any) -> bool:
    global _chat_chunk_class
    if _is_chat_chunk_class(type(chunk)):
        _chat_chunk_class = type(chunk)
        return True
    return False


@functools.lru_cache(maxsize=256)
def _is_chat_chunk_class(cls: type) -> bool:
    """A pydantic class with `usage` and `choices` fields and no `type` (Responses events have one)."""
    fields = getattr(cls, "model_fields", None)
    return isinstance(fields, dict) and "usage" in fields and "choices" in fields and "type" not in fields


def _quiet_fields(chunk: Any) -> bool:
    """`is_quiet_chunk` for JSON dicts and objects of unknown classes, from their fields."""
    if type(chunk) is dict:
        fields = chunk
    else:
        fields = getattr(chunk, "__dict__", None)
        if fields is None:
            return False
    if fields.get("usage") is not None or "type" in fields:
        return False
    choices = fields.get("choices")
    if type(choices) is not list:
        return False
    return all(_unfinished(choice) for choice in choices)


def _unfinished(choice: Any) -> bool:
    fields = choice if type(choice) is dict else getattr(choice, "__dict__", None)
    return fields is not None and fields.get("finish_reason") is None


def is_usage_only_chunk(chunk: Any) -> bool:
    """The extra chunk `stream_options.include_usage` adds at the end of a Chat Completions/Completions
    stream: `choices` empty and `usage` set. (Azure's first chunk also has empty `choices`, but no usage.)"""
    fields = chunk if isinstance(chunk, dict) else getattr(chunk, "__dict__", None)
    if fields is None:
        choices, usage = get(chunk, "choices"), get(chunk, "usage")
    else:  # the fast path: runs on every chunk of every stream
        choices, usage = fields.get("choices"), fields.get("usage")
    return usage is not None and isinstance(choices, (list, tuple)) and len(choices) == 0


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
