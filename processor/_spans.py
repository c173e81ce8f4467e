"""Copies of finished spans with some fields replaced.

Since opentelemetry-sdk 1.43 a span's attributes are frozen before any processor sees it (``Span.end``
marks its ``BoundedAttributes`` immutable, then calls ``_on_ending`` and ``on_end``), so no processor can
add energy or remove content in place. Our processors therefore wrap the next processor and hand it a
copy: a ``ReadableSpan`` built from every field of the original, with the changed ones swapped in.

Dropped-attribute, dropped-event and dropped-link counts are carried over (a plain dict would report 0),
so exporters keep telling backends that the span hit its limits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace.status import Status

_KEEP: Any = object()


def frozen_attributes(attributes: Mapping[str, Any] | None, dropped: int = 0) -> BoundedAttributes:
    """An immutable attribute mapping like the SDK's own, with ``dropped`` carried over."""
    bounded = BoundedAttributes(maxlen=None, attributes=dict(attributes or {}), immutable=True)
    bounded.dropped += dropped
    return bounded


def copy_event(event: Any, attributes: Mapping[str, Any] | None) -> Event:
    """``event`` with its attributes replaced (name, timestamp and dropped count kept)."""
    return Event(
        event.name,
        attributes=frozen_attributes(attributes, getattr(event, "dropped_attributes", 0)),
        timestamp=event.timestamp,
    )


def copy_link(link: trace_api.Link, attributes: Mapping[str, Any] | None) -> trace_api.Link:
    """``link`` with its attributes replaced (context and dropped count kept)."""
    return trace_api.Link(link.context, frozen_attributes(attributes, getattr(link, "dropped_attributes", 0)))


def _bounded_list(items: Iterable[Any], dropped: int) -> BoundedList:
    out = BoundedList.from_seq(None, items)
    out.dropped = dropped
    return out


def _own(span: ReadableSpan, field: str, kind: type, public: Any) -> Any:
    """The span's own bounded container (it holds the dropped count; the public property is a plain view
    that reports 0), or the public value when the span was not built by the SDK."""
    own = getattr(span, field, None)
    return own if isinstance(own, kind) else public


def copy_span(
    span: ReadableSpan,
    *,
    attributes: Mapping[str, Any] | None = _KEEP,
    events: Iterable[Any] = _KEEP,
    links: Iterable[trace_api.Link] = _KEEP,
    status: Status = _KEEP,
) -> ReadableSpan:
    """A new finished span equal to ``span`` except for the fields given."""
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=_own(span, "_attributes", BoundedAttributes, span.attributes)
        if attributes is _KEEP
        else frozen_attributes(attributes, span.dropped_attributes),
        events=_own(span, "_events", BoundedList, span.events)
        if events is _KEEP
        else _bounded_list(events, span.dropped_events),
        links=_own(span, "_links", BoundedList, span.links)
        if links is _KEEP
        else _bounded_list(links, span.dropped_links),
        kind=span.kind,
        # the deprecated InstrumentationInfo, read without the property's deprecation warning
        instrumentation_info=getattr(span, "_instrumentation_info", None),
        status=span.status if status is _KEEP else status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def is_local_root(span: ReadableSpan) -> bool:
    """True for the first span of a trace in this process: no parent, or a parent in another process."""
    parent = span.parent
    return parent is None or bool(parent.is_remote)
