"""Read one model call out of a span's attributes, whoever instrumented it.

GenAI spans reach us with three vocabularies: the GenAI semantic conventions v1.41 (ours and the official
``opentelemetry-instrumentation-openai-v2`` / util-genai), their deprecated names (``gen_ai.system``,
``gen_ai.usage.prompt_tokens``) still written by OpenLLMetry (traceloop), and vendor additions
(OpenLLMetry ``llm.request.type`` / ``llm.usage.total_tokens`` / ``gen_ai.usage.cache_read_input_tokens``,
OpenLIT ``gen_ai.usage.reasoning_tokens``). ``call_from_attributes`` folds all of them into the one
``Call`` that ``tailpipe_ai.exporter.records`` turns into energy/carbon attributes and a record.

It is a plain function over a mapping, with no OpenTelemetry import, because two callers need it: the
in-process ``CarbonSpanProcessor`` (SDK span attributes) and the OTLP gateway (decoded OTLP attributes).

Only metadata is read: token counts, model and provider names, ids, the operation and status. Content
attributes are never looked at, so the function cannot copy a prompt into a record by mistake.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from tailpipe_ai.exporter.records import Call
from tailpipe_ai.providers import CallInfo
from tailpipe_ai.semconv import attributes as sc

# Every name read, best first: the v1.41 semconv name, then deprecated and vendor spellings.
INPUT_TOKENS = (
    sc.GEN_AI_USAGE_INPUT_TOKENS,
    sc.GEN_AI_USAGE_PROMPT_TOKENS,  # OpenLLMetry, semconv < 1.27
    "llm.usage.prompt_tokens",
    "llm.usage.input_tokens",
)
OUTPUT_TOKENS = (
    sc.GEN_AI_USAGE_OUTPUT_TOKENS,
    sc.GEN_AI_USAGE_COMPLETION_TOKENS,  # OpenLLMetry, semconv < 1.27
    "llm.usage.completion_tokens",
    "llm.usage.output_tokens",
)
TOTAL_TOKENS = ("llm.usage.total_tokens", "gen_ai.usage.total_tokens")  # OpenLLMetry, OpenLIT
CACHE_READ_TOKENS = (
    sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    "gen_ai.usage.cache_read_input_tokens",  # OpenLLMetry
    "llm.usage.cache_read_input_tokens",
    "gen_ai.usage.input_tokens_details.cached",  # OpenLLMetry LangChain
)
CACHE_WRITE_TOKENS = (
    sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,  # semantic-conventions-genai main (unreleased rename)
    "gen_ai.usage.cache_creation_input_tokens",  # OpenLLMetry
    "llm.usage.cache_creation_input_tokens",
)
REASONING_TOKENS = (
    sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    "gen_ai.usage.reasoning_tokens",  # OpenLLMetry, OpenLIT
    "llm.usage.reasoning_tokens",
)
PROVIDER = (sc.GEN_AI_PROVIDER_NAME, sc.GEN_AI_SYSTEM)
STREAMED = (sc.GEN_AI_REQUEST_STREAM, "llm.is_streaming")  # the latter: OpenLLMetry
LLM_REQUEST_TYPE = "llm.request.type"  # OpenLLMetry: chat | completion | embedding | rerank | unknown
TRACELOOP_SPAN_KIND = "traceloop.span.kind"  # OpenLLMetry: workflow | task | agent | tool | unknown

_ALL_TOKEN_NAMES = INPUT_TOKENS + OUTPUT_TOKENS + TOTAL_TOKENS
GENAI_MARKERS = frozenset(
    {*PROVIDER, sc.GEN_AI_OPERATION_NAME, LLM_REQUEST_TYPE, sc.GEN_AI_REQUEST_MODEL, sc.GEN_AI_RESPONSE_MODEL}
)
"""A span without any of these is not a GenAI span (checked in C first: most spans are not)."""
_GENAI_MARKERS = GENAI_MARKERS

_TOKEN_NAME_SET = frozenset(_ALL_TOKEN_NAMES)
_CACHE_AND_REASONING_KEYS = frozenset(CACHE_READ_TOKENS + CACHE_WRITE_TOKENS + REASONING_TOKENS)
_MEDIA_KEYS = frozenset(
    {
        sc.TAILPIPE_IMAGES_COUNT,
        sc.TAILPIPE_IMAGE_SIZE,
        sc.TAILPIPE_IMAGE_QUALITY,
        sc.TAILPIPE_VIDEO_SECONDS,
        sc.TAILPIPE_VIDEO_RESOLUTION,
    }
)

TAG_PREFIX = sc.TAILPIPE_ATTR_PREFIX
"""Attributes under this prefix are attribution tags, copied to the call."""

READ_KEYS = frozenset(
    {
        *GENAI_MARKERS,
        TRACELOOP_SPAN_KIND,
        *_ALL_TOKEN_NAMES,
        *_CACHE_AND_REASONING_KEYS,
        *STREAMED,
        sc.GEN_AI_RESPONSE_ID,
        sc.GEN_AI_RESPONSE_FINISH_REASONS,
        *_MEDIA_KEYS,
        sc.TAILPIPE_TOKEN_ACCURACY,
        sc.ERROR_TYPE,
        sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
        sc.GEN_AI_OUTPUT_TYPE,
    }
)
"""Every attribute name ``call_from_attributes`` reads besides the ``TAG_PREFIX`` tags: the result depends on
these alone, so a caller holding undecoded attributes (the OTLP gateway) decodes only these
(tests/gateway/test_fast_path.py checks that no other name is looked up)."""

INFERENCE_OPERATIONS = frozenset(
    {
        sc.OPERATION_CHAT,
        sc.OPERATION_GENERATE_CONTENT,
        sc.OPERATION_TEXT_COMPLETION,
        sc.OPERATION_EMBEDDINGS,
        sc.OPERATION_IMAGE_GENERATION,
        sc.OPERATION_VIDEO_GENERATION,
    }
)
"""Operations that are one model call: these spans are read even when they carry no usage."""

AGGREGATE_OPERATIONS = frozenset(
    {
        sc.OPERATION_INVOKE_AGENT,
        sc.OPERATION_CREATE_AGENT,
        sc.OPERATION_INVOKE_WORKFLOW,
        sc.OPERATION_EXECUTE_TOOL,
        sc.OPERATION_RETRIEVAL,
        # OpenLIT / OpenLLMetry spellings of the same
        "agent",
        "workflow",
        "task",
        "tool",
        "framework",
        "vectordb",
    }
)
"""Operations that are not a model call. Agent and workflow spans may carry the summed usage of the
calls below them (semconv recommends it on ``invoke_agent``); reading them would count those calls twice."""

OPERATION_ALIASES = {
    "completion": sc.OPERATION_TEXT_COMPLETION,  # OpenLLMetry llm.request.type
    "embedding": sc.OPERATION_EMBEDDINGS,
    "image": sc.OPERATION_IMAGE_GENERATION,  # OpenLIT
}

PROVIDER_ALIASES = {
    # spellings seen in gen_ai.system from peers (lower-cased first), beyond semconv's own renames
    "aws": sc.PROVIDER_AWS_BEDROCK,
    "bedrock": sc.PROVIDER_AWS_BEDROCK,
    "aws_bedrock": sc.PROVIDER_AWS_BEDROCK,
    "mistralai": sc.PROVIDER_MISTRAL_AI,
    "mistral": sc.PROVIDER_MISTRAL_AI,
    "vertexai": sc.PROVIDER_GCP_VERTEX_AI,
    "azure_openai": sc.PROVIDER_AZURE_AI_OPENAI,
    "watsonx": sc.PROVIDER_IBM_WATSONX_AI,
    "x.ai": sc.PROVIDER_X_AI,
}

PROVIDER_OTHER = "_OTHER"
"""Provider used when a span names a model but no provider (semconv's fallback value)."""

FLAG_USAGE_TOTAL_ONLY = "usage_total_only"
"""The span gave only a total token count that could not be split into input and output."""
FLAG_INPUT_EXCLUDED_CACHE = "input_tokens_cache_added"
"""Cache tokens exceeded the input count, so the input count excluded them; they were added."""
FLAG_OUTPUT_EXCLUDED_REASONING = "output_tokens_reasoning_added"
"""Reasoning tokens exceeded the output count, so the output count excluded them; they were added."""


def call_from_attributes(
    attrs: Mapping[str, Any] | None,
    *,
    integration: str = sc.INTEGRATION_AUTO,
    region: str | None = None,
) -> Call | None:
    """The model call a span describes, or None if the span is not one model call.

    A span is read when it names a GenAI provider, operation or model and is not an agent, workflow or
    tool span (see ``AGGREGATE_OPERATIONS``). A span whose operation is missing or outside the inference
    set is read only if it carries token counts. Malformed values (strings that are not digits,
    negatives, NaN, bools) are ignored as if absent; the function does not raise on any mapping of
    attribute values.

    Token counts follow semconv: ``input_tokens`` includes cache tokens and ``output_tokens`` includes
    reasoning tokens. When a peer's counts prove otherwise (cache > input, reasoning > output) the parts
    are added and a flag says so; smaller exclusive counts cannot be detected and are kept as given.

    ``integration`` is the record's integration value (``auto`` in-process, ``gateway`` for OTLP);
    ``region`` the cloud region to estimate with (None: the configured default).
    """
    if not attrs or _GENAI_MARKERS.isdisjoint(attrs):
        return None
    get = attrs.get
    operation = _text(get(sc.GEN_AI_OPERATION_NAME)) or _text(get(LLM_REQUEST_TYPE))
    raw_provider = _first_text(get, PROVIDER)
    request_model = _text(get(sc.GEN_AI_REQUEST_MODEL))
    response_model = _text(get(sc.GEN_AI_RESPONSE_MODEL))
    if raw_provider is None and operation is None and request_model is None and response_model is None:
        return None  # not a GenAI span (the common case: decided in a few lookups)
    if operation is not None:
        operation = OPERATION_ALIASES.get(operation.lower(), operation)
        if operation.lower() in AGGREGATE_OPERATIONS:
            return None
    if (_text(get(TRACELOOP_SPAN_KIND)) or "").lower() in AGGREGATE_OPERATIONS:
        return None
    if operation not in INFERENCE_OPERATIONS and _TOKEN_NAME_SET.isdisjoint(attrs):
        return None  # unknown or missing operation with no usage: nothing to estimate, maybe not a model call
    if operation == "unknown":
        operation = None

    info = CallInfo(
        response_model=response_model,
        response_id=_text(get(sc.GEN_AI_RESPONSE_ID)),
        finish_reasons=_texts(get(sc.GEN_AI_RESPONSE_FINISH_REASONS)),
        input_tokens=_first_count(get, INPUT_TOKENS),
        output_tokens=_first_count(get, OUTPUT_TOKENS),
    )
    if not _CACHE_AND_REASONING_KEYS.isdisjoint(attrs):  # many spans carry none: eleven lookups saved
        info.cache_read_tokens = _first_count(get, CACHE_READ_TOKENS)
        info.cache_write_tokens = _first_count(get, CACHE_WRITE_TOKENS)
        info.reasoning_tokens = _first_count(get, REASONING_TOKENS)
    if not _MEDIA_KEYS.isdisjoint(attrs):  # most spans carry none: five lookups saved
        info.images = _count(get(sc.TAILPIPE_IMAGES_COUNT))
        info.image_size = _text(get(sc.TAILPIPE_IMAGE_SIZE))
        info.image_quality = _text(get(sc.TAILPIPE_IMAGE_QUALITY))
        info.video_seconds = _seconds(get(sc.TAILPIPE_VIDEO_SECONDS))
        info.video_resolution = _text(get(sc.TAILPIPE_VIDEO_RESOLUTION))
    flags = _reconcile_tokens(info, _first_count(get, TOTAL_TOKENS))

    token_accuracy = _text(get(sc.TAILPIPE_TOKEN_ACCURACY))
    if token_accuracy not in sc.TOKEN_ACCURACIES:
        token_accuracy = sc.TOKEN_ACCURACY_EXACT
    if not info.has_usage and not info.images and not info.video_seconds:
        token_accuracy = sc.TOKEN_ACCURACY_ESTIMATED
        flags.append(sc.FLAG_USAGE_MISSING)
    elif FLAG_USAGE_TOTAL_ONLY in flags:
        token_accuracy = sc.TOKEN_ACCURACY_ESTIMATED

    error_type = _text(get(sc.ERROR_TYPE))
    ttft_s = _seconds(get(sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK))
    output_type = _text(get(sc.GEN_AI_OUTPUT_TYPE))
    return Call(
        provider=_provider(raw_provider),
        operation=operation,  # type: ignore[arg-type]  # None when the span does not say; records allow null
        request_model=request_model,
        integration=integration,
        info=info,
        ttft_ms=ttft_s * 1000.0 if ttft_s is not None else None,
        streamed=_first_bool(get, STREAMED),
        status="error" if error_type else "ok",
        error_type=error_type,
        token_accuracy=token_accuracy,
        region=region,
        output_type=output_type if output_type in sc.OUTPUT_TYPES else None,
        attributes=_tags(attrs),
        flags=tuple(dict.fromkeys(flags)) if flags else (),
    )


def _tags(attrs: Mapping[str, Any]) -> dict[str, str]:
    """The ``tailpipe.attr.*`` attribution tags, prefix removed (string values only)."""
    start = len(TAG_PREFIX)
    return {
        key[start:]: value
        for key, value in attrs.items()
        if isinstance(key, str) and key.startswith(TAG_PREFIX) and isinstance(value, str)
    }


def _reconcile_tokens(info: CallInfo, total: int | None) -> list[str]:
    """Make the counts semconv-shaped (cache inside input, reasoning inside output); fill a side from the
    total when only the other side is known."""
    flags: list[str] = []
    cache = (info.cache_read_tokens or 0) + (info.cache_write_tokens or 0)
    if info.input_tokens is not None and cache > info.input_tokens:
        info.input_tokens += cache
        flags.append(FLAG_INPUT_EXCLUDED_CACHE)
    reasoning = info.reasoning_tokens
    if info.output_tokens is not None and reasoning is not None and reasoning > info.output_tokens:
        info.output_tokens += reasoning
        flags.append(FLAG_OUTPUT_EXCLUDED_REASONING)
    if total is not None:
        if info.input_tokens is not None and info.output_tokens is None and total >= info.input_tokens:
            info.output_tokens = total - info.input_tokens
        elif info.output_tokens is not None and info.input_tokens is None and total >= info.output_tokens:
            info.input_tokens = total - info.output_tokens
        elif info.input_tokens is None and info.output_tokens is None:
            info.total_tokens = total  # the engine's flat method can still use the sum
            flags.append(FLAG_USAGE_TOTAL_ONLY)
    return flags


_provider_cache: dict[str, str] = {}


def _provider(raw: str | None) -> str:
    if raw is None:
        return PROVIDER_OTHER
    hit = _provider_cache.get(raw)
    if hit is None:
        hit = _normalized_provider(raw)
        if len(_provider_cache) < 4096:
            _provider_cache[raw] = hit
    return hit


def _normalized_provider(raw: str) -> str:
    lowered = raw.strip().lower()
    if lowered in sc.WELL_KNOWN_PROVIDERS:
        return lowered
    normalized = sc.normalize_provider_name(lowered)
    return PROVIDER_ALIASES.get(normalized, normalized) or PROVIDER_OTHER


def _count(value: Any) -> int | None:
    """A non-negative whole count, or None (bools, negatives, fractions, NaN and junk strings included)."""
    if type(value) is int:  # the common case, first
        return value if value >= 0 else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() and value >= 0 else None
    if isinstance(value, str) and 0 < len(value) <= 15 and value.isascii() and value.isdigit():
        return int(value)  # OTLP/JSON encodes int64 as a string
    return None


def _first_count(get: Callable[[str], Any], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = get(name)
        if value is not None:
            value = _count(value)
            if value is not None:
                return value
    return None


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _first_text(get: Callable[[str], Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _texts(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, (list, tuple)):
        return tuple(v for v in value if isinstance(v, str) and v)
    return ()


def _first_bool(get: Callable[[str], Any], names: tuple[str, ...]) -> bool:
    for name in names:
        value = get(name)
        if isinstance(value, bool):
            return value
    return False
