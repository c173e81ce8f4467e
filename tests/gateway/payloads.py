"""OTLP request builders for the gateway tests (protobuf messages, and OTLP/JSON documents)."""

from __future__ import annotations

import os
import time

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def kv(key, value):
    if isinstance(value, bool):
        v = AnyValue(bool_value=value)
    elif isinstance(value, int):
        v = AnyValue(int_value=value)
    elif isinstance(value, float):
        v = AnyValue(double_value=value)
    else:
        v = AnyValue(string_value=value)
    return KeyValue(key=key, value=v)


def genai_attributes(model="acme-chat-1", input_tokens=300, output_tokens=50, **extra):
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
    }
    attrs.update(extra)
    return attrs


def traces(spans, resource=None):
    """spans: list of attribute dicts (one span each)."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for k, v in (resource or {"service.name": "svc"}).items():
        rs.resource.attributes.append(kv(k, v))
    ss = rs.scope_spans.add()
    ss.scope.name = "test"
    now = time.time_ns()
    for attrs in spans:
        sp = ss.spans.add()
        sp.trace_id = os.urandom(16)
        sp.span_id = os.urandom(8)
        sp.name = "chat"
        sp.start_time_unix_nano = now - 2_000_000_000
        sp.end_time_unix_nano = now - 1_000_000_000
        for k, v in attrs.items():
            sp.attributes.append(kv(k, v))
    return req


def traces_json(model="acme-chat-1", input_tokens=300, output_tokens=50):
    """An OTLP/JSON document as a collector writes it: hex ids, camelCase, int64 as strings."""
    now = time.time_ns()
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc-json"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "json-client"},
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "chat",
                                "kind": 3,
                                "startTimeUnixNano": str(now - 2_000_000_000),
                                "endTimeUnixNano": str(now - 500_000_000),
                                "attributes": [
                                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                    {"key": "gen_ai.system", "value": {"stringValue": "openai"}},
                                    {"key": "gen_ai.request.model", "value": {"stringValue": model}},
                                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": str(input_tokens)}},
                                    {"key": "gen_ai.usage.output_tokens", "value": {"intValue": str(output_tokens)}},
                                ],
                                "status": {"code": 1},
                            }
                        ],
                    }
                ],
            }
        ]
    }


DELTA, CUMULATIVE = 1, 2


def claude_code_metrics(points, *, temporality=DELTA, start_ns=None, end_ns=None, resource=None):
    """points: list of (type, model, value) for claude_code.token.usage."""
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    for k, v in (resource or {"service.name": "claude-code", "session.id": "s-1"}).items():
        rm.resource.attributes.append(kv(k, v))
    sm = rm.scope_metrics.add()
    sm.scope.name = "com.anthropic.claude_code"
    m = sm.metrics.add()
    m.name = "claude_code.token.usage"
    m.unit = "tokens"
    m.sum.aggregation_temporality = temporality
    m.sum.is_monotonic = True
    end_ns = end_ns or time.time_ns()
    for kind, model, value in points:
        p = m.sum.data_points.add()
        p.start_time_unix_nano = start_ns or end_ns - 60_000_000_000
        p.time_unix_nano = end_ns
        p.as_double = float(value)
        p.attributes.append(kv("type", kind))
        p.attributes.append(kv("model", model))
        p.attributes.append(kv("query_source", "main"))
    other = sm.metrics.add()  # a metric the gateway ignores
    other.name = "claude_code.session.count"
    other.sum.aggregation_temporality = temporality
    other.sum.data_points.add(as_int=1, time_unix_nano=end_ns)
    return req
