"""call_from_attributes: every vocabulary of GenAI span attributes to one Call."""

from __future__ import annotations

import logging
import math

import pytest

from tailpipe_ai.processor import call_from_attributes
from tailpipe_ai.processor.span_reading import (
    FLAG_INPUT_EXCLUDED_CACHE,
    FLAG_OUTPUT_EXCLUDED_REASONING,
    FLAG_USAGE_TOTAL_ONLY,
)
from tailpipe_ai.semconv import attributes as sc


def test_semconv_v141_names():
    call = call_from_attributes(
        {
            sc.GEN_AI_OPERATION_NAME: "chat",
            sc.GEN_AI_PROVIDER_NAME: "openai",
            sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
            sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
            sc.GEN_AI_RESPONSE_ID: "chatcmpl-1",
            sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
            sc.GEN_AI_USAGE_INPUT_TOKENS: 100,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 40,
            sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 30,
            sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 10,
            sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 20,
            sc.GEN_AI_REQUEST_STREAM: True,
            sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: 0.25,
            sc.TAILPIPE_ATTR_PREFIX + "team": "search",
        }
    )
    assert call is not None
    assert (call.provider, call.operation, call.request_model) == ("openai", "chat", "gpt-4o")
    i = call.info
    assert (i.response_model, i.response_id, i.finish_reasons) == ("gpt-4o-2024-08-06", "chatcmpl-1", ("stop",))
    assert (i.input_tokens, i.output_tokens, i.cache_read_tokens, i.cache_write_tokens, i.reasoning_tokens) == (
        100,
        40,
        30,
        10,
        20,
    )
    assert call.streamed is True
    assert call.ttft_ms == pytest.approx(250.0)
    assert call.attributes == {"team": "search"}
    assert call.token_accuracy == "exact"
    assert call.flags == ()
    assert call.integration == "auto"


def test_openllmetry_legacy_names():
    call = call_from_attributes(
        {
            "gen_ai.system": "Anthropic",
            "llm.request.type": "completion",
            "gen_ai.request.model": "claude-3-haiku",
            "gen_ai.usage.prompt_tokens": 500,
            "gen_ai.usage.completion_tokens": 60,
            "llm.usage.total_tokens": 560,
            "gen_ai.usage.cache_read_input_tokens": 100,
            "gen_ai.usage.cache_creation_input_tokens": 50,
            "llm.is_streaming": True,
        },
        integration="gateway",
    )
    assert call is not None
    assert (call.provider, call.operation, call.integration) == ("anthropic", "text_completion", "gateway")
    assert (call.info.input_tokens, call.info.output_tokens) == (500, 60)
    assert (call.info.cache_read_tokens, call.info.cache_write_tokens) == (100, 50)
    assert call.streamed is True


def test_openlit_reasoning_and_provider_aliases():
    call = call_from_attributes(
        {
            "gen_ai.system": "vertex_ai",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gemini-2.5-pro",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 100,
            "gen_ai.usage.reasoning_tokens": 80,
        }
    )
    assert call.provider == "gcp.vertex_ai"
    assert call.info.reasoning_tokens == 80
    assert call_from_attributes({"gen_ai.system": "Bedrock", "gen_ai.usage.input_tokens": 1}).provider == "aws.bedrock"
    assert call_from_attributes({"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 1}).provider == "_OTHER"


def test_exclusive_counts_are_made_inclusive_when_provably_exclusive():
    call = call_from_attributes(
        {
            sc.GEN_AI_PROVIDER_NAME: "aws.bedrock",
            sc.GEN_AI_OPERATION_NAME: "chat",
            sc.GEN_AI_USAGE_INPUT_TOKENS: 50,  # Bedrock Converse inputTokens excludes cache
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 10,
            sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 1000,
            sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 30,
        }
    )
    assert call.info.input_tokens == 1050
    assert call.info.output_tokens == 40
    assert set(call.flags) == {FLAG_INPUT_EXCLUDED_CACHE, FLAG_OUTPUT_EXCLUDED_REASONING}


def test_total_fills_the_missing_side():
    both = {"gen_ai.system": "openai", "llm.request.type": "chat", "llm.usage.total_tokens": 100}
    call = call_from_attributes({**both, "gen_ai.usage.prompt_tokens": 70})
    assert (call.info.input_tokens, call.info.output_tokens) == (70, 30)
    call = call_from_attributes({**both, "gen_ai.usage.completion_tokens": 30})
    assert (call.info.input_tokens, call.info.output_tokens) == (70, 30)
    call = call_from_attributes(both)
    assert FLAG_USAGE_TOTAL_ONLY in call.flags
    assert call.token_accuracy == "estimated"


@pytest.mark.parametrize(
    "attrs",
    [
        None,
        {},
        {"http.request.method": "GET"},
        {"db.system.name": "postgresql", "gen_ai.system": "chroma"},  # vector DB span, no usage
        {sc.GEN_AI_OPERATION_NAME: "invoke_agent", sc.GEN_AI_USAGE_INPUT_TOKENS: 100},
        {sc.GEN_AI_OPERATION_NAME: "execute_tool", sc.GEN_AI_PROVIDER_NAME: "openai"},
        {"gen_ai.system": "openai", "traceloop.span.kind": "workflow", "gen_ai.usage.prompt_tokens": 9},
        {sc.GEN_AI_OPERATION_NAME: "rerank", sc.GEN_AI_PROVIDER_NAME: "cohere"},  # not inference, no tokens
    ],
)
def test_not_a_model_call(attrs):
    assert call_from_attributes(attrs) is None


def test_inference_span_without_usage_is_flagged():
    call = call_from_attributes({sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_PROVIDER_NAME: "openai"})
    assert call is not None
    assert sc.FLAG_USAGE_MISSING in call.flags
    assert call.token_accuracy == "estimated"


@pytest.mark.parametrize(
    "bad",
    ["lots", "-5", "", "1e3", "１２", -5, 1.5, math.nan, math.inf, True, None, [1, 2], b"12", object()],
)
def test_malformed_counts_are_ignored(bad):
    call = call_from_attributes(
        {sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_USAGE_INPUT_TOKENS: bad}
    )
    assert call.info.input_tokens is None


def test_digit_strings_and_integral_floats_are_counts():
    call = call_from_attributes(
        {
            sc.GEN_AI_PROVIDER_NAME: "openai",
            sc.GEN_AI_USAGE_INPUT_TOKENS: "120",  # OTLP/JSON int64
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 30.0,
        }
    )
    assert (call.info.input_tokens, call.info.output_tokens) == (120, 30)


def test_carbon_processor_failure_forwards_the_original_and_logs_once(monkeypatch, caplog, pipeline):
    from tailpipe_ai.processor import _log, carbon

    def boom(call):
        raise RuntimeError("secret prompt text")

    monkeypatch.setattr(carbon, "estimate_call", boom)
    monkeypatch.setattr(_log, "_logged", set())
    with caplog.at_level(logging.WARNING, logger="tailpipe_ai.processor"):
        for _ in range(2):
            with pipeline.tracer.start_as_current_span(
                "chat", attributes={sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_USAGE_INPUT_TOKENS: 5}
            ):
                pass
    spans = pipeline.spans()
    assert len(spans) == 2
    assert all(sc.TAILPIPE_ENERGY_WH not in s.attributes for s in spans)
    assert len(caplog.records) == 1
    assert "secret prompt text" not in caplog.text
