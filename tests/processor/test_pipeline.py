"""The whole pipeline on the real SDK: third-party GenAI spans leave with energy and without content."""

from __future__ import annotations

import json

import pytest
from opentelemetry.trace import SpanKind, Status, StatusCode

from tailpipe_ai.carbon import Usage, estimate
from tailpipe_ai.processor import (
    CarbonSpanProcessor,
    ContentGuard,
    TraceRollupProcessor,
    build_pipeline,
)
from tailpipe_ai.semconv import attributes as sc

CANARIES = [f"CANARY-{i}-d41d8cd98f00b204" for i in range(12)]


def openllmetry_chat(tracer, canaries=CANARIES):
    """A span shaped like OpenLLMetry's OpenAI chat span with content tracing on (its default)."""
    c = canaries
    with tracer.start_as_current_span(
        "openai.chat",
        kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.system": "OpenAI",
            "llm.request.type": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.prompt_tokens": 1200,
            "gen_ai.usage.completion_tokens": 300,
            "llm.usage.total_tokens": 1500,
            "gen_ai.usage.cache_read_input_tokens": 200,
            "llm.is_streaming": False,
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": c[0],
            "gen_ai.completion.0.content": c[1],
            "gen_ai.completion.0.role": "assistant",
            "traceloop.entity.input": c[2],
            "traceloop.entity.output": c[3],
            "llm.prompts": c[4],
            "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"content": c[5]}]}]),
            "gen_ai.system_instructions": c[6],
        },
    ) as span:
        span.add_event("gen_ai.user.message", {"content": c[7]})
        span.add_event("gen_ai.choice", {"message": c[8]})
        span.add_event("gen_ai.client.inference.operation.details", {"gen_ai.output.messages": c[9]})
        span.add_event("app.checkpoint", {"gen_ai.prompt": c[10], "step": "kept"})
    return span


def expected_estimate(**usage):
    return estimate(Usage(**usage))


def test_third_party_span_gets_energy_and_loses_every_canary(pipeline):
    openllmetry_chat(pipeline.tracer)
    out = pipeline.span("openai.chat")
    attrs = dict(out.attributes)

    exp = expected_estimate(
        model="gpt-4o-2024-08-06", provider="openai", input_tokens=1200, output_tokens=300, cache_read_tokens=200
    )
    assert attrs[sc.TAILPIPE_ENERGY_WH] == pytest.approx(exp.energy_wh)
    assert attrs[sc.TAILPIPE_ENERGY_WH_MIN] == pytest.approx(exp.energy_wh_min)
    assert attrs[sc.TAILPIPE_ENERGY_WH_MAX] == pytest.approx(exp.energy_wh_max)
    assert attrs[sc.TAILPIPE_CARBON_GCO2E] == pytest.approx(exp.carbon_gco2e)
    assert attrs[sc.TAILPIPE_ESTIMATE_METHOD] == exp.method
    assert attrs[sc.TAILPIPE_FACTORS_PUE] == exp.factors["pue"]["value"]
    assert attrs[sc.TAILPIPE_DATASET_VERSION] == exp.factors["dataset_version"]
    # usage also in v1.41 names, the peer's own attributes kept as reported
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1200
    assert attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 300
    assert attrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 200
    assert attrs["gen_ai.usage.prompt_tokens"] == 1200
    assert attrs["gen_ai.system"] == "OpenAI"

    dumped = out.to_json()
    for canary in CANARIES:
        assert canary not in dumped
    assert not [k for k in attrs if sc.is_content_attribute(k)]
    assert [e.name for e in out.events] == ["app.checkpoint"]
    assert dict(out.events[0].attributes) == {"step": "kept"}


def test_nothing_exported_holds_a_canary(pipeline):
    """Every exported span, serialised whole, against every canary: the span, its root, its errors."""
    with pipeline.tracer.start_as_current_span("handle_request"):
        openllmetry_chat(pipeline.tracer)
        with pipeline.tracer.start_as_current_span(
            "anthropic.chat", attributes={"gen_ai.system": "Anthropic", "gen_ai.request.model": "claude-sonnet-4"}
        ) as failing:
            failing.record_exception(ValueError(f"content policy: {CANARIES[11]}"))
            failing.set_status(Status(StatusCode.ERROR, f"ValueError: {CANARIES[11]}"))
            failing.set_attribute(sc.ERROR_TYPE, "ValueError")
    spans = pipeline.spans()
    assert {s.name for s in spans} == {"handle_request", "openai.chat", "anthropic.chat"}
    blob = "\n".join(s.to_json() for s in spans)
    for canary in CANARIES:
        assert canary not in blob
    failed = pipeline.span("anthropic.chat")
    (exc_event,) = [e for e in failed.events if e.name == "exception"]
    assert dict(exc_event.attributes)["exception.type"] == "ValueError"
    assert "exception.message" not in exc_event.attributes
    assert "exception.stacktrace" not in exc_event.attributes
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "ValueError"  # error.type, never the message
    # the raw sibling export shows the canaries were really there
    assert CANARIES[11] in pipeline.raw_span("anthropic.chat").to_json()
    assert CANARIES[0] in pipeline.raw_span("openai.chat").to_json()


def test_semconv_span_of_official_instrumentation(pipeline):
    with pipeline.tracer.start_as_current_span(
        "chat claude-sonnet-4",
        kind=SpanKind.CLIENT,
        attributes={
            sc.GEN_AI_OPERATION_NAME: "chat",
            sc.GEN_AI_PROVIDER_NAME: "anthropic",
            sc.GEN_AI_REQUEST_MODEL: "claude-sonnet-4",
            sc.GEN_AI_USAGE_INPUT_TOKENS: 5000,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 700,
            sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 1000,
            sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 100,
        },
    ):
        pass
    attrs = pipeline.span("chat claude-sonnet-4").attributes
    exp = expected_estimate(
        model="claude-sonnet-4",
        provider="anthropic",
        input_tokens=5000,
        output_tokens=700,
        cache_write_tokens=1000,
        reasoning_tokens=100,
    )
    assert attrs[sc.TAILPIPE_ENERGY_WH] == pytest.approx(exp.energy_wh)
    assert attrs[sc.TAILPIPE_CARBON_GCO2E] == pytest.approx(exp.carbon_gco2e)


def test_our_span_is_not_changed_nor_counted_twice(pipeline):
    ours = {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: "openai",
        sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
        sc.GEN_AI_USAGE_INPUT_TOKENS: 100,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 50,
        sc.TAILPIPE_ENERGY_WH: 0.125,
        sc.TAILPIPE_CARBON_GCO2E: 0.0625,
        sc.TAILPIPE_ESTIMATE_METHOD: "shape",
    }
    with (
        pipeline.tracer.start_as_current_span("root"),
        pipeline.tracer.start_as_current_span("chat gpt-4o", attributes=ours),
    ):
        pass
    out = pipeline.span("chat gpt-4o")
    assert dict(out.attributes) == ours
    assert out.to_json() == pipeline.raw_span("chat gpt-4o").to_json()
    root = pipeline.span("root").attributes
    assert root["tailpipe.trace.calls"] == 1
    assert root["tailpipe.trace.energy.wh"] == 0.125
    assert root["tailpipe.trace.carbon.gco2e"] == 0.0625


def test_non_genai_spans_pass_unchanged(pipeline):
    with pipeline.tracer.start_as_current_span(
        "GET /orders", kind=SpanKind.SERVER, attributes={"http.request.method": "GET", "http.route": "/orders"}
    ) as span:
        span.add_event("cache.miss", {"key.hash": "abc"})
        with pipeline.tracer.start_as_current_span("SELECT orders", attributes={"db.system.name": "postgresql"}):
            pass
    for name in ("GET /orders", "SELECT orders"):
        assert pipeline.span(name).to_json() == pipeline.raw_span(name).to_json()
    assert not any(k.startswith("tailpipe.") for s in pipeline.spans() for k in s.attributes)


def test_agent_span_with_summed_usage_gets_no_energy(pipeline):
    """invoke_agent spans may carry the usage of the calls below them: enriching them would double count."""
    with pipeline.tracer.start_as_current_span(
        "invoke_agent planner",
        attributes={
            sc.GEN_AI_OPERATION_NAME: "invoke_agent",
            sc.GEN_AI_PROVIDER_NAME: "openai",
            sc.GEN_AI_USAGE_INPUT_TOKENS: 1000,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 100,
        },
    ):
        pass
    assert sc.TAILPIPE_ENERGY_WH not in pipeline.span("invoke_agent planner").attributes


def test_malformed_span_passes_through(pipeline):
    with pipeline.tracer.start_as_current_span(
        "openai.chat",
        attributes={
            "gen_ai.system": "openai",
            "llm.request.type": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.prompt_tokens": "lots",
            "gen_ai.usage.completion_tokens": -5,
            "llm.usage.total_tokens": float("nan"),
            sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: True,
            sc.GEN_AI_RESPONSE_FINISH_REASONS: 42,
        },
    ):
        pass
    out = pipeline.span("openai.chat")
    assert out.attributes["gen_ai.usage.prompt_tokens"] == "lots"
    assert out.attributes["gen_ai.usage.completion_tokens"] == -5
    assert sc.FLAG_USAGE_MISSING in out.attributes[sc.TAILPIPE_FLAGS]
    assert out.attributes[sc.TAILPIPE_TOKEN_ACCURACY] == sc.TOKEN_ACCURACY_ESTIMATED


def test_order_of_build_pipeline():
    class Sink:
        pass

    head = build_pipeline(Sink())  # type: ignore[arg-type]
    assert isinstance(head, CarbonSpanProcessor)
    assert isinstance(head.next_processor, TraceRollupProcessor)
    assert isinstance(head.next_processor.next_processor, ContentGuard)
    assert isinstance(head.next_processor.next_processor.next_processor, Sink)


class Recorder:
    """A next processor that records what it is asked to do."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_start(self, span, parent_context=None):
        self.calls.append(("on_start", span.name))

    def _on_ending(self, span):
        self.calls.append(("_on_ending", span.name))

    def on_end(self, span):
        self.calls.append(("on_end", span.name))

    def shutdown(self):
        self.calls.append(("shutdown",))

    def force_flush(self, timeout_millis=30000):
        self.calls.append(("force_flush", timeout_millis))
        return True


def test_shutdown_and_force_flush_delegate():
    rec = Recorder()
    head = build_pipeline(rec)
    assert head.force_flush(1234) is True
    head.shutdown()
    assert rec.calls == [("force_flush", 1234), ("shutdown",)]


def test_live_span_never_reaches_the_next_processor():
    """on_start and _on_ending hand over the live span (content included): the guard keeps them."""
    from opentelemetry.sdk.trace import TracerProvider

    rec = Recorder()
    provider = TracerProvider()
    provider.add_span_processor(build_pipeline(rec))
    with provider.get_tracer("t").start_as_current_span("s"):
        pass
    assert rec.calls == [("on_end", "s")]
    provider.shutdown()
