"""GenAI spans of an ExportTraceServiceRequest -> records.

The span -> call knowledge is ``processor.span_reading.call_from_attributes`` (every semconv version and
vendor spelling); this module only reads the protobuf fast and adds what the gateway knows: the tenant,
the resource (service, environment, cloud region) and the span's ids, timing and status.

Hot path (benchmarks/gateway.py): reading a protobuf field costs more than anything done with it, so a
span's attributes are walked once and only the values ``call_from_attributes`` reads
(``span_reading.READ_KEYS`` and the ``tailpipe.attr.*`` tags) plus the span's region are decoded; a span
without a GenAI marker among them is skipped. Content attributes (``is_content_attribute``) are never
decoded: they are dropped on arrival and cannot reach a record, a log or an error message.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tailpipe_ai.carbon import resolve_region
from tailpipe_ai.exporter.records import Call
from tailpipe_ai.processor.span_reading import GENAI_MARKERS, READ_KEYS, TAG_PREFIX, call_from_attributes
from tailpipe_ai.semconv import attributes as sc

from .otlp import any_value

TENANT_TAG = "tenant"
"""The attribution tag (record ``attributes.tenant``, metric label ``tailpipe.attr.tenant``) set from the
API key. A payload's own ``tailpipe.attr.tenant`` is overwritten, never trusted."""

FLAG_REGION_UNKNOWN = "region_unknown"

SPAN_KEYS = READ_KEYS | {sc.TAILPIPE_REGION, sc.CLOUD_REGION}
"""The span attributes the gateway decodes (besides ``tailpipe.attr.*`` tags): none is a content attribute
(tests/gateway/test_fast_path.py)."""
_ENVIRONMENT_KEYS = (
    sc.SERVICE_NAME,
    sc.DEPLOYMENT_ENVIRONMENT_NAME,
    sc.DEPLOYMENT_ENVIRONMENT,
    sc.CLOUD_PROVIDER,
    sc.CLOUD_REGION,
)
_STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR
_content_cache: dict[str, bool] = {}


def _is_content(key: str) -> bool:
    hit = _content_cache.get(key)
    if hit is None:
        hit = sc.is_content_attribute(key)
        if len(_content_cache) < 50_000:
            _content_cache[key] = hit
    return hit


def attributes_of(kvs: Any) -> dict[str, Any]:
    """Decoded attributes without content ones (their values are never read)."""
    out: dict[str, Any] = {}
    for kv in kvs:
        key = kv.key
        if not _is_content(key):
            out[key] = any_value(kv.value)
    return out


def span_attributes_of(kvs: Any) -> dict[str, Any]:
    """The decoded attributes a span's call is read from: ``SPAN_KEYS`` and the non-content tags.

    ``call_from_attributes`` gives the same call from these as from all attributes (it reads no others),
    at half the decoding cost of a typical instrumented span.
    """
    out: dict[str, Any] = {}
    decode, skip = _decode_keys, _skip_keys
    for kv in kvs:
        key = kv.key
        if key in skip or (key not in decode and not _learn(key)):
            continue
        v = kv.value
        kind = v.WhichOneof("value")  # the two common kinds inline; any_value for the rest
        if kind == "string_value":
            out[key] = v.string_value
        elif kind == "int_value":
            out[key] = v.int_value
        else:
            out[key] = any_value(v)
    return out


_decode_keys = set(SPAN_KEYS)
_skip_keys: set[str] = set()


def _learn(key: str) -> bool:
    """Whether a span attribute is decoded (a tag that is not content); remembered, so that the next span
    decides with one set lookup instead of a prefix test (up to 50,000 distinct names)."""
    decode = key.startswith(TAG_PREFIX) and not sc.is_content_attribute(key)
    if len(_decode_keys) + len(_skip_keys) < 50_000:
        (_decode_keys if decode else _skip_keys).add(key)
    return decode


@dataclass(slots=True)
class ResourceInfo:
    """What a resource contributes to each of its spans' records."""

    environment: dict[str, str]
    tags: dict[str, str]
    region: str | None


def resource_info(resource: Any, tenant: str) -> ResourceInfo:
    attrs = attributes_of(resource.attributes)
    env = {k: v for k in _ENVIRONMENT_KEYS if isinstance(v := attrs.get(k), str) and v}
    tags = {
        k[len(sc.TAILPIPE_ATTR_PREFIX) :]: v
        for k, v in attrs.items()
        if k.startswith(sc.TAILPIPE_ATTR_PREFIX) and isinstance(v, str)
    }
    tags[TENANT_TAG] = tenant
    region = _text(attrs.get(sc.TAILPIPE_REGION)) or _cloud_region(attrs)
    return ResourceInfo(env, tags, region)


def _cloud_region(attrs: dict[str, Any]) -> str | None:
    region = _text(attrs.get(sc.CLOUD_REGION))
    if region is None:
        return None
    provider = _text(attrs.get(sc.CLOUD_PROVIDER))
    if provider in ("aws", "azure", "gcp") and ":" not in region:
        return f"{provider}:{region}"
    return region


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@lru_cache(maxsize=4096)
def usable_region(region: str | None) -> str | None:
    """``region`` if the carbon engine knows it, else None (the estimate then uses the global default)."""
    if region is None:
        return None
    try:
        resolve_region(region)
    except Exception:
        return None
    return region


def calls_from_traces(request: Any, tenant: str, default_region: str | None = None) -> Iterator[Call]:
    """Every GenAI model call in an ExportTraceServiceRequest, as ``Call``s tagged with ``tenant``."""
    markers = GENAI_MARKERS
    for resource_spans in request.resource_spans:
        resource: ResourceInfo | None = None
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attrs = span_attributes_of(span.attributes)
                if markers.isdisjoint(attrs):
                    continue
                if resource is None:
                    resource = resource_info(resource_spans.resource, tenant)
                wanted = _text(attrs.get(sc.TAILPIPE_REGION)) or _text(attrs.get(sc.CLOUD_REGION))
                wanted = wanted or resource.region or default_region
                region = usable_region(wanted)
                call = call_from_attributes(attrs, integration=sc.INTEGRATION_GATEWAY, region=region)
                if call is None:
                    continue
                if wanted is not None and region is None:
                    call.flags = (*call.flags, FLAG_REGION_UNKNOWN)
                call.attributes = {**resource.tags, **call.attributes, TENANT_TAG: tenant}
                call.environment = resource.environment
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                call.start_time_ns = start or time.time_ns()
                if start and end >= start:
                    call.latency_ms = (end - start) / 1e6
                trace_id, span_id = span.trace_id, span.span_id
                if len(trace_id) == 16 and len(span_id) == 8:
                    call.trace_id = trace_id.hex()
                    call.span_id = span_id.hex()
                if span.status.code == _STATUS_ERROR and call.status != "error":
                    call.status = "error"
                    call.error_type = sc.ERROR_TYPE_OTHER
                yield call
