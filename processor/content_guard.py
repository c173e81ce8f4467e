"""The ContentGuard: nothing that can hold a prompt, a response or a secret leaves the process.

tailpipe-ai's own instrumentation never records content, but other instrumentations in the same process
do, often by default (OpenLLMetry ``TRACELOOP_TRACE_CONTENT`` defaults to true, OpenLIT
``capture_message_content`` too). The guard sits last before the exporters and forwards a copy of every
span with:

- content attributes removed (the denylist of ``tailpipe_ai.semconv.attributes``: exact names such as
  ``gen_ai.input.messages`` and ``traceloop.entity.input``, prefixes such as ``gen_ai.prompt`` and
  ``llm.prompts``);
- content events dropped whole (``gen_ai.*.message``, ``gen_ai.choice``,
  ``gen_ai.client.inference.operation.details``, ...);
- the same attributes removed from the remaining events and from links, which covers
  ``exception.message`` / ``exception.stacktrace`` on exception events: provider errors (content policy,
  validation) can echo fragments of the prompt;
- an error status description replaced by the span's ``error.type`` (or removed), for the same reason:
  ``Status(ERROR, str(exc))`` carries the exception message.

There is no option to let content through: the privacy invariant is not configurable. If stripping fails
the span is dropped, never forwarded as it was.

The guard does not forward ``on_start`` or ``_on_ending``: both hand over the live span, whose attributes
include the content, and a processor that exports on start (some "pending span" processors do) would leak
it. The next processor only ever sees stripped, finished spans.

Spans with nothing to strip are forwarded as they are, without a copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status, StatusCode

from tailpipe_ai.semconv import attributes as sc

from ._log import log_once
from ._spans import copy_event, copy_link, copy_span

EXCEPTION_DETAIL_ATTRIBUTES = frozenset({"exception.message", "exception.stacktrace"})
"""Removed from every event even if the semconv denylist ever stopped listing them (``exception.type``
is kept: it is a class name)."""


def _is_blocked(name: str) -> bool:
    return sc.is_content_attribute(name) or name in EXCEPTION_DETAIL_ATTRIBUTES


def strip_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The attributes without content ones, or None when there was nothing to remove (no copy needed)."""
    if not attributes:
        return None
    if not any(_is_blocked(name) for name in attributes):
        return None
    return {name: value for name, value in attributes.items() if not _is_blocked(name)}


def _safe_status(span: ReadableSpan) -> Status | None:
    """A replacement for a status whose description may hold an exception message, or None if fine."""
    status = span.status
    description = status.description
    if not description:
        return None
    error_type = (span.attributes or {}).get(sc.ERROR_TYPE)
    safe = error_type if isinstance(error_type, str) and error_type else None
    if description == safe:
        return None
    if status.status_code is StatusCode.ERROR:
        return Status(StatusCode.ERROR, safe)
    return Status(status.status_code)


def strip_content(span: ReadableSpan) -> ReadableSpan:
    """``span`` itself if it holds no content, else a copy without content attributes, events and status
    description."""
    changes: dict[str, Any] = {}

    attributes = strip_attributes(span.attributes)
    if attributes is not None:
        changes["attributes"] = attributes

    events = []
    events_changed = False
    for event in span.events:
        if sc.is_content_event(event.name):
            events_changed = True
            continue
        event_attributes = strip_attributes(event.attributes)
        if event_attributes is None:
            events.append(event)
        else:
            events.append(copy_event(event, event_attributes))
            events_changed = True
    if events_changed:
        changes["events"] = events

    links = []
    links_changed = False
    for link in span.links:
        link_attributes = strip_attributes(link.attributes)
        if link_attributes is None:
            links.append(link)
        else:
            links.append(copy_link(link, link_attributes))
            links_changed = True
    if links_changed:
        changes["links"] = links

    status = _safe_status(span)
    if status is not None:
        changes["status"] = status

    return copy_span(span, **changes) if changes else span


class ContentGuard(SpanProcessor):
    """Wraps the processor that exports (e.g. a ``BatchSpanProcessor``) and forwards only stripped copies::

        provider.add_span_processor(ContentGuard(BatchSpanProcessor(OTLPSpanExporter())))

    Use ``tailpipe_ai.processor.build_pipeline`` to get it together with carbon enrichment and roll-ups.
    """

    def __init__(self, next_processor: SpanProcessor) -> None:
        self._next = next_processor

    @property
    def next_processor(self) -> SpanProcessor:
        return self._next

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Not forwarded: the live span may already hold content (see the module docstring)."""

    def _on_ending(self, span: Span) -> None:
        """Not forwarded, for the same reason as ``on_start``."""

    def on_end(self, span: ReadableSpan) -> None:
        try:
            clean = strip_content(span)
        except Exception as exc:
            log_once("ContentGuard.on_end", exc, "dropped (never forwarded unstripped)")
            return
        self._next.on_end(clean)

    def shutdown(self) -> None:
        self._next.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._next.force_flush(timeout_millis)


class ContentGuardExporter(SpanExporter):
    """The same stripping for users who hand exporters to their own processors: wraps a ``SpanExporter``.

    It runs on the exporting thread (the ``BatchSpanProcessor`` worker), so it is off the request path, but
    processors placed before it still see content. Prefer ``ContentGuard`` when you build the pipeline.
    """

    def __init__(self, next_exporter: SpanExporter) -> None:
        self._next = next_exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        clean: list[ReadableSpan] = []
        for span in spans:
            try:
                clean.append(strip_content(span))
            except Exception as exc:
                log_once("ContentGuardExporter.export", exc, "dropped (never forwarded unstripped)")
        return self._next.export(clean)

    def shutdown(self) -> None:
        self._next.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._next.force_flush(timeout_millis)
