"""aiobotocore (async) Bedrock Runtime clients: the real aiobotocore client, made with
``get_session().create_client(...)`` inside ``async with``, against the loopback fake Bedrock
(`tests/fakes/bedrock.py`, real AWS event-stream frames). Each operation, cache tokens, errors, a stalled
body read, early-closed and abandoned streams, regions, the instrumentor and `wrap_client` (alone, together,
undone) and the privacy canary. pytest-asyncio is not used: each test runs its coroutine with asyncio.run."""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import logging
from contextlib import asynccontextmanager

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.eventstream import AioEventStream
from aiobotocore.httpxsession import HttpxSession
from aiobotocore.response import AioHttpxStreamingBody, AioStreamingBody
from aiobotocore.session import get_session
from botocore.exceptions import ClientError, EventStreamError
from opentelemetry.trace import StatusCode

from tailpipe_ai import TailpipeAI
from tailpipe_ai.carbon import Usage, estimate
from tailpipe_ai.instrumentation import bedrock as instrumentation
from tailpipe_ai.instrumentation import bedrock_aio
from tailpipe_ai.instrumentation.bedrock import BedrockInstrumentor, wrap_client
from tailpipe_ai.semconv import attributes as sc
from tests import privacy
from tests.fakes import anthropic as fake_anthropic
from tests.fakes import bedrock as fake
from tests.fakes.server import FakeServer
from tests.instrumentation._shared import instrument_mode, only_record, only_span
from tests.instrumentation.test_bedrock import (  # noqa: F401  (_no_aws_environment: an autouse fixture)
    MESSAGES,
    SONNET,
    _no_aws_environment,
    assert_converse_stream,
    assert_converse_usage,
    forget,
)
from tests.instrumentation.test_bedrock_privacy import (
    CANARIES,
    PROMPT,
    SECRET,
    SYSTEM,
    TOKEN,
    TOOL,
    stack,  # noqa: F401  (a fixture)
)

LLAMA = "meta.llama3-8b-instruct-v1:0"
ANTHROPIC_BODY = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hi"}],
}


@pytest.fixture(scope="module")
def module_server():
    with FakeServer() as server:
        fake.install(server)
        yield server


@pytest.fixture
def server(module_server):
    module_server.requests.clear()
    return module_server


@pytest.fixture(params=["instrumentor", "wrap_client"])
def mode(request, otel):
    yield from instrument_mode(request.param, BedrockInstrumentor, wrap_client, otel)


@functools.cache
def session():
    """One aiobotocore session for the module: it loads the service models once (clients take ~2 ms)."""
    return get_session()


@asynccontextmanager
async def new_client(server, region="eu-west-1", service="bedrock-runtime", **config):
    options = {"retries": {"total_max_attempts": 1, "mode": "standard"}, **config}
    async with session().create_client(
        service,
        region_name=region,
        endpoint_url=server.url,
        aws_access_key_id="AKIAFAKEFAKEFAKE",
        aws_secret_access_key="fake-secret",
        config=AioConfig(**options),
    ) as client:
        yield client


def run(server, mode, calls, region="eu-west-1", **config):
    """asyncio.run `calls(client)` with a fresh aiobotocore client, instrumented by `mode`."""

    async def main():
        async with new_client(server, region, **config) as client:
            return await calls(mode(client))

    return asyncio.run(main())


def invoke(client, model, body, **kwargs):
    return client.invoke_model(modelId=model, body=json.dumps(body), contentType="application/json", **kwargs)


# ---------------------------------------------------------------------------------------------------------
# Converse and ConverseStream
# ---------------------------------------------------------------------------------------------------------


def test_converse(mode, server, otel):
    async def calls(client):
        return await client.converse(modelId=SONNET, messages=MESSAGES, inferenceConfig={"maxTokens": 64})

    response = run(server, mode, calls)
    assert response["output"]["message"]["content"][0]["text"] == "echo: hello bedrock"
    assert response["usage"] == fake.CONVERSE_USAGE  # the caller's response is untouched
    span = only_span(otel)
    assert span.name == f"chat {SONNET}"
    assert span.attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] == 64
    record = only_record(otel)
    assert_converse_usage(span, record)  # cache read and write tokens included
    assert record.streamed is False and record.status == "ok"


def test_converse_stream(mode, server, otel):
    async def calls(client):
        response = await client.converse_stream(modelId=SONNET, messages=MESSAGES)
        assert isinstance(response["stream"], AioEventStream)
        return [event async for event in response["stream"]]

    assert_converse_stream(run(server, mode, calls), otel)


def test_converse_stream_break_then_close(mode, server, otel):
    async def calls(client):
        stream = (await client.converse_stream(modelId=SONNET, messages=MESSAGES))["stream"]
        async for _ in stream:
            break
        assert stream.close() is None  # botocore's close() stays synchronous: no coroutine left unawaited
        stream.close()  # a second close ends nothing twice
        await stream.aclose()

    run(server, mode, calls)
    record = only_record(otel)
    assert "stream_incomplete" in record.flags and record.token_accuracy == "estimated"
    assert record.status == "ok"


def test_converse_stream_break_then_dropped(mode, server, otel):
    async def calls(client):
        response = await client.converse_stream(modelId=SONNET, messages=MESSAGES)
        async for _ in response["stream"]:
            break
        del response
        gc.collect()
        assert len(otel.sink.records) == 1  # ended on garbage collection, while the client is still open

    run(server, mode, calls)
    assert "stream_incomplete" in only_record(otel).flags


def test_converse_stream_error_event(mode, server, otel):
    async def calls(client):
        response = await client.converse_stream(modelId="fake-stream-error", messages=MESSAGES)
        with pytest.raises(EventStreamError):
            async for _ in response["stream"]:
                pass

    run(server, mode, calls)
    span = only_span(otel)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == "EventStreamError"


def test_throttling_error_propagates_unchanged(mode, server, otel):
    async def calls(client):
        async with new_client(server) as plain:
            with pytest.raises(ClientError) as untraced:
                await plain.converse(modelId="fake-throttle", messages=MESSAGES)
        forget(otel)  # under the instrumentor the reference call is traced too
        with pytest.raises(client.exceptions.ThrottlingException) as traced:  # the client's own class
            await client.converse(modelId="fake-throttle", messages=MESSAGES)
        return untraced.value, traced.value

    plain, ours = run(server, mode, calls)
    assert type(ours).__name__ == type(plain).__name__ == "ThrottlingException" and str(ours) == str(plain)
    assert ours.response["Error"] == plain.response["Error"]
    assert ours.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    span = only_span(otel)
    assert span.attributes[sc.ERROR_TYPE] == "ThrottlingException"
    assert span.status.status_code is StatusCode.ERROR
    assert (only_record(otel).status, only_record(otel).error_type) == ("error", "ThrottlingException")


# ---------------------------------------------------------------------------------------------------------
# InvokeModel: the async body read once, the caller's body byte for byte the same
# ---------------------------------------------------------------------------------------------------------


async def read_read(body):
    return await body.read()


async def read_parts(body):
    parts = []
    while part := await body.read(7):
        parts.append(part)
    assert len(parts) > 1
    return b"".join(parts)


async def read_async_for(body):
    return b"".join([chunk async for chunk in body])


async def read_iter_chunks(body):
    return b"".join([chunk async for chunk in body.iter_chunks(chunk_size=5)])


async def read_iter_lines(body):
    return b"\n".join([line async for line in body.iter_lines(chunk_size=3)])


async def read_into(body):
    buffer, out = bytearray(9), b""
    while n := await body.readinto(buffer):
        out += bytes(buffer[:n])
    return out


async def read_async_with(body):
    async with body as same:
        data = await same.read()
    assert same.tell() == len(data)
    return data


READERS = (read_read, read_parts, read_async_for, read_iter_chunks, read_iter_lines, read_into, read_async_with)


def test_invoke_model_body_is_byte_identical(mode, server, otel):
    """Every way of reading aiobotocore's body gives what it gives without tailpipe."""

    async def calls(client):
        async with new_client(server) as plain:
            expected = {r.__name__: await r((await invoke(plain, SONNET, ANTHROPIC_BODY))["body"]) for r in READERS}
        forget(otel)
        got = {}
        for reader in READERS:
            body = (await invoke(client, SONNET, ANTHROPIC_BODY))["body"]
            assert isinstance(body, AioStreamingBody)
            got[reader.__name__] = await reader(body)
        return expected, got

    expected, got = run(server, mode, calls)
    assert got == expected
    assert json.loads(expected["read_read"])["content"][0]["text"] == "echo: hi"
    e = fake_anthropic.EXPECTED  # the Anthropic body's usage, cache and thinking tokens included
    assert len(otel.sink.records) == len(READERS)
    record = otel.sink.records[0].validate()
    assert (record.input_tokens, record.output_tokens) == (e["input"], e["output"])
    assert (record.cache_read_tokens, record.cache_write_tokens, record.reasoning_tokens) == (
        e["cache_read"],
        e["cache_write"],
        e["reasoning"],
    )
    assert record.operation == sc.OPERATION_CHAT and record.token_accuracy == "exact"


def test_invoke_model_body_over_httpx(mode, server, otel):
    """aiobotocore's httpx backend has a body class of its own: the caller gets that class back."""

    async def calls(client):
        body = (await invoke(client, LLAMA, {"prompt": "abc"}))["body"]
        assert isinstance(body, AioHttpxStreamingBody)
        return b"".join([chunk async for chunk in body.iter_chunks(chunk_size=4)])

    data = run(server, mode, calls, http_session_cls=HttpxSession)
    assert json.loads(data)["generation"] == "echo: abc"
    record = only_record(otel)
    assert (record.input_tokens, record.output_tokens) == (12, 34)
    assert only_span(otel).attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)  # read from the body


@pytest.mark.parametrize(
    ("model", "body", "operation", "expected"),
    [
        (LLAMA, {"prompt": "p"}, "text_completion", (12, 34, None, ("stop",))),
        (
            "us.amazon.nova-pro-v1:0",
            {"messages": [{"role": "user", "content": [{"text": "p"}]}]},
            "chat",
            (540, 60, 500, ("stop",)),  # inputTokens 40 + 500 cache read
        ),
        ("mistral.mistral-7b-instruct-v0:2", {"prompt": "p"}, "chat", (17, 23, None, ("stop",))),  # headers only
    ],
)
def test_invoke_model_families(mode, server, otel, model, body, operation, expected):
    async def calls(client):
        return json.loads(await (await invoke(client, model, body))["body"].read())

    assert run(server, mode, calls)  # still readable by the caller
    a = only_span(otel).attributes
    inp, out, cache_read, reasons = expected
    assert a[sc.GEN_AI_OPERATION_NAME] == operation
    assert (a[sc.GEN_AI_USAGE_INPUT_TOKENS], a[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (inp, out)
    assert a.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS) == cache_read
    assert tuple(a[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == reasons


def test_invoke_model_large_body_left_unread(mode, server, otel, monkeypatch):
    monkeypatch.setattr(instrumentation, "MAX_BODY_BYTES", 10)

    async def calls(client):
        body = (await invoke(client, LLAMA, {"prompt": "p"}))["body"]
        assert type(body) is AioStreamingBody  # aiobotocore's own body, untouched
        return json.loads(await body.read())

    assert run(server, mode, calls)["generation"] == "echo: p"
    a = only_span(otel).attributes  # usage from the token-count headers alone
    assert (a[sc.GEN_AI_USAGE_INPUT_TOKENS], a[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (12, 34)
    assert sc.GEN_AI_RESPONSE_FINISH_REASONS not in a


def test_failed_body_read_is_replayed(mode, server, otel):
    """The body stalls after its first bytes and the client's read timeout breaks the read: the caller
    reads the same bytes and then the same error as without tailpipe."""

    async def reads(body):
        seen = [await body.read(5), await body.read(100)]
        with pytest.raises(Exception) as error:
            await body.read(100)
        body.close()  # the caller's close() still closes the connection
        return seen, type(error.value)

    async def calls(client):
        async with new_client(server, read_timeout=0.2) as plain:
            expected = await reads((await invoke(plain, "meta.fake-stalled-body", {}))["body"])
        forget(otel)
        ours = await reads((await invoke(client, "meta.fake-stalled-body", {}))["body"])
        body = (await invoke(client, "meta.fake-stalled-body", {}))["body"]
        with pytest.raises(expected[1]):
            await body.read()  # a read-all fails as a whole
        await body.aclose()
        return expected, ours

    expected, ours = run(server, mode, calls, read_timeout=0.2)
    assert ours == expected
    assert b"".join(ours[0]) == fake.STALLED_PART and ours[1].__name__ == "AioReadTimeoutError"
    first, _ = otel.sink.records
    assert "usage_unreadable" in first.flags and first.status == "ok"
    assert (first.input_tokens, first.output_tokens) == (17, 23)  # the token-count headers still count


# ---------------------------------------------------------------------------------------------------------
# InvokeModelWithResponseStream
# ---------------------------------------------------------------------------------------------------------


def test_invoke_stream_anthropic(mode, server, otel):
    async def calls(client):
        response = await client.invoke_model_with_response_stream(modelId=SONNET, body=json.dumps(ANTHROPIC_BODY))
        return [json.loads(e["chunk"]["bytes"])["type"] async for e in response["body"]]

    kinds = run(server, mode, calls)
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


def test_invoke_stream_metrics_and_early_close(mode, server, otel):
    async def calls(client):
        response = await client.invoke_model_with_response_stream(modelId=LLAMA, body=json.dumps({"prompt": "abc"}))
        assert len([e async for e in response["body"]]) == 3
        response = await client.invoke_model_with_response_stream(modelId=LLAMA, body=json.dumps({"prompt": "abc"}))
        async for _ in response["body"]:
            break
        response["body"].close()

    run(server, mode, calls)
    full, closed = otel.sink.records
    assert (full.input_tokens, full.output_tokens) == (11, 22)  # amazon-bedrock-invocationMetrics
    assert "stream_incomplete" in closed.flags and closed.token_accuracy == "estimated"


# ---------------------------------------------------------------------------------------------------------
# media models, regions
# ---------------------------------------------------------------------------------------------------------


def test_image_and_video_models(mode, server, otel):
    async def calls(client):
        image = {"taskType": "TEXT_IMAGE", "imageGenerationConfig": {"numberOfImages": 3, "width": 1280, "height": 720}}
        assert (
            len(json.loads(await (await invoke(client, "amazon.nova-canvas-v1:0", image))["body"].read())["images"])
            == 3
        )
        response = await client.start_async_invoke(
            modelId="amazon.nova-reel-v1:1",
            modelInput={
                "taskType": "TEXT_VIDEO",
                "videoGenerationConfig": {"durationSeconds": 6, "dimension": "1280x720"},
            },
            outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://bucket/videos"}},
        )
        assert response["invocationArn"] == fake.INVOCATION_ARN

    run(server, mode, calls)
    image, video = otel.sink.records
    assert (image.operation, image.images, image.image_size) == (sc.OPERATION_IMAGE_GENERATION, 3, "1280x720")
    assert (video.operation, video.video_seconds, video.video_resolution) == (
        sc.OPERATION_VIDEO_GENERATION,
        6.0,
        "1280x720",
    )
    assert image.energy_wh > 0 and video.energy_wh > 0


def test_region_gives_its_own_carbon(mode, server, otel):
    """The same call from us-east-1 and eu-north-1: each record carries the engine's estimate for its region."""

    async def calls(client):
        await client.converse(modelId=SONNET, messages=MESSAGES)

    for region in ("us-east-1", "eu-north-1"):
        run(server, mode, calls, region=region)
    e = fake.CONVERSE_EXPECTED
    usage = Usage(
        model=SONNET,
        provider=sc.PROVIDER_AWS_BEDROCK,
        input_tokens=e["input"],
        output_tokens=e["output"],
        cache_read_tokens=e["cache_read"],
        cache_write_tokens=e["cache_write"],
    )
    east, north = otel.sink.records
    for record, region in ((east, "aws:us-east-1"), (north, "aws:eu-north-1")):
        expected = estimate(usage, region=region)
        assert record.region == region
        assert record.energy_wh == pytest.approx(expected.energy_wh)
        assert record.carbon_gco2e == pytest.approx(expected.carbon_gco2e)
    assert east.carbon_gco2e != pytest.approx(north.carbon_gco2e)


# ---------------------------------------------------------------------------------------------------------
# the instrumentor and wrap_client: one instance, both at once, undone
# ---------------------------------------------------------------------------------------------------------


def test_wrap_client_instruments_that_instance_only(server, otel):
    async def main():
        async with new_client(server) as client, new_client(server) as other:
            assert wrap_client(client, otel.telemetry) is client
            wrapper = vars(client)["_make_api_call"]
            assert wrap_client(client, otel.telemetry) is client and vars(client)["_make_api_call"] is wrapper
            await client.converse(modelId=SONNET, messages=MESSAGES)
            await other.converse(modelId=SONNET, messages=MESSAGES)

    asyncio.run(main())
    assert only_record(otel).region == "aws:eu-west-1"


def test_tailpipe_wrap_takes_an_aiobotocore_client(server, otel):
    tailpipe = TailpipeAI(sink=otel.sink, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)

    async def main():
        async with new_client(server) as client, new_client(server) as other:
            assert tailpipe.wrap(client) is client
            assert tailpipe.wrap(client) is client  # idempotent
            await client.converse(modelId=SONNET, messages=MESSAGES)
            await other.converse(modelId=SONNET, messages=MESSAGES)

    asyncio.run(main())
    record = only_record(otel)
    assert record.integration == "sdk" and record.region == "aws:eu-west-1"


def test_wrap_client_of_another_service_is_a_no_op(server, otel, caplog):
    async def main():
        async with new_client(server, service="s3") as s3:
            with caplog.at_level(logging.WARNING, logger="tailpipe_ai"):
                assert wrap_client(s3, otel.telemetry) is s3
            assert "_make_api_call" not in vars(s3)

    asyncio.run(main())
    assert "bedrock-runtime" in caplog.text


def test_both_at_once_count_once_and_uninstrument_stops(server, otel):
    from aiobotocore.client import AioBaseClient
    from botocore.client import BaseClient

    originals = vars(AioBaseClient)["_make_api_call"], vars(BaseClient)["_make_api_call"]

    async def main():
        async with new_client(server) as client, new_client(server) as wrapped:
            wrap_client(wrapped, otel.telemetry)
            inst = BedrockInstrumentor()
            inst.instrument(telemetry=otel.telemetry)
            try:
                await wrapped.converse(modelId=SONNET, messages=MESSAGES)  # instance and class wrapper: one call
                assert len(otel.sink.records) == 1
                await client.converse(modelId=SONNET, messages=MESSAGES)  # made before instrument(): traced
                assert len(otel.sink.records) == 2
            finally:
                inst.uninstrument()
            assert (vars(AioBaseClient)["_make_api_call"], vars(BaseClient)["_make_api_call"]) == originals
            await client.converse(modelId=SONNET, messages=MESSAGES)
            async with new_client(server) as fresh:
                await fresh.converse(modelId=SONNET, messages=MESSAGES)

    asyncio.run(main())
    assert len(otel.sink.records) == 2 and len(otel.spans.get_finished_spans()) == 2


def test_concurrent_calls_are_each_counted(mode, server, otel):
    """asyncio.gather runs calls in tasks of their own: the counted-once guard does not hide siblings."""

    async def calls(client):
        return await asyncio.gather(*(client.converse(modelId=SONNET, messages=MESSAGES) for _ in range(4)))

    assert len(run(server, mode, calls)) == 4
    spans = otel.spans.get_finished_spans()
    assert len(spans) == 4 and len({s.context.span_id for s in spans}) == 4
    assert all(r.input_tokens == fake.CONVERSE_EXPECTED["input"] for r in otel.sink.records)


def test_non_model_operations_are_not_traced(mode, server, otel):
    server.route("GET", "/async-invoke", lambda req: fake.Response(body={"asyncInvokeSummaries": []}))

    async def calls(client):
        return await client.list_async_invokes()

    assert run(server, mode, calls)["asyncInvokeSummaries"] == []
    assert otel.spans.get_finished_spans() == ()


def test_our_failures_never_reach_the_caller(mode, server, otel, monkeypatch):
    from tailpipe_ai.providers import bedrock as parser

    def boom(*args, **kwargs):
        raise RuntimeError("parser bug")

    monkeypatch.setattr(parser, "parse_converse", boom)
    monkeypatch.setattr(bedrock_aio, "_replacement_class", boom)  # the InvokeModel body is left as it is

    async def calls(client):
        response = await client.converse(modelId=SONNET, messages=MESSAGES)
        body = (await invoke(client, LLAMA, {"prompt": "p"}))["body"]
        assert type(body) is AioStreamingBody
        return response, json.loads(await body.read())

    response, body = run(server, mode, calls)
    assert response["usage"] == fake.CONVERSE_USAGE and body["generation"] == "echo: p"
    converse, invoke_model = otel.sink.records
    assert "usage_unreadable" in converse.flags  # still counted, flagged
    assert (invoke_model.input_tokens, invoke_model.output_tokens) == (12, 34)  # from the headers


# ---------------------------------------------------------------------------------------------------------
# privacy: canaries sent through every async call kind never leave
# ---------------------------------------------------------------------------------------------------------


async def every_call_kind(client):
    tool_config = {
        "tools": [{"toolSpec": {"name": "lookup", "description": TOOL, "inputSchema": {"json": {"type": "object"}}}}]
    }
    messages = [{"role": "user", "content": [{"text": PROMPT}]}]
    await client.converse(modelId=SONNET, messages=messages, system=[{"text": SYSTEM}], toolConfig=tool_config)
    async for _ in (await client.converse_stream(modelId=SONNET, messages=messages, system=[{"text": SYSTEM}]))[
        "stream"
    ]:
        pass
    stream = (await client.converse_stream(modelId=SONNET, messages=messages))["stream"]
    async for _ in stream:
        break  # abandoned early
    stream.close()
    body = {**ANTHROPIC_BODY, "system": SYSTEM, "messages": [{"role": "user", "content": PROMPT}]}
    assert PROMPT in (await (await invoke(client, SONNET, body))["body"].read()).decode()
    async for event in (await client.invoke_model_with_response_stream(modelId=SONNET, body=json.dumps(body)))["body"]:
        assert event["chunk"]["bytes"]
    llama = {"prompt": f"<<SYS>>{SYSTEM}<</SYS>> {PROMPT}"}
    assert fake.RESPONSE_CANARY in (await (await invoke(client, LLAMA, llama))["body"].read()).decode()
    nova = await client.invoke_model_with_response_stream(modelId="us.amazon.nova-lite-v1:0", body=json.dumps(llama))
    async for _ in nova["body"]:
        pass
    image = {"taskType": "TEXT_IMAGE", "textToImageParams": {"text": PROMPT}, "imageGenerationConfig": {}}
    await invoke(client, "amazon.nova-canvas-v1:0", image)
    await client.start_async_invoke(
        modelId="amazon.nova-reel-v1:1",
        modelInput={"taskType": "TEXT_VIDEO", "textToVideoParams": {"text": PROMPT}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://bucket/out"}},
    )
    with pytest.raises(ClientError) as err:
        await client.converse(modelId="fake-invalid", messages=messages)
    assert fake.RESPONSE_CANARY in str(err.value)  # the error the caller sees carries it; we must not


@pytest.mark.parametrize("how", ["wrap_client", "instrumentor"])
def test_no_canary_leaves_through_any_channel(how, stack, caplog, capfd):  # noqa: F811
    tailpipe, server, spans, metrics, lake = stack
    caplog.set_level(logging.DEBUG)

    async def main():
        async with session().create_client(
            "bedrock-runtime",
            region_name="eu-central-1",
            endpoint_url=server.url,
            aws_access_key_id="AKIAFAKEFAKEFAKE",
            aws_secret_access_key=SECRET,
            aws_session_token=TOKEN,
            config=AioConfig(retries={"total_max_attempts": 1, "mode": "standard"}),
        ) as client:
            await every_call_kind(wrap_client(client, tailpipe.telemetry) if how == "wrap_client" else client)
            gc.collect()

    if how == "wrap_client":
        asyncio.run(main())
    else:
        inst = BedrockInstrumentor()
        inst.instrument(telemetry=tailpipe.telemetry)
        try:
            asyncio.run(main())
        finally:
            inst.uninstrument()
    assert tailpipe.flush(10)

    ours = [s for s in spans.get_finished_spans() if s.instrumentation_scope.name == "tailpipe_ai"]
    assert len(ours) == 10, [s.name for s in ours]
    written = privacy.lake_bytes(lake)
    assert written.count(b"\n") == 10, "every call wrote its record"
    logs = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("tailpipe"))
    found = privacy.channels(spans=spans.get_finished_spans(), metrics=metrics, lake=written, logs=logs, capfd=capfd)
    privacy.assert_no_canary(found, CANARIES)
