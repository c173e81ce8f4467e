"""Anthropic Messages API (first party, Bedrock, Vertex AI): usage from Message objects, JSON bodies and
stream events.

Anthropic's ``input_tokens`` excludes cached tokens, so the GenAI semconv input count is
``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``; the cache parts are also reported
on their own. ``output_tokens`` already includes thinking tokens (``output_tokens_details.thinking_tokens``
is a breakdown), which become ``reasoning_tokens``.

In a stream, ``message_start`` carries the input side (and a placeholder output count) and every
``message_delta`` carries *cumulative* counts: each field present replaces the one seen before, never adds
to it. Some deltas repeat the input side, some carry only ``output_tokens``; `StreamParser` keeps the raw
fields between events so both work. Only usage, ids, model names and stop reasons are read.
"""

from __future__ import annotations

from typing import Any

from .base import CallInfo, as_int, get, reader

# Anthropic stop reasons mapped to the common GenAI finish reasons (as the official OTel instrumentation
# does); a reason not listed is reported as the provider sent it.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_call",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: Any) -> tuple[str, ...]:
    if not isinstance(stop_reason, str) or not stop_reason:
        return ()
    return (FINISH_REASONS.get(stop_reason, stop_reason),)


def read_usage(usage: Any) -> dict[str, int]:
    """The raw counts present (and well-formed) in one ``usage`` object; malformed values are left out."""
    if usage is None or isinstance(usage, (str, bytes, int, float, list)):
        return {}
    field = reader(usage)
    raw = {
        "input": as_int(field("input_tokens")),
        "cache_read": as_int(field("cache_read_input_tokens")),
        "cache_write": as_int(field("cache_creation_input_tokens")),
        "output": as_int(field("output_tokens")),
        "thinking": as_int(get(field("output_tokens_details"), "thinking_tokens")),
    }
    return {k: v for k, v in raw.items() if v is not None}


def normalise(raw: dict[str, int], info: CallInfo | None = None) -> CallInfo:
    """Raw Anthropic counts -> semconv counts (input includes both cache parts)."""
    info = info if info is not None else CallInfo()
    if "input" in raw:
        info.input_tokens = raw["input"] + raw.get("cache_read", 0) + raw.get("cache_write", 0)
    info.output_tokens = raw.get("output")
    info.cache_read_tokens = raw.get("cache_read")
    info.cache_write_tokens = raw.get("cache_write")
    info.reasoning_tokens = raw.get("thinking")
    return info


def parse_response(obj: Any) -> CallInfo:
    """A non-streamed Message (SDK object, ParsedMessage, or JSON dict)."""
    field = reader(obj)
    info = CallInfo(_str(field("model")), _str(field("id")))
    normalise(read_usage(field("usage")), info)
    info.finish_reasons = finish_reason(field("stop_reason"))
    return info


class StreamParser:
    """Stream events -> `CallInfo` updates. One instance per stream: it keeps the raw counts seen so far."""

    __slots__ = ("raw",)

    def __init__(self) -> None:
        self.raw: dict[str, int] = {}

    def __call__(self, event: Any) -> CallInfo | None:
        kind = get(event, "type")
        if kind == "message_start":
            field = reader(get(event, "message"))
            self.raw = read_usage(field("usage"))
            info = CallInfo(_str(field("model")), _str(field("id")))
            return normalise(self.raw, info)
        if kind == "message_delta":
            self.raw.update(read_usage(get(event, "usage")))
            info = normalise(self.raw)
            info.finish_reasons = finish_reason(get(get(event, "delta"), "stop_reason"))
            return info
        if kind == "message_stop" and not self.raw:
            return self._bedrock_metrics(event)
        return None

    def _bedrock_metrics(self, event: Any) -> CallInfo | None:
        """Bedrock appends invocation metrics to ``message_stop``; used only when the stream had no usage."""
        metrics = get(event, "amazon-bedrock-invocationMetrics")
        if metrics is None:
            extra = get(event, "model_extra")  # pydantic keeps unknown fields here
            metrics = extra.get("amazon-bedrock-invocationMetrics") if isinstance(extra, dict) else None
        if metrics is None or isinstance(metrics, (str, bytes, int, float, list)):
            return None
        raw = {
            "input": as_int(get(metrics, "inputTokenCount")),
            "output": as_int(get(metrics, "outputTokenCount")),
            "cache_read": as_int(get(metrics, "cacheReadInputTokenCount")),
            "cache_write": as_int(get(metrics, "cacheWriteInputTokenCount")),
        }
        raw = {k: v for k, v in raw.items() if v is not None}
        return normalise(raw) if raw else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
