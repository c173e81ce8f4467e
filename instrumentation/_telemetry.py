"""The shared machinery of every instrumentor: span, metrics, carbon estimate and record per call.

An instrumentor describes a call (provider, operation, model, server) and hands the response (or the
stream's last usage) to `CallHandle.finish`. Everything here is defensive: a failure inside our code is
logged once, without content, and the user's call goes on untouched.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tailpipe_ai.exporter.records import Call, build_record, estimate_call, span_attributes
from tailpipe_ai.exporter.sink import NullSink, Sink
from tailpipe_ai.providers import CallInfo
from tailpipe_ai.semconv import attributes as sc
from tailpipe_ai.semconv.record import rfc3339_from_unix_ns

from ._context import claim_outer_call, current_tags, shadow

log = logging.getLogger("tailpipe_ai.instrumentation")
_logged: set[str] = set()

SCOPE = "tailpipe_ai"

METRIC_TAILPIPE_COST = "tailpipe.cost"  # counter; no semconv exists for cost
METRIC_TAILPIPE_COST_DESCRIPTION = "Estimated list-price cost of GenAI operations, in US dollars."

try:  # OTel's own "suppress instrumentation" switch, honoured like the official instrumentations do
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY as _SUPPRESS_KEY  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    _SUPPRESS_KEY = "suppress_instrumentation"


def log_once(where: str, exc: BaseException) -> None:
    """Log an internal failure once per place, with the exception type only (never its message)."""
    if where in _logged:
        return
    _logged.add(where)
    log.warning("tailpipe: internal error in %s (%s); the call was not affected", where, type(exc).__name__)


def suppressed() -> bool:
    return bool(otel_context.get_value(_SUPPRESS_KEY))


class Telemetry:
    """Tracer, instruments, sink and settings shared by the instrumentors of one configuration."""

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        sink: Sink | None = None,
        region: str | None = None,
        tags: Mapping[str, str] | None = None,
        environment: Mapping[str, str] | None = None,
        integration: str = "auto",
    ) -> None:
        from tailpipe_ai import __version__

        self.tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider)
        self.token_usage = meter.create_histogram(
            sc.METRIC_GEN_AI_CLIENT_TOKEN_USAGE,
            unit=sc.METRIC_GEN_AI_CLIENT_TOKEN_USAGE_UNIT,
            description=sc.METRIC_GEN_AI_CLIENT_TOKEN_USAGE_DESCRIPTION,
            explicit_bucket_boundaries_advisory=list(sc.TOKEN_USAGE_BUCKETS),
        )
        self.duration = meter.create_histogram(
            sc.METRIC_GEN_AI_CLIENT_OPERATION_DURATION,
            unit=sc.METRIC_GEN_AI_CLIENT_OPERATION_DURATION_UNIT,
            description=sc.METRIC_GEN_AI_CLIENT_OPERATION_DURATION_DESCRIPTION,
            explicit_bucket_boundaries_advisory=list(sc.DURATION_BUCKETS),
        )
        self.energy = meter.create_counter(
            sc.METRIC_TAILPIPE_ENERGY,
            unit=sc.METRIC_TAILPIPE_ENERGY_UNIT,
            description=sc.METRIC_TAILPIPE_ENERGY_DESCRIPTION,
        )
        self.carbon = meter.create_counter(
            sc.METRIC_TAILPIPE_CARBON,
            unit=sc.METRIC_TAILPIPE_CARBON_UNIT,
            description=sc.METRIC_TAILPIPE_CARBON_DESCRIPTION,
        )
        self.cost = meter.create_counter(METRIC_TAILPIPE_COST, unit="USD", description=METRIC_TAILPIPE_COST_DESCRIPTION)
        self.sink: Sink = sink if sink is not None else NullSink()
        self.region = region
        self.tags = dict(tags or {})
        self.environment = dict(environment or {})
        self.integration = integration

    def start(
        self,
        *,
        provider: str,
        operation: str,
        model: str | None,
        server: tuple[str | None, int | None] = (None, None),
        stream: bool = False,
        request: Mapping[str, Any] | None = None,
        output_type: str | None = None,
        region: str | None = None,
        integration: str | None = None,
        parent: Any = None,
    ) -> CallHandle:
        """`integration` overrides the telemetry's for this call (LangChain runs); `parent` (a Context, or a
        callable returning one on the telemetry thread) replaces the current context as the span's parent."""
        integration = integration or self.integration
        name = f"{operation} {model}" if model else operation
        attrs: dict[str, Any] = {
            sc.GEN_AI_OPERATION_NAME: operation,
            sc.GEN_AI_PROVIDER_NAME: provider,
            sc.TAILPIPE_INTEGRATION: integration,
        }
        if model:
            attrs[sc.GEN_AI_REQUEST_MODEL] = model
        if stream:
            attrs[sc.GEN_AI_REQUEST_STREAM] = True
        if output_type:
            attrs[sc.GEN_AI_OUTPUT_TYPE] = output_type
        host, port = server
        if host:
            attrs[sc.SERVER_ADDRESS] = host
        if port:
            attrs[sc.SERVER_PORT] = port
        if request:
            attrs.update({k: v for k, v in request.items() if v is not None})
        current = otel_context.get_current()
        _shadow_foreign_parent(current)
        parent = current if parent is None else parent
        tags = {**self.tags, **current_tags()}
        call = Call(
            provider=provider,
            operation=operation,
            request_model=model,
            integration=integration,
            streamed=stream,
            region=region or self.region,
            output_type=output_type,
            attributes=tags,
            environment=self.environment,
        )
        handle = CallHandle(self, call, name, attrs, parent)
        handle.delegate = claim_outer_call()  # an outer call of ours (LangChain run) counts this one
        return handle

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every finished call's span, metrics and record have been emitted."""
        return _WORKER.flush(timeout)


def _shadow_foreign_parent(parent: otel_context.Context) -> None:
    """Another GenAI instrumentation's span around our call describes the same call: mark it so the
    CarbonSpanProcessor does not give it a second carbon figure."""
    span = trace.get_current_span(parent)
    if not span.is_recording():
        return
    scope = getattr(span, "instrumentation_scope", None)
    if scope is not None and scope.name == SCOPE:
        return
    attributes = getattr(span, "attributes", None) or {}
    if any(k in attributes for k in (sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_SYSTEM, sc.GEN_AI_PROVIDER_NAME)):
        shadow(span.get_span_context().span_id)


class _Worker:
    """One background thread that emits finished calls: the caller's request never waits for span
    creation, metric recording, the carbon estimate or the record (benchmarks/overhead.py)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def submit(self, task: Any) -> None:
        with self._cond:
            if self._thread is None or self._pid != os.getpid():  # first use, or a forked child
                self._pid = os.getpid()
                self._queue = queue.SimpleQueue()
                self._pending = 0
                self._thread = threading.Thread(target=self._run, name="tailpipe-telemetry", daemon=True)
                self._thread.start()
                # Registered now, after the sinks and tracer providers in use were created: atexit runs
                # handlers last-in first-out, so pending calls are emitted before those shut down.
                atexit.register(self.flush, 10.0)
            self._pending += 1
        self._queue.put(task)

    def _run(self) -> None:
        while True:
            task = self._queue.get()
            try:
                task()
            except Exception as exc:
                log_once("emit", exc)
            finally:
                with self._cond:
                    self._pending -= 1
                    if self._pending == 0:
                        self._cond.notify_all()

    def flush(self, timeout: float | None = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)


_WORKER = _Worker()


def flush(timeout: float | None = 10.0) -> bool:
    """Emit every finished call now (spans, metrics, records); used at exit and by tests."""
    return _WORKER.flush(timeout)


def defer(task: Any) -> None:
    """Run `task()` on the telemetry thread, after everything submitted before it (e.g. a LangChain chain
    span opened before the model spans under it are emitted)."""
    _WORKER.submit(task)


class CallHandle:
    """One in-flight call: its span, metrics and record are emitted exactly once, after it ends."""

    __slots__ = ("_done", "_t0", "attrs", "call", "delegate", "name", "parent", "telemetry")

    def __init__(
        self, telemetry: Telemetry, call: Call, name: str, attrs: dict[str, Any], parent: otel_context.Context
    ) -> None:
        self.telemetry = telemetry
        self.call = call
        self.name = name
        self.attrs = attrs
        self.parent = parent
        self._t0 = time.perf_counter()
        call.start_time_ns = time.time_ns()
        self._done = False
        self.delegate: Any = None  # set: an outer call absorbs this one (see _context.claim_outer_call)

    def first_chunk(self) -> None:
        if self.call.ttft_ms is None:
            self.call.ttft_ms = (time.perf_counter() - self._t0) * 1000.0

    def finish(
        self,
        info: CallInfo | None = None,
        *,
        error: BaseException | None = None,
        token_accuracy: str | None = None,
        flags: tuple[str, ...] = (),
    ) -> None:
        """Close the call; safe to call more than once (only the first counts). The span, metrics and
        record are emitted on the telemetry thread, off the caller's path."""
        if self._done:
            return
        self._done = True
        try:
            call = self.call
            call.latency_ms = (time.perf_counter() - self._t0) * 1000.0
            end_ns = call.start_time_ns + int(call.latency_ms * 1e6)
            if info is not None:
                call.info = info
            if token_accuracy:
                call.token_accuracy = token_accuracy
            call.flags = call.flags + flags
            if error is not None:
                call.status = "error"
                call.error_type = type(error).__qualname__
            elif not call.info.has_usage and call.info.images is None:
                call.token_accuracy = "estimated"
                call.flags = (*call.flags, "usage_missing")
            if self.delegate is not None:
                self.delegate.absorb(self)  # counted once, by the outer call
                return
            _WORKER.submit(lambda: self._emit(end_ns))
        except Exception as exc:
            log_once("finish", exc)

    def _emit(self, end_ns: int) -> None:
        call = self.call
        parent = self.parent() if callable(self.parent) else self.parent
        span = self.telemetry.tracer.start_span(
            self.name, context=parent, kind=SpanKind.CLIENT, attributes=self.attrs, start_time=call.start_time_ns
        )
        self.parent = None  # type: ignore[assignment]  # release the caller's context
        try:
            ctx = span.get_span_context()
            if ctx.is_valid:
                call.trace_id = format(ctx.trace_id, "032x")
                call.span_id = format(ctx.span_id, "016x")
            est, cost = estimate_call(call)
            if span.is_recording():
                span.set_attributes(span_attributes(call, est, cost))
                if call.error_type is not None:
                    span.set_attribute(sc.ERROR_TYPE, call.error_type)
                    span.set_status(Status(StatusCode.ERROR, call.error_type))
        finally:
            span.end(end_time=end_ns)
        self._metrics(est, cost)
        self.telemetry.sink.write(build_record(call, est, cost, rfc3339_from_unix_ns(call.start_time_ns)))

    def _metrics(self, est, cost: float | None = None) -> None:
        record_call_metrics(self.telemetry, self.call, est, cost)


def record_call_metrics(tel: Telemetry, call: Call, est, cost: float | None = None, count_request: bool = True) -> None:
    """Token usage and duration (semconv), energy, carbon and cost counters for one call.

    Shared with the OTLP gateway, which counts what it ingests under the same names. Energy, carbon and
    cost carry provider, model, the estimate's region (``tailpipe.region``, e.g. ``aws:us-east-1``, when
    known) and the attribution tags (``tailpipe.attr.*``). ``count_request=False`` (a record summing many
    requests, e.g. Claude Code metrics) skips the duration histogram, whose count is the request count.
    """
    info = call.info
    base = {
        sc.GEN_AI_OPERATION_NAME: call.operation,
        sc.GEN_AI_PROVIDER_NAME: call.provider,
    }
    if call.request_model:
        base[sc.GEN_AI_REQUEST_MODEL] = call.request_model
    if info.response_model:
        base[sc.GEN_AI_RESPONSE_MODEL] = info.response_model
    duration_attrs = dict(base)
    if call.error_type:
        duration_attrs[sc.ERROR_TYPE] = call.error_type
    if count_request:
        tel.duration.record((call.latency_ms or 0.0) / 1000.0, duration_attrs)
    if info.input_tokens is not None:
        tel.token_usage.record(info.input_tokens, {**base, sc.GEN_AI_TOKEN_TYPE: sc.TOKEN_TYPE_INPUT})
    if info.output_tokens is not None:
        tel.token_usage.record(info.output_tokens, {**base, sc.GEN_AI_TOKEN_TYPE: sc.TOKEN_TYPE_OUTPUT})
    if est is not None:
        carbon_attrs = {**base, **{sc.TAILPIPE_ATTR_PREFIX + k: v for k, v in call.attributes.items()}}
        region = est.factors.get("region")
        if region:
            carbon_attrs[sc.TAILPIPE_REGION] = region
        tel.energy.add(est.energy_wh, carbon_attrs)
        tel.carbon.add(est.carbon_gco2e, carbon_attrs)
        if cost is not None:
            tel.cost.add(cost, carbon_attrs)


_default: Telemetry | None = None


def default_telemetry() -> Telemetry:
    """The process-wide telemetry used by auto-instrumentation, built on first use from the environment.

    Spans and metrics go to the global OpenTelemetry providers; records go to the sink configured by
    `tailpipe_ai.configure()` / the distro, else to a local JSONL folder (`TAILPIPE_LAKE`, default
    ./tailpipe-lake).
    """
    global _default
    if _default is None:
        from tailpipe_ai.exporter.sink import default_sink

        _default = Telemetry(sink=default_sink(), integration="auto")
    return _default


def set_default_telemetry(telemetry: Telemetry | None) -> None:
    global _default
    _default = telemetry


def telemetry_from_kwargs(kwargs: Mapping[str, Any]):
    """The telemetry getter an instrumentor's `instrument(**kwargs)` should use.

    `telemetry=` wins; else `tracer_provider=` / `meter_provider=` (the OTel convention) build a dedicated
    Telemetry with the default sink; else the process-wide default, resolved at call time.
    """
    telemetry = kwargs.get("telemetry")
    if telemetry is None and (kwargs.get("tracer_provider") or kwargs.get("meter_provider")):
        from tailpipe_ai.exporter.sink import default_sink

        telemetry = Telemetry(
            tracer_provider=kwargs.get("tracer_provider"),
            meter_provider=kwargs.get("meter_provider"),
            sink=default_sink(),
        )
    if telemetry is not None:
        return lambda: telemetry
    return default_telemetry
