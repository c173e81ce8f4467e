"""Claude Code's claude_code.token.usage metrics posted as OTLP -> records, delta and cumulative."""

from __future__ import annotations

import time

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

from tests.gateway import payloads

MODEL = "claude-sonnet-4"
# claude-sonnet-4 flat figure (seed: 0.00245 Wh/token) with the fixture's factors (PSE 1.04, TL 1.08,
# PUE 1.2, grid 300 g/kWh); a record sums input + cacheRead + cacheCreation + output tokens.
WH = 0.00245 * 1.04 * 1.08 * 1.2


def test_delta_points_become_one_record_per_interval_and_model(gateway, tenants):
    _, keys = tenants
    body = payloads.claude_code_metrics(
        [
            ("input", MODEL, 120),
            ("output", MODEL, 80),
            ("cacheRead", MODEL, 2000),
            ("cacheCreation", MODEL, 300),
            ("input", "claude-haiku-4-5", 10),
            ("output", "claude-haiku-4-5", 5),
            ("bogus", MODEL, 999),
        ]
    ).SerializeToString()
    status, _, reply = gateway.post("/v1/metrics", body, key=keys["acme"], gzipped=True)
    assert status == 200
    assert not ExportMetricsServiceResponse.FromString(reply).HasField("partial_success")
    records = {r.request_model: r for r in gateway.sink.records}
    assert set(records) == {MODEL, "claude-haiku-4-5"}
    r = records[MODEL]
    assert (r.provider, r.operation, r.integration) == ("anthropic", "chat", "gateway")
    assert (r.input_tokens, r.output_tokens, r.cache_read_tokens, r.cache_write_tokens) == (2420, 80, 2000, 300)
    assert r.energy_wh == pytest.approx(2500 * WH)
    assert r.carbon_gco2e == pytest.approx(2500 * WH / 1000 * 300)
    assert r.attributes == {"tenant": "acme", "query_source": "main"}
    assert "claude_code_metrics" in r.flags and r.token_accuracy == "exact"
    assert r.environment["service.name"] == "claude-code"


def test_cumulative_points_are_differenced_and_resets_detected(gateway, tenants):
    _, keys = tenants
    start = time.time_ns() + 1_000  # the series starts after the gateway did: its first point counts
    t = start

    def post(value, start_ns=start):
        nonlocal t
        t += 10_000_000_000
        body = payloads.claude_code_metrics(
            [("input", MODEL, value), ("output", MODEL, value // 10)],
            temporality=payloads.CUMULATIVE,
            start_ns=start_ns,
            end_ns=t,
        ).SerializeToString()
        assert gateway.post("/v1/metrics", body, key=keys["acme"])[0] == 200

    post(1000)  # first point: 1000 + 100
    post(1000)  # unchanged: nothing
    post(1500)  # +500 +50
    post(200, start_ns=start + 50_000_000_000)  # restart of Claude Code: a new start time, counts in full
    got = [(r.input_tokens, r.output_tokens) for r in gateway.sink.records]
    assert got == [(1000, 100), (500, 50), (200, 20)]
    assert sum(r.energy_wh for r in gateway.sink.records) == pytest.approx((1100 + 550 + 220) * WH)


def test_cumulative_series_older_than_the_gateway_only_sets_a_baseline(gateway, tenants):
    _, keys = tenants
    old_start = time.time_ns() - 3600 * 10**9
    now = time.time_ns()
    for i, value in enumerate((50_000, 50_400)):
        body = payloads.claude_code_metrics(
            [("input", MODEL, value)], temporality=payloads.CUMULATIVE, start_ns=old_start, end_ns=now + i * 10**10
        ).SerializeToString()
        assert gateway.post("/v1/metrics", body, key=keys["acme"])[0] == 200
    (record,) = gateway.sink.records  # the 50,000 before we started are not ours to count
    assert record.input_tokens == 400
    assert gateway.gateway.ingestor.claude_code.baselined == 1


def test_tenants_keep_separate_cumulative_state(gateway, tenants):
    _, keys = tenants
    start = time.time_ns() + 1_000
    for tenant, value in (("acme", 100), ("globex", 100), ("acme", 300)):
        body = payloads.claude_code_metrics(
            [("output", MODEL, value)],
            temporality=payloads.CUMULATIVE,
            start_ns=start,
            end_ns=start + value * 10**8,
        ).SerializeToString()
        assert gateway.post("/v1/metrics", body, key=keys[tenant])[0] == 200
    got = [(r.attributes["tenant"], r.output_tokens) for r in gateway.sink.records]
    assert got == [("acme", 100), ("globex", 100), ("acme", 200)]
