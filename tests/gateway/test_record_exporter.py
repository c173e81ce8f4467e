"""RecordSpanExporter: GenAI spans -> records at export time (entry point `tailpipe_records`)."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from tailpipe_ai.exporter.record_exporter import RecordSpanExporter
from tailpipe_ai.exporter.sink import MemorySink
from tests.gateway.conftest import expected_g, expected_wh


def _provider(exporter):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def test_third_party_spans_become_records_own_spans_skipped(fixed_carbon):
    sink = MemorySink()
    provider = _provider(RecordSpanExporter(sink))
    with provider.get_tracer("openlit").start_as_current_span("chat acme-chat-1") as span:
        span.set_attributes(
            {
                "gen_ai.system": "openai",
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "acme-chat-1",
                "gen_ai.usage.input_tokens": 700,
                "gen_ai.usage.output_tokens": 100,
                "gen_ai.content.prompt": "CANARY-EXPORTER",
                "tailpipe.attr.team": "data",
            }
        )
    with provider.get_tracer("tailpipe_ai").start_as_current_span("chat acme-chat-1") as span:
        span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": "acme-chat-1"})
    with provider.get_tracer("http").start_as_current_span("GET /"):
        pass
    (record,) = sink.records
    assert (record.integration, record.provider, record.input_tokens) == ("auto", "openai", 700)
    assert record.attributes == {"team": "data"}
    assert record.energy_wh == pytest.approx(expected_wh("acme-chat-1", 800))
    assert record.carbon_gco2e == pytest.approx(expected_g("acme-chat-1", 800))
    assert "CANARY-EXPORTER" not in record.encode().decode()
    provider.shutdown()


def test_include_own_spans_and_shutdown():
    sink = MemorySink()
    exporter = RecordSpanExporter(sink, include_own_spans=True)
    provider = _provider(exporter)
    with provider.get_tracer("tailpipe_ai").start_as_current_span("chat") as span:
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 5,
                "gen_ai.usage.output_tokens": 5,
            }
        )
    assert len(sink.records) == 1
    provider.shutdown()
    assert exporter.export([]) is SpanExportResult.FAILURE


def test_entry_point_is_registered():
    from opentelemetry.util._importlib_metadata import entry_points

    (ep,) = entry_points(group="opentelemetry_traces_exporter", name="tailpipe_records")
    assert ep.load() is RecordSpanExporter
