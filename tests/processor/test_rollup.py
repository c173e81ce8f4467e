"""Trace roll-ups: the local root carries the sum of its trace's energy and carbon."""

from __future__ import annotations

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from tailpipe_ai.carbon import Usage, estimate
from tailpipe_ai.processor import CarbonSpanProcessor, TraceRollupProcessor
from tailpipe_ai.processor.rollup import TAILPIPE_TRACE_CALLS, TAILPIPE_TRACE_CARBON_GCO2E, TAILPIPE_TRACE_ENERGY_WH
from tailpipe_ai.semconv import attributes as sc


def genai(tracer, name, model, prompt, completion, provider="openai"):
    with tracer.start_as_current_span(
        name,
        attributes={
            "gen_ai.system": provider,
            "llm.request.type": "chat",
            "gen_ai.request.model": model,
            "gen_ai.usage.prompt_tokens": prompt,
            "gen_ai.usage.completion_tokens": completion,
        },
    ):
        pass


def test_root_totals_equal_the_sum_of_children(pipeline):
    t = pipeline.tracer
    with t.start_as_current_span("handle_request"):
        genai(t, "call-1", "gpt-4o", 1000, 200)
        with t.start_as_current_span("retrieve"):  # not GenAI; its child is still part of the trace
            genai(t, "call-2", "gpt-4o-mini", 3000, 50)
        genai(t, "call-3", "claude-sonnet-4", 400, 900, provider="anthropic")
    children = [pipeline.span(n) for n in ("call-1", "call-2", "call-3")]
    root = pipeline.span("handle_request").attributes

    assert root[TAILPIPE_TRACE_CALLS] == 3
    assert root[TAILPIPE_TRACE_ENERGY_WH] == pytest.approx(sum(c.attributes[sc.TAILPIPE_ENERGY_WH] for c in children))
    assert root[TAILPIPE_TRACE_CARBON_GCO2E] == pytest.approx(
        sum(c.attributes[sc.TAILPIPE_CARBON_GCO2E] for c in children)
    )
    expected = [
        estimate(Usage(model="gpt-4o", provider="openai", input_tokens=1000, output_tokens=200)),
        estimate(Usage(model="gpt-4o-mini", provider="openai", input_tokens=3000, output_tokens=50)),
        estimate(Usage(model="claude-sonnet-4", provider="anthropic", input_tokens=400, output_tokens=900)),
    ]
    assert root[TAILPIPE_TRACE_ENERGY_WH] == pytest.approx(sum(e.energy_wh for e in expected))
    assert root[TAILPIPE_TRACE_CARBON_GCO2E] == pytest.approx(sum(e.carbon_gco2e for e in expected))
    # only the local root gets totals
    assert TAILPIPE_TRACE_CALLS not in pipeline.span("retrieve").attributes
    assert all(TAILPIPE_TRACE_CALLS not in c.attributes for c in children)


def test_genai_root_counts_itself(pipeline):
    genai(pipeline.tracer, "lonely", "gpt-4o", 10, 10)
    attrs = pipeline.span("lonely").attributes
    assert attrs[TAILPIPE_TRACE_CALLS] == 1
    assert attrs[TAILPIPE_TRACE_ENERGY_WH] == attrs[sc.TAILPIPE_ENERGY_WH]


def test_trace_without_energy_root_unchanged(pipeline):
    with pipeline.tracer.start_as_current_span("root"), pipeline.tracer.start_as_current_span("child"):
        pass
    assert pipeline.span("root").to_json() == pipeline.raw_span("root").to_json()


def test_remote_parent_makes_a_local_root(pipeline):
    remote = SpanContext(trace_id=0x1234, span_id=0x5678, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    ctx = trace.set_span_in_context(NonRecordingSpan(remote))
    token = otel_context.attach(ctx)
    try:
        with pipeline.tracer.start_as_current_span("server"):
            genai(pipeline.tracer, "call", "gpt-4o", 100, 100)
    finally:
        otel_context.detach(token)
    server = pipeline.span("server")
    assert server.parent.is_remote
    assert server.attributes[TAILPIPE_TRACE_CALLS] == 1


def test_two_local_roots_in_one_trace_keep_their_own_calls(pipeline):
    remote = SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    ctx = trace.set_span_in_context(NonRecordingSpan(remote))
    t = pipeline.tracer
    a = t.start_span("server-a", context=ctx)
    b = t.start_span("server-b", context=ctx)
    with trace.use_span(a):
        genai(t, "a-call", "gpt-4o", 100, 100)
    with trace.use_span(b):
        genai(t, "b-call-1", "gpt-4o", 100, 100)
        genai(t, "b-call-2", "gpt-4o", 100, 100)
    a.end()
    b.end()
    assert pipeline.span("server-a").attributes[TAILPIPE_TRACE_CALLS] == 1
    assert pipeline.span("server-b").attributes[TAILPIPE_TRACE_CALLS] == 2


def test_child_ending_after_its_root_is_not_counted(pipeline):
    t = pipeline.tracer
    root = t.start_span("root")
    with trace.use_span(root):
        genai(t, "early", "gpt-4o", 100, 100)
        late = t.start_span("late", attributes={"gen_ai.system": "openai", "gen_ai.usage.prompt_tokens": 5})
    root.end()
    late.end()
    assert pipeline.span("root").attributes[TAILPIPE_TRACE_CALLS] == 1
    assert sc.TAILPIPE_ENERGY_WH in pipeline.span("late").attributes  # still enriched itself


def _bare_pipeline(**limits):
    exported = InMemorySpanExporter()
    rollup = TraceRollupProcessor(SimpleSpanProcessor(exported), **limits)
    provider = TracerProvider()
    provider.add_span_processor(CarbonSpanProcessor(rollup))
    return provider, rollup, exported


def test_open_traces_are_bounded_by_count():
    provider, rollup, _ = _bare_pipeline(max_open_traces=3)
    t = provider.get_tracer("t")
    roots = [t.start_span(f"root-{i}") for i in range(10)]
    for root in roots:
        with trace.use_span(root):
            genai(t, "call", "gpt-4o", 1, 1)
    assert rollup.open_traces == 3
    provider.shutdown()


def test_open_traces_are_bounded_by_age():
    now = [1000.0]
    provider, rollup, exported = _bare_pipeline(max_age_seconds=60, clock=lambda: now[0])
    t = provider.get_tracer("t")
    old = t.start_span("old-root")
    with trace.use_span(old):
        genai(t, "old-call", "gpt-4o", 1, 1)
    assert rollup.open_traces == 1
    now[0] += 61
    with t.start_as_current_span("new-root"):
        genai(t, "new-call", "gpt-4o", 1, 1)
    assert rollup.open_traces == 0  # old evicted, new consumed by its root
    old.end()  # its totals were evicted: forwarded without them
    (old_out,) = [s for s in exported.get_finished_spans() if s.name == "old-root"]
    assert TAILPIPE_TRACE_CALLS not in old_out.attributes
    provider.shutdown()


def test_rollup_failure_forwards_the_span(monkeypatch, pipeline):
    from tailpipe_ai.processor import rollup

    def boom(span):
        raise RuntimeError("no")

    monkeypatch.setattr(rollup, "is_local_root", boom)
    genai(pipeline.tracer, "call", "gpt-4o", 1, 1)
    out = pipeline.span("call")
    assert sc.TAILPIPE_ENERGY_WH in out.attributes
    assert TAILPIPE_TRACE_CALLS not in out.attributes
