"""Bedrock Runtime instrumentation with the real boto3 client against the loopback fake Bedrock
(`tests/fakes/bedrock.py`): Converse, ConverseStream, InvokeModel per model family,
InvokeModelWithResponseStream (real AWS event-stream frames), cache tokens, errors, early-closed streams,
regions, image and video models, and `TailpipeAI().wrap()` of one client."""

from __future__ import annotations

import gc
import io
import json
import logging
from pathlib import Path

import boto3
import pytest
import tomllib
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError
from opentelemetry.trace import StatusCode

from tailpipe_ai import TailpipeAI
from tailpipe_ai.instrumentation.bedrock import BedrockInstrumentor, wrap_client
from tailpipe_ai.semconv import attributes as sc
from tests.fakes import anthropic as fake_anthropic
from tests.fakes import bedrock as fake
from tests.fakes.server import FakeServer
from tests.instrumentation._shared import instrument_mode, only_record, only_span

SONNET = "us.anthropic.claude-sonnet-4-20250514-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "hello bedrock"}]}]
DATA = Path(__file__).resolve().parents[2] / "carbon" / "data"
PSE, TL = 1.04, 1.08  # the seed's modelling factors (carbon/data/factors.toml)


@pytest.fixture(scope="module")
def module_server():
    with FakeServer() as server:
        fake.install(server)
        yield server


@pytest.fixture
def server(module_server):
    module_server.requests.clear()
    return module_server


@pytest.fixture(autouse=True)
def _no_aws_environment(monkeypatch, tmp_path):
    """Fake credentials only, and no shared config or credential files from the machine."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def new_client(server, region="eu-west-1", service="bedrock-runtime"):
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=server.url,
        aws_access_key_id="AKIAFAKEFAKEFAKE",
        aws_secret_access_key="fake-secret",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


@pytest.fixture(params=["instrumentor", "wrap_client"])
def mode(request, otel):
    yield from instrument_mode(request.param, BedrockInstrumentor, wrap_client, otel)


@pytest.fixture
def client(mode, server):
    return mode(new_client(server))


def region_factors(region: str) -> tuple[float, float]:
    """(PUE, grid gCO2e/kWh) of an AWS region, read from the bundled data files themselves."""
    regions = tomllib.loads((DATA / "regions.toml").read_text())["regions"]
    countries = tomllib.loads((DATA / "countries.toml").read_text())["countries"]
    entry = regions[f"aws:{region}"]
    return entry["pue"], countries[entry["country"]]["grid"]


def forget(otel):
    """Drop what an untraced-looking reference call produced (under the global instrumentor it is traced)."""
    otel.spans.clear()
    otel.sink.records.clear()


def assert_converse_usage(span, record):
    a = span.attributes
    e = fake.CONVERSE_EXPECTED
    assert a[sc.GEN_AI_PROVIDER_NAME] == sc.PROVIDER_AWS_BEDROCK
    assert a[sc.GEN_AI_OPERATION_NAME] == sc.OPERATION_CHAT
    assert a[sc.GEN_AI_REQUEST_MODEL] == SONNET
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == e["input"]  # 30 + 1000 cache read + 200 cache write
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == e["output"]
    assert a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == e["cache_read"]
    assert a[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == e["cache_write"]
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert a[sc.CLOUD_REGION] == "eu-west-1"
    assert a[sc.TAILPIPE_REGION] == "aws:eu-west-1"
    assert a[sc.SERVER_ADDRESS] == "127.0.0.1"
    assert a[sc.TAILPIPE_MODEL_RESOLVED] == "claude-sonnet-4"
    assert a[sc.TAILPIPE_TOKEN_ACCURACY] == "exact"
    assert a[sc.TAILPIPE_ENERGY_WH] > 0
    pue, grid = region_factors("eu-west-1")
    assert a[sc.TAILPIPE_FACTORS_PUE] == pue
    assert a[sc.TAILPIPE_FACTORS_GRID_GCO2E_PER_KWH] == grid
    assert (record.input_tokens, record.output_tokens) == (e["input"], e["output"])
    assert (record.cache_read_tokens, record.cache_write_tokens) == (e["cache_read"], e["cache_write"])
    assert record.region == "aws:eu-west-1"
    assert record.carbon_gco2e == pytest.approx(record.energy_wh / 1000 * grid)


# ---------------------------------------------------------------------------------------------------------
# Converse and ConverseStream
# ---------------------------------------------------------------------------------------------------------


def test_converse(client, otel):
    response = client.converse(modelId=SONNET, messages=MESSAGES, inferenceConfig={"maxTokens": 64})
    assert response["output"]["message"]["content"][0]["text"] == "echo: hello bedrock"
    assert response["usage"] == fake.CONVERSE_USAGE  # the caller's response is untouched
    span = only_span(otel)
    assert span.name == f"chat {SONNET}"
    assert span.attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert sc.GEN_AI_REQUEST_STREAM not in span.attributes
    record = only_record(otel)
    assert_converse_usage(span, record)
    assert record.streamed is False and record.status == "ok"
    tokens = {
        p.attributes[sc.GEN_AI_TOKEN_TYPE]: p.sum for p in otel.metric_points(sc.METRIC_GEN_AI_CLIENT_TOKEN_USAGE)
    }
    assert tokens == {"input": 1230, "output": 50}


def test_converse_stream(client, otel):
    response = client.converse_stream(modelId=SONNET, messages=MESSAGES)
    assert_converse_stream(list(response["stream"]), otel)


def assert_converse_stream(events, otel):
    """The caller got every ConverseStream event unchanged, and the streamed call was recorded once."""
    assert [next(iter(e)) for e in events] == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == "echo: hello bedrock"
    span = only_span(otel)
    assert span.attributes[sc.GEN_AI_REQUEST_STREAM] is True
    assert span.attributes[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    record = only_record(otel)
    assert_converse_usage(span, record)
    assert record.streamed is True and record.ttft_ms is not None


def test_converse_stream_closed_early(client, otel):
    response = client.converse_stream(modelId=SONNET, messages=MESSAGES)
    for _ in response["stream"]:
        break
    response["stream"].close()
    response["stream"].close()  # a second close ends nothing twice
    record = only_record(otel)
    assert "stream_incomplete" in record.flags and record.token_accuracy == "estimated"
    assert record.status == "ok"


def test_converse_stream_abandoned(client, otel):
    response = client.converse_stream(modelId=SONNET, messages=MESSAGES)
    for _ in response["stream"]:
        break
    del response
    gc.collect()
    record = only_record(otel)
    assert "stream_incomplete" in record.flags


def test_converse_stream_error_event(client, otel):
    response = client.converse_stream(modelId="fake-stream-error", messages=MESSAGES)
    with pytest.raises(EventStreamError):
        for _ in response["stream"]:
            pass
    span = only_span(otel)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == "EventStreamError"


def test_converse_without_usage_is_flagged(client, otel):
    client.converse(modelId="fake-no-usage", messages=MESSAGES)
    record = only_record(otel)
    assert "usage_missing" in record.flags and record.token_accuracy == "estimated"


# ---------------------------------------------------------------------------------------------------------
# errors: the caller sees exactly what boto3 raises without us
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "code", "status"),
    [("fake-throttle", "ThrottlingException", 429), ("fake-invalid", "ValidationException", 400)],
)
def test_client_errors(client, otel, server, model, code, status):
    with pytest.raises(ClientError) as plain:
        new_client(server).converse(modelId=model, messages=MESSAGES)
    forget(otel)
    with pytest.raises(ClientError) as ours:
        client.converse(modelId=model, messages=MESSAGES)
    assert type(ours.value) is type(plain.value)
    assert (
        ours.value.response["Error"]
        == plain.value.response["Error"]
        == {"Code": code, "Message": ours.value.response["Error"]["Message"]}
    )
    assert ours.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    span = only_span(otel)
    assert span.attributes[sc.ERROR_TYPE] == code
    assert span.status.status_code is StatusCode.ERROR
    record = only_record(otel)
    assert (record.status, record.error_type) == ("error", code)


# ---------------------------------------------------------------------------------------------------------
# InvokeModel: every family's body, read without taking it from the caller
# ---------------------------------------------------------------------------------------------------------


def invoke(client, model, body):
    return client.invoke_model(modelId=model, body=json.dumps(body), contentType="application/json")


def test_invoke_model_anthropic_body_is_byte_identical(client, otel, server):
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
    }
    plain = invoke(new_client(server), SONNET, body)["body"].read()
    forget(otel)
    response = invoke(client, SONNET, body)
    assert response["body"].read() == plain
    assert json.loads(plain)["content"][0]["text"] == "echo: hi"
    e = fake_anthropic.EXPECTED
    record = only_record(otel)
    assert (record.input_tokens, record.output_tokens) == (e["input"], e["output"])
    assert (record.cache_read_tokens, record.cache_write_tokens, record.reasoning_tokens) == (
        e["cache_read"],
        e["cache_write"],
        e["reasoning"],
    )
    assert record.response_model == SONNET and record.operation == sc.OPERATION_CHAT


def test_invoke_model_body_read_in_parts(client, otel):
    response = invoke(client, "meta.llama3-8b-instruct-v1:0", {"prompt": "abc"})
    parts = list(response["body"].iter_chunks(chunk_size=7))
    assert json.loads(b"".join(parts))["generation"] == "echo: abc"
    assert len(parts) > 1


@pytest.mark.parametrize(
    ("model", "body", "operation", "expected"),
    [
        ("meta.llama3-8b-instruct-v1:0", {"prompt": "p"}, "text_completion", (12, 34, None, ("stop",))),
        ("amazon.titan-text-express-v1", {"inputText": "p"}, "text_completion", (9, 21, None, ("FINISH",))),
        ("amazon.titan-embed-text-v2:0", {"inputText": "p"}, "embeddings", (9, None, None, ())),
        (
            "us.amazon.nova-pro-v1:0",
            {"messages": [{"role": "user", "content": [{"text": "p"}]}]},
            "chat",
            (540, 60, 500, ("stop",)),  # inputTokens 40 + 500 cache read
        ),
        ("mistral.mistral-7b-instruct-v0:2", {"prompt": "p"}, "chat", (17, 23, None, ("stop",))),  # headers only
        ("cohere.command-r-plus-v1:0", {"message": "p"}, "chat", (17, 23, None, ("COMPLETE",))),  # headers only
    ],
)
def test_invoke_model_families(client, otel, model, body, operation, expected):
    response = invoke(client, model, body)
    assert json.loads(response["body"].read())  # still readable by the caller
    span = only_span(otel)
    a = span.attributes
    assert a[sc.GEN_AI_OPERATION_NAME] == operation
    inp, out, cache_read, reasons = expected
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == inp
    assert a.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS) == out
    assert a.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS) == cache_read
    assert tuple(a.get(sc.GEN_AI_RESPONSE_FINISH_REASONS, ())) == reasons
    assert a[sc.TAILPIPE_ENERGY_WH] > 0
    assert only_record(otel).token_accuracy == "exact"


def test_invoke_model_large_body_left_unread(client, otel, monkeypatch):
    from tailpipe_ai.instrumentation import bedrock as instrumentation

    monkeypatch.setattr(instrumentation, "MAX_BODY_BYTES", 10)
    response = invoke(client, "meta.llama3-8b-instruct-v1:0", {"prompt": "p"})
    assert json.loads(response["body"].read())["generation"] == "echo: p"
    a = only_span(otel).attributes  # usage from the token-count headers alone
    assert (a[sc.GEN_AI_USAGE_INPUT_TOKENS], a[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (12, 34)
    assert sc.GEN_AI_RESPONSE_FINISH_REASONS not in a


def test_failed_body_read_is_replayed_to_the_caller():
    """A body whose read breaks gives the caller the bytes that arrived, then the same exception."""
    from botocore.response import StreamingBody

    from tailpipe_ai.instrumentation.bedrock import _take_body

    class Broken(io.RawIOBase):
        def __init__(self):
            self.sent = False

        def readable(self):
            return True

        def read(self, amt=-1):
            if not self.sent:
                self.sent = True
                return b'{"partial": '
            raise ConnectionResetError("peer went away")

    result = {"body": StreamingBody(Broken(), 100)}
    data, failed = _take_body(result, result["body"])
    assert failed and data == b'{"partial": '
    assert result["body"].read(5) == b'{"par'
    assert result["body"].read(100) == b'tial": '
    with pytest.raises(ConnectionResetError):
        result["body"].read(100)
    result = {"body": StreamingBody(Broken(), 100)}
    _take_body(result, result["body"])
    with pytest.raises(ConnectionResetError):
        result["body"].read()


# ---------------------------------------------------------------------------------------------------------
# InvokeModelWithResponseStream
# ---------------------------------------------------------------------------------------------------------


def test_invoke_stream_anthropic(client, otel):
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "yo"}],
    }
    response = client.invoke_model_with_response_stream(modelId=SONNET, body=json.dumps(body))
    kinds = [json.loads(e["chunk"]["bytes"])["type"] for e in response["body"]]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    e = fake_anthropic.EXPECTED
    record = only_record(otel)
    assert (record.input_tokens, record.output_tokens, record.cache_read_tokens, record.cache_write_tokens) == (
        e["input"],
        e["output"],
        e["cache_read"],
        e["cache_write"],
    )
    assert record.streamed and record.token_accuracy == "exact"
    assert only_span(otel).attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("meta.llama3-8b-instruct-v1:0", (11, 22, None, ("stop",))),  # from amazon-bedrock-invocationMetrics
        ("us.amazon.nova-lite-v1:0", (540, 60, 500, ("stop",))),  # Nova's own metadata usage, with cache
    ],
)
def test_invoke_stream_families(client, otel, model, expected):
    response = client.invoke_model_with_response_stream(modelId=model, body=json.dumps({"prompt": "abc"}))
    chunks = [e["chunk"]["bytes"] for e in response["body"]]
    assert len(chunks) >= 3
    a = only_span(otel).attributes
    inp, out, cache_read, reasons = expected
    assert (a[sc.GEN_AI_USAGE_INPUT_TOKENS], a[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (inp, out)
    assert a.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS) == cache_read
    assert tuple(a[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == reasons


def test_invoke_stream_error_event(client, otel):
    response = client.invoke_model_with_response_stream(modelId="meta.fake-stream-error", body=b"{}")
    with pytest.raises(EventStreamError):
        list(response["body"])
    assert only_record(otel).error_type == "EventStreamError"


# ---------------------------------------------------------------------------------------------------------
# models and regions
# ---------------------------------------------------------------------------------------------------------


def test_unknown_model_is_flagged_and_the_call_unaffected(client, otel):
    response = client.converse(modelId="acme.mystery-model-v1:0", messages=MESSAGES)
    assert response["output"]["message"]["content"][0]["text"] == "echo: hello bedrock"
    record = only_record(otel)
    assert "model_unknown" in record.flags
    assert record.input_tokens == 1230 and record.status == "ok"


def test_region_changes_carbon_for_the_same_tokens(mode, otel, server):
    """Same model and tokens in us-east-1 and eu-north-1: energy scales with the regions' PUE and carbon
    with PUE x grid (energy = tokens x Wh/token x PSE x TL x PUE; carbon = energy / 1000 x grid)."""
    for region in ("us-east-1", "eu-north-1"):
        mode(new_client(server, region=region)).converse(modelId=SONNET, messages=MESSAGES)
    east, north = otel.sink.records
    assert (east.region, north.region) == ("aws:us-east-1", "aws:eu-north-1")
    assert east.input_tokens == north.input_tokens and east.output_tokens == north.output_tokens
    pue_e, grid_e = region_factors("us-east-1")
    pue_n, grid_n = region_factors("eu-north-1")
    assert (pue_e, grid_e, pue_n, grid_n) == (1.15, 383.5, 1.10, 35.8)  # the data this test was checked against
    assert east.energy_wh / north.energy_wh == pytest.approx(pue_e / pue_n)
    assert east.carbon_gco2e / north.carbon_gco2e == pytest.approx((pue_e * grid_e) / (pue_n * grid_n))
    assert east.carbon_gco2e == pytest.approx(east.energy_wh / 1000 * grid_e)
    assert north.carbon_gco2e == pytest.approx(north.energy_wh / 1000 * grid_n)
    assert east.carbon_gco2e > 9 * north.carbon_gco2e


def test_region_unknown_to_the_engine_falls_back(mode, otel, server):
    mode(new_client(server, region="xx-nowhere-9")).converse(modelId=SONNET, messages=MESSAGES)
    span = only_span(otel)
    assert span.attributes[sc.CLOUD_REGION] == "xx-nowhere-9"
    record = only_record(otel)
    assert record.region is None and record.energy_wh > 0


@pytest.mark.parametrize(
    "model_id",
    [
        "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-sonnet-4-20250514-v1:0",
        "global.anthropic.claude-sonnet-4-20250514-v1:0",
        "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-sonnet-4-20250514-v1:0",
    ],
)
def test_inference_profiles_and_arns_resolve(client, otel, model_id):
    client.converse(modelId=model_id, messages=MESSAGES)
    span = only_span(otel)
    assert span.attributes[sc.GEN_AI_REQUEST_MODEL] == model_id
    assert span.attributes[sc.TAILPIPE_MODEL_RESOLVED] == "claude-sonnet-4"


# ---------------------------------------------------------------------------------------------------------
# image and video models
# ---------------------------------------------------------------------------------------------------------


def test_titan_image_generator(client, otel):
    body = {
        "taskType": "TEXT_IMAGE",
        "textToImageParams": {"text": "a lighthouse"},
        "imageGenerationConfig": {"numberOfImages": 2, "width": 1024, "height": 1024, "quality": "standard"},
    }
    response = invoke(client, "amazon.titan-image-generator-v2:0", body)
    assert len(json.loads(response["body"].read())["images"]) == 2
    span = only_span(otel)
    a = span.attributes
    assert a[sc.GEN_AI_OPERATION_NAME] == sc.OPERATION_IMAGE_GENERATION
    assert a[sc.GEN_AI_OUTPUT_TYPE] == sc.OUTPUT_TYPE_IMAGE
    assert (a[sc.TAILPIPE_IMAGES_COUNT], a[sc.TAILPIPE_IMAGE_SIZE], a[sc.TAILPIPE_IMAGE_QUALITY]) == (
        2,
        "1024x1024",
        "standard",
    )
    pue, grid = region_factors("eu-west-1")
    media = tomllib.loads((DATA / "media.toml").read_text())["images"]["1024x1024:standard"]["wh"]
    energy = 2 * media * PSE * TL * pue  # the seed's per-image figure, then the usual factors
    record = only_record(otel)
    assert record.energy_wh == pytest.approx(energy)
    assert record.carbon_gco2e == pytest.approx(energy / 1000 * grid)
    assert record.token_accuracy == "exact" and "usage_missing" not in record.flags


@pytest.mark.parametrize(
    ("model", "body", "images", "size"),
    [
        (
            "amazon.nova-canvas-v1:0",
            {"taskType": "TEXT_IMAGE", "imageGenerationConfig": {"numberOfImages": 3, "width": 1280, "height": 720}},
            3,
            "1280x720",
        ),
        ("stability.stable-diffusion-xl-v1", {"text_prompts": [{"text": "x"}], "samples": 2}, 2, None),
        ("stability.sd3-5-large-v1:0", {"prompt": "x", "aspect_ratio": "1:1"}, 1, "1024x1024"),
    ],
)
def test_other_image_models(client, otel, model, body, images, size):
    invoke(client, model, body)
    record = only_record(otel)
    assert (record.images, record.image_size, record.operation) == (images, size, sc.OPERATION_IMAGE_GENERATION)
    assert record.energy_wh > 0


def test_nova_reel_async_video(client, otel):
    model_input = {
        "taskType": "TEXT_VIDEO",
        "textToVideoParams": {"text": "waves"},
        "videoGenerationConfig": {"durationSeconds": 6, "fps": 24, "dimension": "1280x720", "seed": 1},
    }
    response = client.start_async_invoke(
        modelId="amazon.nova-reel-v1:1",
        modelInput=model_input,
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://bucket/videos"}},
    )
    assert response["invocationArn"] == fake.INVOCATION_ARN
    record = only_record(otel)
    assert (record.operation, record.output_type) == (sc.OPERATION_VIDEO_GENERATION, sc.OUTPUT_TYPE_VIDEO)
    assert (record.video_seconds, record.video_resolution) == (6.0, "1280x720")
    pue, _ = region_factors("eu-west-1")
    per_second = tomllib.loads((DATA / "media.toml").read_text())["video"]["720p"]["wh_per_second"]
    assert record.energy_wh == pytest.approx(6 * per_second * PSE * TL * pue)


def test_non_model_operations_are_not_traced(client, otel, server):
    server.route("GET", "/async-invoke", lambda req: fake.Response(body={"asyncInvokeSummaries": []}))
    client.list_async_invokes()
    assert otel.spans.get_finished_spans() == ()
    assert otel.sink.records == []


# ---------------------------------------------------------------------------------------------------------
# wrap() of one client, other services, counting once
# ---------------------------------------------------------------------------------------------------------


def test_tailpipe_wrap_one_client_only(otel, server):
    tailpipe = TailpipeAI(sink=otel.sink, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    wrapped = tailpipe.wrap(new_client(server))
    assert tailpipe.wrap(wrapped) is wrapped  # idempotent
    other = new_client(server)
    wrapped.converse(modelId=SONNET, messages=MESSAGES)
    other.converse(modelId=SONNET, messages=MESSAGES)
    record = only_record(otel)
    assert record.integration == "sdk" and record.region == "aws:eu-west-1"


def test_wrap_of_another_aws_client_is_a_no_op(otel, server, caplog):
    s3 = new_client(server, service="s3")
    before = s3._make_api_call
    with caplog.at_level(logging.WARNING, logger="tailpipe_ai"):
        assert TailpipeAI(sink=otel.sink).wrap(s3) is s3
    assert s3._make_api_call == before
    assert "bedrock-runtime" in caplog.text


def test_other_services_pass_through_the_instrumentor(otel, server):
    server.route(
        "GET",
        "/",
        lambda req: fake.Response(
            body=b'<?xml version="1.0"?><ListAllMyBucketsResult><Buckets></Buckets></ListAllMyBucketsResult>',
            content_type="application/xml",
        ),
    )
    inst = BedrockInstrumentor()
    inst.instrument(telemetry=otel.telemetry)
    try:
        assert new_client(server, service="s3").list_buckets()["Buckets"] == []
    finally:
        inst.uninstrument()
    assert otel.spans.get_finished_spans() == ()


def test_wrapped_client_under_the_instrumentor_counts_once(otel, server):
    inst = BedrockInstrumentor()
    inst.instrument(telemetry=otel.telemetry)
    try:
        wrap_client(new_client(server), otel.telemetry).converse(modelId=SONNET, messages=MESSAGES)
    finally:
        inst.uninstrument()
    only_span(otel)
    new_client(server).converse(modelId=SONNET, messages=MESSAGES)  # uninstrumented again
    assert len(otel.sink.records) == 1


def test_our_failures_never_reach_the_caller(client, otel, monkeypatch, caplog):
    from tailpipe_ai.providers import bedrock as parser

    def boom(*args, **kwargs):
        raise RuntimeError("parser bug")

    monkeypatch.setattr(parser, "parse_converse", boom)
    with caplog.at_level(logging.WARNING):
        response = client.converse(modelId=SONNET, messages=MESSAGES)
    assert response["usage"] == fake.CONVERSE_USAGE
    assert "usage_unreadable" in only_record(otel).flags  # still counted, flagged
    monkeypatch.setattr(parser, "model_kind", boom)  # describing the request fails: passed through untraced
    response = client.converse(modelId=SONNET, messages=MESSAGES)
    assert response["usage"] == fake.CONVERSE_USAGE
    assert len(otel.sink.records) == 1
    assert "parser bug" not in caplog.text
