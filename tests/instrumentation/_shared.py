"""Helpers shared by the provider instrumentation tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any


class Mode:
    """How a test client is instrumented: 'instrumentor' (global) or 'wrap_client' (one instance)."""

    def __init__(self, name: str, apply: Callable[[Any], Any]) -> None:
        self.name, self.apply = name, apply

    def __call__(self, client: Any) -> Any:
        return self.apply(client)


def instrument_mode(name: str, instrumentor_cls: type, wrap_client: Callable, otel: Any) -> Iterator[Mode]:
    """Body of a parametrised `mode` fixture: instrument globally, or wrap each client."""
    if name == "instrumentor":
        inst = instrumentor_cls()
        inst.instrument(telemetry=otel.telemetry)
        yield Mode(name, lambda c: c)
        inst.uninstrument()
    else:
        yield Mode(name, lambda c: wrap_client(c, otel.telemetry))


def only_span(otel: Any) -> Any:
    spans = otel.spans.get_finished_spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def only_record(otel: Any) -> Any:
    assert len(otel.sink.records) == 1
    return otel.sink.records[0].validate()


def metric_sum(otel: Any, name: str, **attrs: Any) -> float:
    points = [p for p in otel.metric_points(name) if all(p.attributes.get(k) == v for k, v in attrs.items())]
    return sum(p.sum if hasattr(p, "sum") else p.value for p in points)
