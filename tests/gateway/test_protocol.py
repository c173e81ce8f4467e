"""OTLP/HTTP behaviour: JSON and protobuf, gzip, responses, partial success, region, metrics counted."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.gateway import payloads
from tests.gateway.conftest import expected_g, expected_wh


def test_json_request_gets_json_response_and_a_record(gateway, tenants):
    _, keys = tenants
    body = json.dumps(payloads.traces_json(input_tokens=1000, output_tokens=200)).encode()
    status, headers, reply = gateway.post("/v1/traces", body, key=keys["acme"], content_type="application/json")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(reply) == {}  # partial_success unset
    (record,) = gateway.sink.records
    assert record.trace_id == "5b8efff798038103d269b633813fc60c" and record.span_id == "eee19b7ec3c1b174"
    assert (record.input_tokens, record.output_tokens) == (1000, 200)  # int64 strings decoded
    assert record.latency_ms == pytest.approx(1500.0)
    assert record.environment["service.name"] == "svc-json"
    assert record.energy_wh == pytest.approx(expected_wh("acme-chat-1", 1200))
    assert record.carbon_gco2e == pytest.approx(expected_g("acme-chat-1", 1200))


def test_gzip_protobuf_many_spans_only_genai_recorded(gateway, tenants):
    _, keys = tenants
    spans = [payloads.genai_attributes(input_tokens=i, output_tokens=1) for i in range(1, 6)]
    spans += [{"http.request.method": "GET"}, {}, {"gen_ai.operation.name": "invoke_agent"}]
    body = payloads.traces(spans).SerializeToString()
    status, headers, reply = gateway.post("/v1/traces", body, key=keys["acme"], gzipped=True)
    assert status == 200 and headers["Content-Type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(reply).HasField("partial_success")
    assert sorted(r.input_tokens for r in gateway.sink.records) == [1, 2, 3, 4, 5]


def test_empty_request_is_a_success(gateway, tenants):
    _, keys = tenants
    assert gateway.post("/v1/traces", b"", key=keys["acme"])[0] == 200
    status, _, reply = gateway.post("/v1/traces", b"{}", key=keys["acme"], content_type="application/json")
    assert (status, json.loads(reply)) == (200, {})
    assert gateway.sink.records == []


def test_partial_success_counts_spans_that_could_not_become_records(gateway, tenants, monkeypatch):
    from tailpipe_ai.gateway import ingest

    _, keys = tenants
    real = ingest.build_record

    def flaky(call, *args):
        if call.info.input_tokens == 2:
            raise ValueError("boom")
        return real(call, *args)

    monkeypatch.setattr(ingest, "build_record", flaky)
    body = payloads.traces([payloads.genai_attributes(input_tokens=i) for i in (1, 2, 3)]).SerializeToString()
    status, _, reply = gateway.post("/v1/traces", body, key=keys["acme"])
    assert status == 200
    partial = ExportTraceServiceResponse.FromString(reply).partial_success
    assert partial.rejected_spans == 1 and "could not be turned into records" in partial.error_message
    assert sorted(r.input_tokens for r in gateway.sink.records) == [1, 3]


def test_region_from_span_then_resource_then_unknown(tenants, fixed_carbon):
    from tailpipe_ai.gateway.spans import calls_from_traces

    req = payloads.traces(
        [payloads.genai_attributes(), payloads.genai_attributes(**{"tailpipe.region": "azure:westeurope"})],
        resource={"cloud.provider": "aws", "cloud.region": "eu-west-1"},
    )
    regions = [c.region for c in calls_from_traces(req, "acme")]
    assert regions == ["aws:eu-west-1", "azure:westeurope"]
    req = payloads.traces([payloads.genai_attributes(**{"cloud.region": "atlantis-1"})])
    (call,) = calls_from_traces(req, "acme")
    assert call.region is None and "region_unknown" in call.flags


def test_content_attributes_never_decoded(tenants, fixed_carbon, monkeypatch):
    from tailpipe_ai.gateway import spans

    seen = []
    real = spans.any_value
    monkeypatch.setattr(spans, "any_value", lambda v: seen.append(real(v)) or real(v))
    req = payloads.traces([payloads.genai_attributes(**{"gen_ai.input.messages": "CANARY", "llm.prompts.0": "CANARY"})])
    (call,) = spans.calls_from_traces(req, "acme")
    assert "CANARY" not in seen and call.info.input_tokens == 300


def test_gateway_counts_what_it_ingests_in_our_metric_names(tenants, fixed_carbon):
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from tailpipe_ai.exporter.sink import MemorySink
    from tailpipe_ai.gateway.ingest import Ingestor
    from tailpipe_ai.instrumentation._telemetry import Telemetry

    reader = InMemoryMetricReader()
    telemetry = Telemetry(meter_provider=MeterProvider(metric_readers=[reader]), integration="gateway")
    ingestor = Ingestor(MemorySink(), telemetry=telemetry)
    req = payloads.traces([payloads.genai_attributes(**{"tailpipe.attr.team": "search"})] * 2)
    assert ingestor.traces(req, "acme").records == 2
    points = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                points[m.name] = list(m.data.data_points)
    (carbon,) = points["tailpipe.carbon"]
    assert carbon.value == pytest.approx(2 * expected_g("acme-chat-1", 350))
    assert carbon.attributes["tailpipe.attr.tenant"] == "acme" and carbon.attributes["tailpipe.attr.team"] == "search"
    assert carbon.attributes["gen_ai.request.model"] == "acme-chat-1"
    (energy,) = points["tailpipe.energy"]
    assert energy.value == pytest.approx(2 * expected_wh("acme-chat-1", 350))
    assert sum(p.count for p in points["gen_ai.client.operation.duration"]) == 2
    assert sum(p.sum for p in points["gen_ai.client.token.usage"]) == 2 * 350


def test_request_type_is_a_real_otlp_message():
    assert ExportTraceServiceRequest().SerializeToString() == b""
