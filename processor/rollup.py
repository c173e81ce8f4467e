"""Per-trace totals: the energy and carbon of a whole request, on its root span.

A request that makes five model calls shows five child spans with ``tailpipe.energy.wh``; backends that
cannot sum across spans (most trace UIs) then show no figure for the request. ``TraceRollupProcessor``
adds the totals to the request's local root span:

- ``tailpipe.trace.energy.wh``: the sum of ``tailpipe.energy.wh`` over the spans of this local trace,
  the root included;
- ``tailpipe.trace.carbon.gco2e``: the same for ``tailpipe.carbon.gco2e``;
- ``tailpipe.trace.calls``: how many of those spans carried energy.

It reads the figures the carbon enrichment wrote, so it sits after ``CarbonSpanProcessor`` in the chain
(see ``build_pipeline``). Roots of traces without any energy are forwarded unchanged.

What is counted: spans that end in this process before their local root, the first span of the trace in
this process (no parent, or a remote parent). Children end before their root in normal code; a child
that ends after its root (a fire-and-forget task, a stream consumed after the handler returned) is not
counted in the root's totals. A service reached twice in one distributed trace has two local roots, and
each gets its own calls: totals are kept per local root, which ``on_start`` tracks through the parent
chain. Spans of another process are never counted (the OTLP gateway or a backend query sums those).

Memory is bounded: a local trace's totals are dropped when older than ``max_age_seconds`` (its root
never ended in time, or a late child arrived after it) or when more than ``max_open_traces`` are open,
oldest first; the span -> root map is bounded the same way by ``max_open_spans``. Keep
``max_age_seconds`` above your longest request.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from tailpipe_ai.semconv import attributes as sc

from ._log import log_once
from ._spans import copy_span, is_local_root

TAILPIPE_TRACE_ENERGY_WH = "tailpipe.trace.energy.wh"
TAILPIPE_TRACE_CARBON_GCO2E = "tailpipe.trace.carbon.gco2e"
TAILPIPE_TRACE_CALLS = "tailpipe.trace.calls"

_Key = tuple[int, int]  # (trace id, span id)


class _Totals:
    __slots__ = ("calls", "carbon", "created", "energy")

    def __init__(self, created: float) -> None:
        self.created = created
        self.energy = 0.0
        self.carbon = 0.0
        self.calls = 0


def _amount(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


class TraceRollupProcessor(SpanProcessor):
    """Wraps the next processor; forwards each local root span with its trace's energy/carbon totals."""

    def __init__(
        self,
        next_processor: SpanProcessor,
        *,
        max_age_seconds: float = 1800.0,
        max_open_traces: int = 10_000,
        max_open_spans: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._next = next_processor
        self._max_age = max_age_seconds
        self._max_traces = max_open_traces
        self._max_spans = max_open_spans
        self._clock = clock
        self._lock = threading.Lock()
        # (trace id, local root span id) -> totals, in creation order
        self._totals: OrderedDict[_Key, _Totals] = OrderedDict()
        # (trace id, span id) of a started, unended span -> (its local root span id, start), in start order
        self._root_of: OrderedDict[_Key, tuple[int, float]] = OrderedDict()

    @property
    def next_processor(self) -> SpanProcessor:
        return self._next

    @property
    def open_traces(self) -> int:
        """Local traces with totals waiting for their root (for tests and diagnostics)."""
        return len(self._totals)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            self._track(span)
        except Exception as exc:
            log_once("TraceRollupProcessor.on_start", exc, "not tracked for the trace roll-up")
        self._next.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Span) -> None:
        on_ending = getattr(self._next, "_on_ending", None)  # SDK >= 1.40 only
        if on_ending is not None:
            on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            out = self._account(span)
        except Exception as exc:
            log_once("TraceRollupProcessor.on_end", exc, "forwarded without trace totals")
            out = span
        self._next.on_end(out)

    def shutdown(self) -> None:
        with self._lock:
            self._totals.clear()
            self._root_of.clear()
        self._next.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._next.force_flush(timeout_millis)

    # -- internals -------------------------------------------------------------------------------------

    def _track(self, span: Span) -> None:
        context = span.get_span_context()
        if context is None or not context.is_valid:
            return
        trace_id = context.trace_id
        parent = span.parent
        now = self._clock()
        with self._lock:
            if parent is None or parent.is_remote:
                root = context.span_id
            else:
                # the parent's root; a parent we never saw start is taken as the root
                root = self._root_of.get((trace_id, parent.span_id), (parent.span_id, now))[0]
            self._root_of[(trace_id, context.span_id)] = (root, now)
            self._evict_spans(now)

    def _account(self, span: ReadableSpan) -> ReadableSpan:
        context = span.context
        if context is None or not context.is_valid:
            return span
        trace_id, span_id = context.trace_id, context.span_id
        attributes = span.attributes or {}
        energy = _amount(attributes.get(sc.TAILPIPE_ENERGY_WH))
        local_root = is_local_root(span)
        now = self._clock()
        with self._lock:
            tracked = self._root_of.pop((trace_id, span_id), None)
            if tracked is not None:
                root = tracked[0]
            elif local_root:
                root = span_id
            else:
                root = span.parent.span_id  # type: ignore[union-attr]  # not seen starting: best effort
            if energy is not None:
                totals = self._totals.get((trace_id, root))
                if totals is None:
                    totals = self._totals[(trace_id, root)] = _Totals(now)
                totals.energy += energy
                totals.carbon += _amount(attributes.get(sc.TAILPIPE_CARBON_GCO2E)) or 0.0
                totals.calls += 1
            totals = self._totals.pop((trace_id, span_id), None) if local_root else None
            self._evict_traces(now)
        if totals is None or totals.calls == 0:
            return span
        return copy_span(
            span,
            attributes={
                **attributes,
                TAILPIPE_TRACE_ENERGY_WH: totals.energy,
                TAILPIPE_TRACE_CARBON_GCO2E: totals.carbon,
                TAILPIPE_TRACE_CALLS: totals.calls,
            },
        )

    def _evict_traces(self, now: float) -> None:
        totals = self._totals
        while totals and (len(totals) > self._max_traces or next(iter(totals.values())).created < now - self._max_age):
            totals.popitem(last=False)

    def _evict_spans(self, now: float) -> None:
        root_of = self._root_of
        while root_of and (len(root_of) > self._max_spans or next(iter(root_of.values()))[1] < now - self._max_age):
            root_of.popitem(last=False)
