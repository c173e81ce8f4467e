"""One call seen by our instrumentation and another GenAI instrumentation is counted once."""

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tailpipe_ai.processor import build_pipeline

GENAI = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.usage.input_tokens": 100,
    "gen_ai.usage.output_tokens": 50,
}


@pytest.fixture
def pipeline():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(build_pipeline(SimpleSpanProcessor(exporter)))
    yield provider, exporter
    provider.shutdown()


def _energy(spans):
    return [s for s in spans if "tailpipe.energy.wh" in (s.attributes or {})]


@pytest.mark.parametrize("ours_outer", [True, False])
def test_nested_foreign_and_own_spans_give_one_figure(pipeline, ours_outer):
    provider, exporter = pipeline
    ours = provider.get_tracer("tailpipe_ai")
    theirs = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    outer, inner = (ours, theirs) if ours_outer else (theirs, ours)
    own_attrs = {**GENAI, "tailpipe.energy.wh": 1.0}
    outer_attrs, inner_attrs = (own_attrs, GENAI) if ours_outer else (GENAI, own_attrs)
    with (
        outer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=outer_attrs),
        inner.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=inner_attrs),
    ):
        pass
    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    with_energy = _energy(spans)
    assert len(with_energy) == 1
    assert with_energy[0].instrumentation_scope.name == "tailpipe_ai"


def test_foreign_span_alone_is_enriched(pipeline):
    provider, exporter = pipeline
    with provider.get_tracer("openllmetry").start_as_current_span("chat", attributes=GENAI):
        pass
    assert len(_energy(exporter.get_finished_spans())) == 1
