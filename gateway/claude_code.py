"""Claude Code's own OTel metrics -> records.

Claude Code (``CLAUDE_CODE_ENABLE_TELEMETRY=1``) exports ``claude_code.token.usage``, a counter in tokens
with attributes ``type`` (input | output | cacheRead | cacheCreation) and ``model`` (Claude Code
monitoring-usage docs; reference/proxy.md 3.4). Its default temporality is delta, but
``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=cumulative`` is allowed, so both are handled:

- delta points are the tokens of their interval, as they are;
- cumulative points are turned into deltas against the last point of the same series (tenant, resource,
  attributes). A drop in value or a new start time is a reset: the point counts in full. The first point
  of a series counts in full only if the series started after this gateway did (its start time is later);
  otherwise it only sets the baseline, because the gateway cannot know what it already counted before a
  restart. This is the ``auto`` rule of the collector's cumulativetodelta processor.

One record per interval and series (model and the other attributes, types folded together): Anthropic
counts input excluding cache tokens, so ``input_tokens`` = input + cacheRead + cacheCreation (semconv:
input includes cached). A record here covers many requests, so it is flagged ``claude_code_metrics`` and
estimated with an unknown request count (the engine's per-request term is left out and flagged).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tailpipe_ai.exporter.records import Call
from tailpipe_ai.providers import CallInfo
from tailpipe_ai.semconv import attributes as sc

from .spans import TENANT_TAG, attributes_of, resource_info, usable_region

TOKEN_METRIC = "claude_code.token.usage"
FLAG_CLAUDE_CODE = "claude_code_metrics"
TYPES = ("input", "output", "cacheRead", "cacheCreation")
_DELTA, _CUMULATIVE = 1, 2  # AggregationTemporality
_MAX_SERIES = 200_000
_KEPT_ATTRIBUTES = ("query_source",)  # safe, low-cardinality attributes copied into the record's tags


@dataclass(slots=True)
class _Group:
    start_ns: int
    end_ns: int
    model: str | None
    tokens: dict[str, int] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    region: str | None = None


class ClaudeCodeMetrics:
    """Keeps the cumulative baselines (bounded, least recently seen dropped first)."""

    def __init__(self, started_ns: int | None = None) -> None:
        self.started_ns = time.time_ns() if started_ns is None else started_ns
        self._last: OrderedDict[tuple, tuple[int, float, int]] = OrderedDict()
        self.baselined = 0
        """Cumulative points that only set a baseline (their earlier tokens could not be attributed)."""

    def calls(self, request: Any, tenant: str, default_region: str | None = None) -> Iterator[Call]:
        for group in self._groups(request, tenant, default_region):
            yield _call(group)

    def _groups(self, request: Any, tenant: str, default_region: str | None) -> list[_Group]:
        groups: dict[tuple, _Group] = {}
        for rm in request.resource_metrics:
            resource = None
            resource_key: tuple | None = None
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name != TOKEN_METRIC or metric.WhichOneof("data") != "sum":
                        continue
                    if resource is None:
                        resource = resource_info(rm.resource, tenant)
                        resource_key = tuple(sorted((kv.key, str(kv.value)) for kv in rm.resource.attributes))
                    temporality = metric.sum.aggregation_temporality
                    for point in metric.sum.data_points:
                        attrs = attributes_of(point.attributes)
                        kind = attrs.get("type")
                        if kind not in TYPES:
                            continue
                        value = point.as_int if point.WhichOneof("value") == "as_int" else point.as_double
                        interval = self._delta(
                            (tenant, resource_key, tuple(sorted((k, str(v)) for k, v in attrs.items()))),
                            temporality,
                            point.start_time_unix_nano,
                            point.time_unix_nano,
                            value,
                        )
                        if interval is None:
                            continue
                        start, end, tokens = interval
                        rest = tuple(sorted((k, str(v)) for k, v in attrs.items() if k != "type"))
                        key = (resource_key, rest, start, end)
                        group = groups.get(key)
                        if group is None:
                            model = attrs.get("model")
                            tags = {**resource.tags}
                            for name in _KEPT_ATTRIBUTES:
                                if isinstance(attrs.get(name), str):
                                    tags[name] = attrs[name]
                            for k, v in attrs.items():
                                if k.startswith(sc.TAILPIPE_ATTR_PREFIX) and isinstance(v, str):
                                    tags[k[len(sc.TAILPIPE_ATTR_PREFIX) :]] = v
                            tags[TENANT_TAG] = tenant
                            group = groups[key] = _Group(
                                start,
                                end,
                                model if isinstance(model, str) and model else None,
                                tags=tags,
                                environment=resource.environment,
                                region=usable_region(resource.region or default_region),
                            )
                        group.tokens[kind] = group.tokens.get(kind, 0) + tokens
        return list(groups.values())

    def _delta(self, series: tuple, temporality: int, start: int, end: int, value: float) -> tuple | None:
        """(interval start, end, tokens) this point adds, or None if it adds nothing countable."""
        if not isinstance(value, (int, float)) or value != value or value < 0:
            return None
        if temporality != _CUMULATIVE:
            return (start or end, end, int(value)) if value else None
        last = self._last.get(series)
        self._last[series] = (start, value, end)
        self._last.move_to_end(series)
        if len(self._last) > _MAX_SERIES:
            self._last.popitem(last=False)
        if last is None:
            if start and start >= self.started_ns:
                return (start, end, int(value)) if value else None
            self.baselined += 1
            return None
        last_start, last_value, last_end = last
        if start != last_start or value < last_value:  # reset
            return (start or last_end, end, int(value)) if value else None
        if end <= last_end:  # a repeat or out-of-order point
            self._last[series] = last
            return None
        tokens = int(value - last_value)
        return (last_end, end, tokens) if tokens else None


def _call(group: _Group) -> Call:
    t = group.tokens
    fresh, cache_read, cache_write = t.get("input", 0), t.get("cacheRead", 0), t.get("cacheCreation", 0)
    info = CallInfo(
        response_model=None,
        input_tokens=fresh + cache_read + cache_write,
        output_tokens=t.get("output", 0),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )
    return Call(
        provider=sc.PROVIDER_ANTHROPIC,
        operation=sc.OPERATION_CHAT,
        request_model=group.model,
        integration=sc.INTEGRATION_GATEWAY,
        info=info,
        start_time_ns=group.start_ns,
        latency_ms=None,
        token_accuracy=sc.TOKEN_ACCURACY_EXACT,
        region=group.region,
        output_type=sc.OUTPUT_TYPE_TEXT,
        attributes=group.tags,
        environment=group.environment,
        flags=(FLAG_CLAUDE_CODE,),
    )
