"""Mistral AI (La Plateforme): usage from `mistralai` SDK objects and from the REST JSON.

Chat and FIM completions, their stream chunks and embeddings share one OpenAI-like `usage` object:
`prompt_tokens` (cached tokens included; the cached part in `prompt_tokens_details.cached_tokens`),
`completion_tokens` (reasoning included when `completion_tokens_details.reasoning_tokens` is reported)
and `total_tokens`. A stream carries `usage` on its final chunk, next to `finish_reason`; any chunk that
has one replaces what came before.

The SDK's `UsageInfo` defaults absent counts to 0, so for SDK objects a count the server did not send
(not in `model_fields_set`) is read as unknown, not as zero.
"""

from __future__ import annotations

from typing import Any

from .base import CallInfo, as_int, get


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _count(usage: Any, name: str) -> int | None:
    declared = getattr(type(usage), "model_fields", None)
    sent = getattr(usage, "model_fields_set", None)
    if isinstance(declared, dict) and name in declared and isinstance(sent, (set, frozenset)) and name not in sent:
        return None
    return as_int(get(usage, name))


def usage(obj: Any, info: CallInfo) -> None:
    """Fill the token fields of `info` from a `usage` object or dict (no-op when absent)."""
    if obj is None or isinstance(obj, (str, bytes, int, float, list, tuple)):
        return
    info.input_tokens = _count(obj, "prompt_tokens")
    info.output_tokens = _count(obj, "completion_tokens")
    if info.input_tokens is None and info.output_tokens is None:  # embeddings may report only the total
        info.input_tokens = _count(obj, "total_tokens")
    info.cache_read_tokens = as_int(get(get(obj, "prompt_tokens_details"), "cached_tokens"))
    info.reasoning_tokens = as_int(get(get(obj, "completion_tokens_details"), "reasoning_tokens"))


def _finish_reasons(choices: Any) -> tuple[str, ...]:
    if not isinstance(choices, list):
        return ()
    return tuple(r for r in (get(c, "finish_reason") for c in choices) if isinstance(r, str) and r)


def parse_response(obj: Any) -> CallInfo:
    """`ChatCompletionResponse`, FIM completion or `EmbeddingResponse` (SDK object or JSON dict)."""
    info = CallInfo(_str(get(obj, "model")), _str(get(obj, "id")))
    usage(get(obj, "usage"), info)
    info.finish_reasons = _finish_reasons(get(obj, "choices"))
    return info


def parse_embeddings(obj: Any) -> CallInfo:
    """`EmbeddingResponse`: input tokens only (an embedding has no output tokens)."""
    info = parse_response(obj)
    if info.input_tokens is None:
        info.input_tokens = info.output_tokens
    info.output_tokens = None
    return info


def parse_chunk(event: Any) -> CallInfo | None:
    """One stream event: the SDK's `CompletionEvent` (chunk in `.data`) or a raw `CompletionChunk` dict."""
    chunk = get(event, "data", event)
    if isinstance(chunk, str):  # the proxy's "[DONE]" sentinel, or an undecoded line
        return None
    info = parse_response(chunk)
    if info.has_usage or info.finish_reasons or info.response_model or info.response_id:
        return info
    return None
