"""Decoded OTLP requests -> estimated records in the sink, counted in our metrics.

Estimates come from the one carbon engine (``exporter.records.estimate_call``), which caches everything
that depends on (model, region, method); records are built with ``exporter.records.build_record``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tailpipe_ai.exporter.records import Call, build_record, estimate_call
from tailpipe_ai.exporter.sink import Sink
from tailpipe_ai.semconv.record import rfc3339_from_unix_ns

from .claude_code import ClaudeCodeMetrics
from .spans import calls_from_traces

log = logging.getLogger("tailpipe_ai.gateway")


@dataclass(slots=True)
class IngestResult:
    records: int = 0
    rejected: int = 0
    message: str = ""


class Ingestor:
    """Writes the records of each request to ``sink``; ``telemetry`` (optional) receives our metrics."""

    def __init__(self, sink: Sink, *, region: str | None = None, telemetry: Any = None) -> None:
        self.sink = sink
        self.region = region
        self.telemetry = telemetry
        self.claude_code = ClaudeCodeMetrics()
        self._logged: set[str] = set()

    def traces(self, request: Any, tenant: str) -> IngestResult:
        return self._write(calls_from_traces(request, tenant, self.region), per_request=True, what="spans")

    def metrics(self, request: Any, tenant: str) -> IngestResult:
        calls = self.claude_code.calls(request, tenant, self.region)
        return self._write(calls, per_request=False, what="data points")

    def _write(self, calls: Iterable[Call], *, per_request: bool, what: str) -> IngestResult:
        result = IngestResult()
        write = self.sink.write
        telemetry = self.telemetry
        iterator = iter(calls)
        while True:
            try:
                call = next(iterator)
            except StopIteration:
                break
            except Exception as exc:  # a malformed item must not lose the rest of the request
                self._log_once("read", exc)
                result.rejected += 1
                break
            try:
                est, cost = estimate_call(call, aggregate=not per_request)
                # no validate() here: the sink validates when it encodes, and build_record only emits valid
                # values (a second pass cost a quarter of the ingest time, benchmarks/gateway.py)
                record = build_record(call, est, cost, rfc3339_from_unix_ns(call.start_time_ns))
            except Exception as exc:
                self._log_once("record", exc)
                result.rejected += 1
                continue
            write(record)
            result.records += 1
            if telemetry is not None:
                try:
                    _record_metrics(telemetry, call, est, cost, per_request)
                except Exception as exc:
                    self._log_once("metrics", exc)
        if result.rejected:
            result.message = f"{result.rejected} {what} could not be turned into records (see the gateway log)"
        return result

    def _log_once(self, where: str, exc: BaseException) -> None:
        if where not in self._logged:
            self._logged.add(where)
            log.warning("tailpipe gateway: failed to %s an item (%s); the rest went on", where, type(exc).__name__)


def _record_metrics(telemetry: Any, call: Call, est: Any, cost: float | None, per_request: bool) -> None:
    from tailpipe_ai.instrumentation._telemetry import record_call_metrics

    record_call_metrics(telemetry, call, est, cost, count_request=per_request)
