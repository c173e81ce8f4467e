"""The privacy canary test for Bedrock: canary strings in prompts, system prompts, tool specs, the AWS
secret key and session token, and (through the fake's echo) in responses, stream chunks and error
messages. Every call kind goes through the full pipeline; then every byte that left is searched: exported
spans, metric points, the lake's record files, our logs, stdout and stderr."""

from __future__ import annotations

import gc
import json
import logging

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tailpipe_ai import TailpipeAI
from tailpipe_ai.instrumentation.bedrock import BedrockInstrumentor
from tailpipe_ai.processor import build_pipeline
from tests import privacy
from tests.fakes import bedrock as fake
from tests.fakes.server import FakeServer

PROMPT = "CANARY-PROMPT-b3d7"
SYSTEM = "CANARY-SYSTEM-0c9e"
TOOL = "CANARY-TOOLSPEC-a4f2"
SECRET = "CANARY-AWS-SECRET-77e1"
TOKEN = "CANARY-AWS-SESSION-TOKEN-19ab"
CANARIES = (PROMPT, SYSTEM, TOOL, SECRET, TOKEN, fake.RESPONSE_CANARY)
MESSAGES = [{"role": "user", "content": [{"text": PROMPT}]}]
SONNET = "us.anthropic.claude-sonnet-4-20250514-v1:0"


@pytest.fixture
def stack(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(build_pipeline(SimpleSpanProcessor(spans)))
    metrics = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[metrics])
    lake = tmp_path / "lake"
    tailpipe = TailpipeAI(lake=lake, tracer_provider=tracer_provider, meter_provider=meter_provider)
    with FakeServer() as server:
        fake.install(server)
        yield tailpipe, server, spans, metrics, lake
    tracer_provider.shutdown()
    meter_provider.shutdown()


def new_client(server):
    return boto3.client(
        "bedrock-runtime",
        region_name="eu-central-1",
        endpoint_url=server.url,
        aws_access_key_id="AKIAFAKEFAKEFAKE",
        aws_secret_access_key=SECRET,
        aws_session_token=TOKEN,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def every_call_kind(client):
    tool_config = {
        "tools": [{"toolSpec": {"name": "lookup", "description": TOOL, "inputSchema": {"json": {"type": "object"}}}}]
    }
    client.converse(modelId=SONNET, messages=MESSAGES, system=[{"text": SYSTEM}], toolConfig=tool_config)
    for _ in client.converse_stream(modelId=SONNET, messages=MESSAGES, system=[{"text": SYSTEM}])["stream"]:
        pass
    stream = client.converse_stream(modelId=SONNET, messages=MESSAGES)["stream"]
    for _ in stream:
        break  # abandoned early
    stream.close()
    anthropic_body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    assert PROMPT in client.invoke_model(modelId=SONNET, body=json.dumps(anthropic_body))["body"].read().decode()
    for event in client.invoke_model_with_response_stream(modelId=SONNET, body=json.dumps(anthropic_body))["body"]:
        assert event["chunk"]["bytes"]
    body = json.dumps({"prompt": f"<<SYS>>{SYSTEM}<</SYS>> {PROMPT}"})
    assert (
        fake.RESPONSE_CANARY
        in client.invoke_model(modelId="meta.llama3-8b-instruct-v1:0", body=body)["body"].read().decode()
    )
    for _ in client.invoke_model_with_response_stream(modelId="us.amazon.nova-lite-v1:0", body=body)["body"]:
        pass
    image = {
        "taskType": "TEXT_IMAGE",
        "textToImageParams": {"text": PROMPT},
        "imageGenerationConfig": {"numberOfImages": 1},
    }
    client.invoke_model(modelId="amazon.nova-canvas-v1:0", body=json.dumps(image))
    client.start_async_invoke(
        modelId="amazon.nova-reel-v1:1",
        modelInput={
            "taskType": "TEXT_VIDEO",
            "textToVideoParams": {"text": PROMPT},
            "videoGenerationConfig": {"durationSeconds": 6},
        },
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://bucket/out"}},
    )
    with pytest.raises(ClientError) as err:
        client.converse(modelId="fake-invalid", messages=MESSAGES)
    assert fake.RESPONSE_CANARY in str(err.value)  # the error the caller sees carries it; we must not


@pytest.mark.parametrize("how", ["wrap", "instrumentor"])
def test_no_canary_leaves_through_any_channel(how, stack, caplog, capfd):
    tailpipe, server, spans, metrics, lake = stack
    caplog.set_level(logging.DEBUG)
    if how == "wrap":
        every_call_kind(tailpipe.wrap(new_client(server)))
    else:
        inst = BedrockInstrumentor()
        inst.instrument(telemetry=tailpipe.telemetry)
        try:
            every_call_kind(new_client(server))
        finally:
            inst.uninstrument()
    gc.collect()
    assert tailpipe.flush(10)

    ours = [s for s in spans.get_finished_spans() if s.instrumentation_scope.name == "tailpipe_ai"]
    assert len(ours) == 10, [s.name for s in ours]
    assert all("tailpipe.energy.wh" in s.attributes for s in ours if s.attributes.get("error.type") is None)
    written = privacy.lake_bytes(lake)
    assert written.count(b"\n") == 10, "every call wrote its record"
    logs = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("tailpipe"))
    found = privacy.channels(spans=spans.get_finished_spans(), metrics=metrics, lake=written, logs=logs, capfd=capfd)
    privacy.assert_no_canary(found, CANARIES)
