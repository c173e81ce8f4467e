"""Must show: the OTel SDK's own OTLP/HTTP exporter (protobuf, gzip) -> gateway -> records in the lake.

Spans come from our instrumentation (the real Anthropic SDK against the loopback fake) and from a
third-party-style tracer whose span carries content attributes and a content event. Canary strings sit in
the prompt, the API key and the content attributes; none may appear in the lake, the logs or the output.
"""

from __future__ import annotations

import logging

import pytest

from tests.gateway.conftest import expected_g, expected_wh, lake_records

anthropic = pytest.importorskip("anthropic")
otlp_http = pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")

CANARY_PROMPT = "CANARY-PROMPT-7f3a9c"
CANARY_KEY = "sk-ant-CANARY-KEY-51d0e2"
CANARY_CONTENT = "CANARY-CONTENT-b8e441"
CANARIES = (CANARY_PROMPT, CANARY_KEY, CANARY_CONTENT)


@pytest.mark.slow
def test_sdk_exporter_spans_become_lake_records(tenants, fixed_carbon, tmp_path, caplog, capfd):
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from tailpipe_ai.exporter.local_lake import LocalLakeSink
    from tailpipe_ai.exporter.sink import NullSink
    from tailpipe_ai.gateway.server import GatewayThread, build_gateway
    from tailpipe_ai.instrumentation._telemetry import Telemetry, flush
    from tailpipe_ai.instrumentation.anthropic import wrap_client
    from tests.fakes import anthropic as fake
    from tests.fakes.server import FakeServer

    caplog.set_level(logging.DEBUG, logger="tailpipe_ai")
    config, keys = tenants
    lake = tmp_path / "lake"
    sink = LocalLakeSink(lake, recover=False)
    with GatewayThread(build_gateway(config, sink=sink)) as gw, FakeServer() as server:
        fake.install(server)
        exporter = otlp_http.OTLPSpanExporter(
            endpoint=gw.url + "/v1/traces",
            headers={"Authorization": f"Bearer {keys['acme']}"},
            compression=Compression.Gzip,
        )
        resource = Resource.create(
            {"service.name": "checkout", "tailpipe.attr.team": "payments", "tailpipe.attr.tenant": "globex"}
        )
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(SimpleSpanProcessor(exporter))

        # 1. our instrumentation, through the real SDK
        telemetry = Telemetry(tracer_provider=provider, sink=NullSink())
        client = wrap_client(
            anthropic.Anthropic(
                base_url=server.url,
                api_key=CANARY_KEY,
                max_retries=0,
                http_client=anthropic.DefaultHttpxClient(verify=False),
            ),
            telemetry,
        )
        client.messages.create(
            model="claude-sonnet-4", max_tokens=64, messages=[{"role": "user", "content": CANARY_PROMPT}]
        )
        flush()

        # 2. a third-party (OpenLLMetry-style, old semconv) span carrying content
        tracer = provider.get_tracer("opentelemetry.instrumentation.openai.v1", "0.40")
        with tracer.start_as_current_span("openai.chat") as span:
            span.set_attributes(
                {
                    "gen_ai.system": "openai",
                    "llm.request.type": "chat",
                    "gen_ai.request.model": "acme-chat-1",
                    "gen_ai.usage.prompt_tokens": 300,
                    "gen_ai.usage.completion_tokens": 50,
                    "gen_ai.prompt.0.content": CANARY_CONTENT,
                    "gen_ai.completion.0.content": CANARY_CONTENT,
                    "traceloop.entity.input": CANARY_CONTENT,
                    "tailpipe.attr.tenant": "globex",  # a spoofing attempt: the key says acme
                }
            )
            span.add_event("gen_ai.user.message", {"content": CANARY_CONTENT})
            third_party_ids = (format(span.get_span_context().trace_id, "032x"), span.get_span_context().span_id)
        # 3. a plain HTTP span: not a model call, no record
        with provider.get_tracer("http").start_as_current_span("GET /health"):
            pass
        assert provider.force_flush()
        provider.shutdown()
    assert sink.flush(10)
    sink.close()

    records = {r["request_model"]: r for r in lake_records(lake)}
    assert set(records) == {"claude-sonnet-4", "acme-chat-1"}
    ours, theirs = records["claude-sonnet-4"], records["acme-chat-1"]
    for r in (ours, theirs):
        assert r["integration"] == "gateway"
        assert r["attributes"]["tenant"] == "acme"
        assert r["attributes"]["team"] == "payments"
        assert r["environment"]["service.name"] == "checkout"
        assert r["factors"]["pue"]["value"] == 1.2 and r["factors"]["grid"]["value"] == 300.0
    # ours: fake Anthropic usage -> 1125 input (cache included) + 40 output
    assert (ours["provider"], ours["input_tokens"], ours["output_tokens"]) == ("anthropic", 1125, 40)
    assert (ours["cache_read_tokens"], ours["cache_write_tokens"]) == (1000, 100)
    assert ours["energy_wh"] == pytest.approx(expected_wh("claude-sonnet-4", 1165))
    assert ours["carbon_gco2e"] == pytest.approx(expected_g("claude-sonnet-4", 1165))
    assert ours["latency_ms"] > 0
    # theirs: old semconv names read, 350 tokens on the custom model
    assert (theirs["provider"], theirs["input_tokens"], theirs["output_tokens"]) == ("openai", 300, 50)
    assert theirs["energy_wh"] == pytest.approx(350 * 0.001 * 1.04 * 1.08 * 1.2)
    assert theirs["carbon_gco2e"] == pytest.approx(350 * 0.001 * 1.04 * 1.08 * 1.2 / 1000 * 300)
    assert theirs["trace_id"] == third_party_ids[0]
    assert theirs["span_id"] == format(third_party_ids[1], "016x")

    # no content anywhere: lake bytes, logs, stdout/stderr
    import gzip

    lake_bytes = b"".join(gzip.decompress(p.read_bytes()) for p in lake.rglob("*.gz"))
    captured = capfd.readouterr()
    # (the Anthropic SDK's own DEBUG log prints the request: that is the user's logger, not ours)
    ours_logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("tailpipe"))
    everything = lake_bytes.decode() + ours_logged + captured.out + captured.err
    for canary in CANARIES:
        assert canary not in everything
