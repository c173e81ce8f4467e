"""Shared fixtures: an in-memory OpenTelemetry pipeline and the loopback fake provider server."""

from __future__ import annotations

import pytest


@pytest.fixture
def otel():
    """Tracer and meter providers with in-memory exporters, plus a memory sink for records."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from tailpipe_ai.exporter.sink import MemorySink
    from tailpipe_ai.instrumentation._telemetry import Telemetry

    class Otel:
        pass

    from tailpipe_ai.instrumentation._telemetry import flush

    class Flushing:
        """Emission is deferred to the telemetry thread: flush before every read."""

        def __init__(self, inner):
            self._inner = inner

        def __getattr__(self, name):
            flush()
            return getattr(self._inner, name)

    class FlushingMemorySink(MemorySink):
        def write(self, record):  # called on the telemetry thread: must not flush (it would wait on itself)
            with self._lock:
                self._records.append(record)

        @property
        def records(self):
            flush()
            return self._records

        @records.setter
        def records(self, value):
            self._records = value

    o = Otel()
    o.spans = InMemorySpanExporter()
    o.tracer_provider = TracerProvider()
    o.tracer_provider.add_span_processor(SimpleSpanProcessor(o.spans))
    o.metrics = InMemoryMetricReader()
    o.meter_provider = MeterProvider(metric_readers=[o.metrics])
    o.sink = FlushingMemorySink()
    o.telemetry = Telemetry(tracer_provider=o.tracer_provider, meter_provider=o.meter_provider, sink=o.sink)
    o.spans = Flushing(o.spans)
    o.metrics = Flushing(o.metrics)

    def metric_points(name):
        data = o.metrics.get_metrics_data()
        out = []
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == name:
                        out.extend(m.data.data_points)
        return out

    o.metric_points = metric_points
    yield o
    flush()
    o.tracer_provider.shutdown()
    o.meter_provider.shutdown()


@pytest.fixture
def fake_server():
    from tests.fakes.server import FakeServer

    with FakeServer() as server:
        yield server
