"""Span processors: carbon enrichment, trace roll-ups and the content guard, and the pipeline joining them.

Each processor wraps the next one and forwards a modified copy of the span, because since
opentelemetry-sdk 1.43 a finished span cannot be changed in place. ``build_pipeline`` puts them in the
only safe order::

    CarbonSpanProcessor -> TraceRollupProcessor -> ContentGuard -> your exporting processor

Energy is computed first (it reads token counts), the roll-up second (it reads energy), and content is
stripped last, after everything has read what it needs, so nothing with content reaches the exporter::

    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    provider.add_span_processor(build_pipeline(BatchSpanProcessor(OTLPSpanExporter())))

``call_from_attributes`` (span attributes -> ``Call``) needs no OpenTelemetry and is imported eagerly;
the processors load the OpenTelemetry SDK on first use, so the OTLP gateway can import the reader
without the SDK installed.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .span_reading import call_from_attributes

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor

    from .carbon import CarbonSpanProcessor
    from .content_guard import ContentGuard, ContentGuardExporter
    from .rollup import TraceRollupProcessor

_LAZY = {
    "CarbonSpanProcessor": ".carbon",
    "ContentGuard": ".content_guard",
    "ContentGuardExporter": ".content_guard",
    "TraceRollupProcessor": ".rollup",
}

__all__ = [
    "CarbonSpanProcessor",
    "ContentGuard",
    "ContentGuardExporter",
    "TraceRollupProcessor",
    "build_pipeline",
    "call_from_attributes",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def build_pipeline(next_processor: SpanProcessor, *, region: str | None = None) -> SpanProcessor:
    """``next_processor`` behind carbon enrichment, the trace roll-up and the content guard, in that order.

    ``region``: the cloud region the models run in, if known (see ``CarbonSpanProcessor``).
    """
    from .carbon import CarbonSpanProcessor
    from .content_guard import ContentGuard
    from .rollup import TraceRollupProcessor

    return CarbonSpanProcessor(TraceRollupProcessor(ContentGuard(next_processor)), region=region)
