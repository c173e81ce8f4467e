"""Carbon enrichment of every GenAI span in the process, including other instrumentations' spans.

Our own instrumentation writes ``tailpipe.energy.wh`` and friends before ``span.end()``. Spans from the
official GenAI instrumentations, OpenLLMetry or OpenLIT end without them, and since opentelemetry-sdk 1.43
a processor cannot add attributes to a finished span. ``CarbonSpanProcessor`` therefore wraps the next
processor and forwards a copy carrying the same attributes our instrumentation would have set
(``tailpipe_ai.exporter.records.span_attributes``: energy and carbon with their ranges, method, factors,
dataset version, cost, and the usage in v1.41 semconv names where the span used older ones).

Spans that already carry ``tailpipe.energy.wh`` (ours) and non-GenAI spans are forwarded unchanged, so
nothing is counted twice. The processor never raises into ``Span.end()``: on any internal failure it
logs once (exception type only) and forwards the original span.

It must sit before the ContentGuard, which removes content last; see ``build_pipeline``.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

from tailpipe_ai.exporter.records import Call, estimate_call, span_attributes
from tailpipe_ai.semconv import attributes as sc

from ._log import log_once
from ._spans import copy_span
from .span_reading import call_from_attributes

OUR_SCOPE = "tailpipe_ai"


def _in_our_call() -> bool:
    from tailpipe_ai.instrumentation._context import in_call, in_open_outer_call

    return in_call() or in_open_outer_call()  # inside an SDK call we trace, or a LangChain model run


def _take_shadow(span_id: int) -> bool:
    from tailpipe_ai.instrumentation._context import take_shadow

    return take_shadow(span_id)


_GENAI_MARKERS = (sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_PROVIDER_NAME, sc.GEN_AI_SYSTEM, "llm.request.type")
_MAX_LIVE = 100_000

__all__ = ["CarbonSpanProcessor", "call_from_attributes", "call_from_span", "enrich"]


def call_from_span(
    span: ReadableSpan, *, integration: str = sc.INTEGRATION_AUTO, region: str | None = None
) -> Call | None:
    """``call_from_attributes`` plus what only the span knows: timing, ids and its error status."""
    call = call_from_attributes(span.attributes, integration=integration, region=region)
    if call is None:
        return None
    if span.start_time:
        call.start_time_ns = span.start_time
        if span.end_time and span.end_time >= span.start_time:
            call.latency_ms = (span.end_time - span.start_time) / 1e6
    context = span.context
    if context is not None and context.is_valid:
        call.trace_id = format(context.trace_id, "032x")
        call.span_id = format(context.span_id, "016x")
    if span.status.status_code is StatusCode.ERROR:
        call.status = "error"
        call.error_type = call.error_type or sc.ERROR_TYPE_OTHER
    return call


def enrich(span: ReadableSpan, *, region: str | None = None) -> ReadableSpan:
    """``span`` itself unless it is a GenAI call without our energy attributes; then an enriched copy.

    The span's own attributes win over ours except in the ``tailpipe.`` namespace: a peer's
    ``gen_ai.usage.input_tokens`` is kept as it reported it.
    """
    attributes = span.attributes or {}
    if sc.TAILPIPE_ENERGY_WH in attributes:
        return span
    call = call_from_span(span, region=region)
    if call is None:
        return span
    est, cost = estimate_call(call)
    merged: dict[str, Any] = dict(attributes)
    for name, value in span_attributes(call, est, cost).items():
        if name.startswith(sc.TAILPIPE_NAMESPACE) or name not in merged:
            merged[name] = value
    return copy_span(span, attributes=merged)


class CarbonSpanProcessor(SpanProcessor):
    """Wraps the next processor; forwards GenAI spans with energy and carbon added.

    ``region``: the cloud region the models run in, when the user knows it (e.g. ``aws:eu-west-1``);
    None uses the carbon configuration's region or the global defaults.
    """

    def __init__(self, next_processor: SpanProcessor, *, region: str | None = None) -> None:
        self._next = next_processor
        self._region = region
        # One call seen by two GenAI instrumentations (ours and, say, the official one, both wrapping the
        # same SDK method) gives two nested spans. Ours carries the figure; the other one, parent or
        # child of ours, is "shadowed" and forwarded without energy, so the call is counted once.
        self._live: dict[int, bool] = {}  # span id -> is ours, for live GenAI spans
        self._shadowed: set[int] = set()
        self._lock = threading.Lock()

    @property
    def next_processor(self) -> SpanProcessor:
        return self._next

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            self._track_start(span, parent_context)
        except Exception as exc:
            log_once("CarbonSpanProcessor.on_start", exc, "double-count check skipped")
        self._next.on_start(span, parent_context=parent_context)

    def _track_start(self, span: Span, parent_context: Context | None) -> None:
        attributes = span.attributes or {}
        if not any(k in attributes for k in _GENAI_MARKERS):
            return
        scope = span.instrumentation_scope
        ours = scope is not None and scope.name == OUR_SCOPE
        if not ours and _in_our_call():  # a peer's span inside a call our wrapper is tracing
            with self._lock:
                self._shadowed.add(span.context.span_id)
        parent = trace.get_current_span(parent_context).get_span_context()
        with self._lock:
            if len(self._live) > _MAX_LIVE:
                self._live.clear()
                self._shadowed.clear()
            self._live[span.context.span_id] = ours
            parent_is_ours = self._live.get(parent.span_id) if parent.is_valid else None
            if parent_is_ours is None:
                return
            if ours and not parent_is_ours:
                self._shadowed.add(parent.span_id)
            elif parent_is_ours and not ours:
                self._shadowed.add(span.context.span_id)

    def _on_ending(self, span: Span) -> None:
        on_ending = getattr(self._next, "_on_ending", None)  # SDK >= 1.40 only
        if on_ending is not None:
            on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        span_id = span.context.span_id if span.context is not None else None
        with self._lock:
            self._live.pop(span_id, None)
            shadowed = span_id in self._shadowed
            self._shadowed.discard(span_id)
        if span_id is not None and _take_shadow(span_id):
            shadowed = True
        if shadowed:
            self._next.on_end(span)
            return
        try:
            out = enrich(span, region=self._region)
        except Exception as exc:
            log_once("CarbonSpanProcessor.on_end", exc, "forwarded without energy")
            out = span
        self._next.on_end(out)

    def shutdown(self) -> None:
        self._next.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._next.force_flush(timeout_millis)
