"""The ContentGuard and ContentGuardExporter on their own."""

from __future__ import annotations

import logging

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, TraceFlags

from tailpipe_ai.processor import ContentGuard, ContentGuardExporter
from tailpipe_ai.processor.content_guard import strip_content
from tailpipe_ai.semconv import attributes as sc

CANARY = "CANARY-guard-8c1e2f"

CONTENT_ATTRIBUTES = {
    "gen_ai.input.messages": CANARY,
    "gen_ai.output.messages": CANARY,
    "gen_ai.system_instructions": CANARY,
    "gen_ai.tool.definitions": CANARY,
    "gen_ai.tool.call.arguments": CANARY,
    "gen_ai.prompt": CANARY,
    "gen_ai.prompt.3.content": CANARY,
    "gen_ai.completion.0.content": CANARY,
    "gen_ai.content.prompt": CANARY,
    "llm.prompts": CANARY,
    "llm.prompts.0.content": CANARY,
    "traceloop.entity.input": CANARY,
    "traceloop.entity.output": CANARY,
    "input.value": CANARY,
    "http.request.header.authorization": CANARY,
}
CONTENT_EVENTS = [
    "gen_ai.system.message",
    "gen_ai.user.message",
    "gen_ai.assistant.message",
    "gen_ai.tool.message",
    "gen_ai.choice",
    "gen_ai.client.inference.operation.details",
    "gen_ai.content.completion",
]


def guarded(limits: SpanLimits | None = None):
    exported = InMemorySpanExporter()
    provider = TracerProvider(span_limits=limits) if limits else TracerProvider()
    provider.add_span_processor(ContentGuard(SimpleSpanProcessor(exported)))
    return provider, exported


def emit(tracer):
    link_ctx = SpanContext(trace_id=7, span_id=9, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with tracer.start_as_current_span(
        "chat",
        attributes={**CONTENT_ATTRIBUTES, sc.GEN_AI_REQUEST_MODEL: "gpt-4o", sc.GEN_AI_USAGE_INPUT_TOKENS: 3},
        links=[Link(link_ctx, {"traceloop.entity.input": CANARY, "link.kind": "follows"})],
    ) as span:
        for name in CONTENT_EVENTS:
            span.add_event(name, {"content": CANARY})
        span.add_event("progress", {"gen_ai.output.messages": CANARY, "pct": 50})
        try:
            raise RuntimeError(f"provider said: {CANARY}")
        except RuntimeError as exc:
            span.record_exception(exc)


@pytest.mark.parametrize("how", ["processor", "exporter"])
def test_every_content_vector_is_removed(how):
    if how == "processor":
        provider, exported = guarded()
    else:
        exported = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(ContentGuardExporter(exported)))
    emit(provider.get_tracer("peer"))
    (span,) = exported.get_finished_spans()
    assert CANARY not in span.to_json()
    assert dict(span.attributes) == {sc.GEN_AI_REQUEST_MODEL: "gpt-4o", sc.GEN_AI_USAGE_INPUT_TOKENS: 3}
    assert [e.name for e in span.events] == ["progress", "exception"]
    assert dict(span.events[0].attributes) == {"pct": 50}
    assert dict(span.events[1].attributes)["exception.type"] == "RuntimeError"
    assert dict(span.links[0].attributes) == {"link.kind": "follows"}
    provider.shutdown()


def test_span_without_content_is_forwarded_as_is():
    provider, exported = guarded()
    with provider.get_tracer("t").start_as_current_span("plain", attributes={"a": 1}) as span:
        span.add_event("e", {"b": 2})
    (out,) = exported.get_finished_spans()
    assert strip_content(out) is out
    provider.shutdown()


def test_dropped_counts_survive_the_copy():
    provider, exported = guarded(SpanLimits(max_span_attributes=3, max_events=2))
    with provider.get_tracer("t").start_as_current_span("s") as span:
        span.set_attributes({"x": 1, "y": 2, "z": 3, "w": 4, "gen_ai.prompt": CANARY})  # x, y dropped
        for i in range(3):
            span.add_event(f"e{i}")
        span.add_event("gen_ai.choice", {"message": CANARY})  # e0, e1 dropped
    (out,) = exported.get_finished_spans()
    assert dict(out.attributes) == {"z": 3, "w": 4}  # a stripped copy...
    assert [e.name for e in out.events] == ["e2"]
    assert out.dropped_attributes == 2  # ...that still reports the SDK's limits
    assert out.dropped_events == 2
    provider.shutdown()


def test_dropped_counts_of_unchanged_fields_survive_the_copy():
    provider, exported = guarded(SpanLimits(max_span_attributes=1, max_links=1))
    links = [Link(SpanContext(1, i, True, TraceFlags(TraceFlags.SAMPLED))) for i in (1, 2)]
    with provider.get_tracer("t").start_as_current_span("s", attributes={"a": 1, "b": 2}, links=links) as span:
        span.add_event("gen_ai.choice", {"message": CANARY})  # only the events change
    (out,) = exported.get_finished_spans()
    assert out.events == ()
    assert (out.dropped_attributes, out.dropped_links) == (1, 1)
    provider.shutdown()


def test_error_status_description_is_not_exported():
    provider, exported = guarded()
    with provider.get_tracer("t").start_as_current_span("s") as span:
        span.set_status(trace.Status(trace.StatusCode.ERROR, f"BadRequest: {CANARY}"))
    (out,) = exported.get_finished_spans()
    assert out.status.status_code is trace.StatusCode.ERROR
    assert out.status.description is None
    provider.shutdown()


def test_failure_drops_the_span_and_logs_once_without_the_message(monkeypatch, caplog):
    from tailpipe_ai.processor import _log, content_guard

    def boom(name):
        raise ValueError(CANARY)

    monkeypatch.setattr(content_guard, "_is_blocked", boom)
    monkeypatch.setattr(_log, "_logged", set())
    provider, exported = guarded()
    with caplog.at_level(logging.WARNING, logger="tailpipe_ai.processor"):
        for _ in range(3):
            with provider.get_tracer("t").start_as_current_span("s", attributes={"gen_ai.prompt": CANARY}):
                pass
    assert exported.get_finished_spans() == ()
    assert len(caplog.records) == 1
    assert CANARY not in caplog.text
    provider.shutdown()


def test_exporter_delegates():
    class Exporter:
        def __init__(self):
            self.calls = []

        def export(self, spans):
            self.calls.append(("export", len(spans)))
            return SpanExportResult.SUCCESS

        def shutdown(self):
            self.calls.append(("shutdown",))

        def force_flush(self, timeout_millis=30000):
            self.calls.append(("force_flush", timeout_millis))
            return True

    inner = Exporter()
    guard = ContentGuardExporter(inner)
    assert guard.export([]) is SpanExportResult.SUCCESS
    assert guard.force_flush(99) is True
    guard.shutdown()
    assert inner.calls == [("export", 0), ("force_flush", 99), ("shutdown",)]
