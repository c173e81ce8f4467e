"""``RecordSpanExporter``: an OpenTelemetry SpanExporter that turns GenAI spans into lake records.

For processes where GenAI spans come from other instrumentations (OpenLLMetry, OpenLIT, the official
``opentelemetry-instrumentation-*``), or from tailpipe's own spans when records should be written at
export time instead of by the instrumentation. Select it with ``OTEL_TRACES_EXPORTER=tailpipe_records``
(entry point ``opentelemetry_traces_exporter``), or add it by hand::

    provider.add_span_processor(BatchSpanProcessor(RecordSpanExporter()))

Span -> call is ``processor.span_reading`` (every semconv version in use); call -> record is
``exporter.records``. Only metadata is read, so content attributes on the span never reach a record.

Spans of tailpipe's own instrumentation (scope ``tailpipe_ai``) are skipped by default: that
instrumentation already writes one record per call to its sink, and a second record would count the call
twice. Pass ``include_own_spans=True`` when the instrumentation's sink is a ``NullSink``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tailpipe_ai.exporter.records import build_record, estimate_call
from tailpipe_ai.exporter.sink import Sink
from tailpipe_ai.semconv import attributes as sc
from tailpipe_ai.semconv.record import rfc3339_from_unix_ns

log = logging.getLogger(__name__)

OWN_SCOPE = "tailpipe_ai"


class RecordSpanExporter(SpanExporter):
    """Writes one record per GenAI model-call span to ``sink`` (default: the process-wide lake sink)."""

    def __init__(
        self,
        sink: Sink | None = None,
        *,
        region: str | None = None,
        integration: str = sc.INTEGRATION_AUTO,
        include_own_spans: bool = False,
    ) -> None:
        if sink is None:
            from tailpipe_ai.exporter.sink import default_sink

            sink = default_sink()
        self._sink = sink
        self._region = region
        self._integration = integration
        self._include_own = include_own_spans
        self._shutdown = False
        self._logged = False
        self.written = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        from tailpipe_ai.processor.carbon import call_from_span  # processor -> exporter is the import direction

        for span in spans:
            try:
                scope = span.instrumentation_scope
                if not self._include_own and scope is not None and scope.name == OWN_SCOPE:
                    continue
                call = call_from_span(span, integration=self._integration, region=self._region)
                if call is None:
                    continue
                resource = span.resource.attributes if span.resource is not None else {}
                call.environment = {
                    k: v
                    for k in (sc.SERVICE_NAME, sc.DEPLOYMENT_ENVIRONMENT_NAME, sc.DEPLOYMENT_ENVIRONMENT)
                    if isinstance(v := resource.get(k), str) and v
                }
                est, cost = estimate_call(call)
                self._sink.write(build_record(call, est, cost, rfc3339_from_unix_ns(call.start_time_ns)))
                self.written += 1
            except Exception as exc:  # one bad span must not lose the batch, nor raise into the SDK
                if not self._logged:
                    self._logged = True
                    log.warning("tailpipe: RecordSpanExporter skipped a span (%s)", type(exc).__name__)
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._sink.flush(timeout_millis / 1000.0)

    def shutdown(self) -> None:
        if not self._shutdown:
            self._shutdown = True
            self._sink.flush(10.0)
