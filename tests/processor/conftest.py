"""A real OpenTelemetry SDK pipeline: TracerProvider -> build_pipeline -> SimpleSpanProcessor -> memory.

A second, raw exporter sits beside the pipeline (a sibling processor sees the spans as they ended), so
tests can compare what left through our processors with what the application produced.
"""

from __future__ import annotations

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tailpipe_ai.processor import build_pipeline


class Pipeline:
    def __init__(self) -> None:
        self.exported = InMemorySpanExporter()
        self.raw = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(build_pipeline(SimpleSpanProcessor(self.exported)))
        self.provider.add_span_processor(SimpleSpanProcessor(self.raw))
        self.tracer = self.provider.get_tracer("third.party.instrumentation", "1.0")

    def spans(self):
        return list(self.exported.get_finished_spans())

    def span(self, name: str):
        matches = [s for s in self.exported.get_finished_spans() if s.name == name]
        assert len(matches) == 1, f"expected one exported span named {name!r}, got {len(matches)}"
        return matches[0]

    def raw_span(self, name: str):
        (match,) = [s for s in self.raw.get_finished_spans() if s.name == name]
        return match


@pytest.fixture
def pipeline():
    p = Pipeline()
    yield p
    p.provider.shutdown()
