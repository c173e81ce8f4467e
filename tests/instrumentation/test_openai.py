"""OpenAI instrumentation against the real `openai` SDK pointed at the loopback fake (tests/fakes/openai.py).

Most tests run twice: through `OpenAIInstrumentor` (class patching) and through `wrap_client` (one
client instance). pytest-asyncio is not installed: async tests use `asyncio.run`.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import ssl

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("wrapt")

from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from tailpipe_ai.carbon import Usage, estimate  # noqa: E402
from tailpipe_ai.exporter.sink import MemorySink  # noqa: E402
from tailpipe_ai.instrumentation import openai as instr  # noqa: E402
from tailpipe_ai.instrumentation._telemetry import Telemetry  # noqa: E402
from tailpipe_ai.instrumentation.openai import OpenAIInstrumentor, wrap_client  # noqa: E402
from tests.fakes import openai as fake  # noqa: E402

API_KEY = "sk-test-key"
USER = [{"role": "user", "content": "hello"}]
_SSL = ssl.create_default_context()  # built once: each client would otherwise load the CA bundle (~80 ms)


def new_client(server, cls=None, **kwargs):
    """A real SDK client on the fake server (no retries, so error tests are fast)."""
    cls = cls or openai.OpenAI
    is_async = issubclass(cls, openai.AsyncOpenAI)
    http = (openai.DefaultAsyncHttpxClient if is_async else openai.DefaultHttpxClient)(verify=_SSL)
    kwargs.setdefault("api_key", API_KEY)
    if "azure_endpoint" not in kwargs:
        kwargs.setdefault("base_url", f"{server.url}/v1")
    return cls(http_client=http, max_retries=0, **kwargs)


@pytest.fixture(scope="module")
def _module_server():
    """One fake server for the module: stopping a FakeServer takes up to its 0.5 s poll interval."""
    from tests.fakes.server import FakeServer

    with FakeServer() as server:
        server._httpd.handle_error = lambda *args: None  # early-closed streams reset connections: expected
        server._httpd.RequestHandlerClass.disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls
        fake.install(server)
        yield server


@pytest.fixture
def server(_module_server):
    _module_server.requests.clear()
    instr._REJECTS_STREAM_OPTIONS.clear()
    yield _module_server
    instr._REJECTS_STREAM_OPTIONS.clear()


@pytest.fixture
def instrumentor(otel):
    OpenAIInstrumentor().instrument(telemetry=otel.telemetry)
    yield
    OpenAIInstrumentor().uninstrument()


@pytest.fixture(params=["instrumentor", "wrap_client"])
def instrument(request, otel):
    """A function that makes a client traced, by the instrumentor or by wrap_client."""
    if request.param == "instrumentor":
        OpenAIInstrumentor().instrument(telemetry=otel.telemetry)
        yield lambda client: client
        OpenAIInstrumentor().uninstrument()
    else:
        yield lambda client: wrap_client(client, otel.telemetry)


@pytest.fixture
def client(server, instrument):
    return instrument(new_client(server))


@pytest.fixture
def aclient(server, instrument):
    return instrument(new_client(server, openai.AsyncOpenAI))


def only_span(otel):
    spans = otel.spans.get_finished_spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def only_record(otel):
    assert len(otel.sink.records) == 1
    record = otel.sink.records[0]
    record.encode()  # valid against the schema
    return record


def expected_estimate(model, **usage):
    return estimate(Usage(model=model, provider=usage.pop("provider", "openai"), **usage))


def assert_chat_usage(otel, model="gpt-4o-mini", *, stream=False):
    span = only_span(otel)
    a = span.attributes
    assert span.name == f"chat {model}"
    assert span.kind is SpanKind.CLIENT
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == model
    assert a["gen_ai.response.model"] == fake.response_model(model)
    assert a["gen_ai.response.id"] == "chatcmpl-fake1"
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)
    assert a["gen_ai.usage.input_tokens"] == 1200
    assert a["gen_ai.usage.output_tokens"] == 300
    assert a["gen_ai.usage.cache_read.input_tokens"] == 1024
    assert a["gen_ai.usage.reasoning.output_tokens"] == 128
    assert a["server.address"] == "127.0.0.1"
    assert isinstance(a["server.port"], int)
    assert a["tailpipe.token_accuracy"] == "exact"
    assert a.get("gen_ai.request.stream", False) is stream
    assert ("gen_ai.response.time_to_first_chunk" in a) is stream
    est = expected_estimate(
        fake.response_model(model), input_tokens=1200, output_tokens=300, cache_read_tokens=1024, reasoning_tokens=128
    )
    assert a["tailpipe.energy.wh"] == pytest.approx(est.energy_wh)
    assert a["tailpipe.carbon.gco2e"] == pytest.approx(est.carbon_gco2e)
    record = only_record(otel)
    assert (record.provider, record.operation, record.request_model) == ("openai", "chat", model)
    assert (record.input_tokens, record.output_tokens, record.cache_read_tokens) == (1200, 300, 1024)
    assert record.reasoning_tokens == 128
    assert record.streamed is stream
    assert record.status == "ok"
    assert record.energy_wh == pytest.approx(est.energy_wh)
    assert record.carbon_gco2e == pytest.approx(est.carbon_gco2e)
    return span, record


# ------------------------------------------------------------------------------------------ chat


def test_chat_sync(client, otel):
    result = client.chat.completions.create(
        model="gpt-4o-mini", messages=USER, temperature=0.2, max_completion_tokens=64, top_p=0.9, seed=7, n=1
    )
    assert result.choices[0].message.content == "echo: hello"
    span, _ = assert_chat_usage(otel)
    a = span.attributes
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.request.max_tokens"] == 64
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.seed"] == 7
    assert "gen_ai.request.choice.count" not in a
    assert a["gen_ai.output.type"] == "text"

    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in otel.metric_points("gen_ai.client.token.usage")}
    assert tokens == {"input": 1200, "output": 300}
    (duration,) = otel.metric_points("gen_ai.client.operation.duration")
    assert duration.count == 1 and duration.attributes["gen_ai.response.model"] == fake.response_model("gpt-4o-mini")
    (energy,) = otel.metric_points("tailpipe.energy")
    assert energy.value == pytest.approx(a["tailpipe.energy.wh"])
    (carbon,) = otel.metric_points("tailpipe.carbon")
    assert carbon.value == pytest.approx(a["tailpipe.carbon.gco2e"])


def test_chat_async(aclient, otel):
    async def main():
        return await aclient.chat.completions.create(model="gpt-4o-mini", messages=USER)

    assert asyncio.run(main()).usage.prompt_tokens == 1200
    assert_chat_usage(otel)


def test_chat_parse_json_output(client, otel):
    class Answer(BaseModel):
        answer: str

    result = client.chat.completions.parse(model="gpt-4o-mini", messages=USER, response_format=Answer)
    assert result.choices[0].message.parsed == Answer(answer="echo: hello")
    span, _ = assert_chat_usage(otel)
    assert span.attributes["gen_ai.output.type"] == "json"


# ------------------------------------------------------------------------------------------- streams


def test_stream_injects_include_usage_and_hides_the_usage_chunk(client, otel, server):
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    seen = [(chunk.choices[0].delta.content, chunk.choices[0].finish_reason) for chunk in stream]  # [0] on every chunk
    assert seen == [("", None), ("ech", None), ("o: ", None), ("hello", None), (None, "stop")]
    assert server.requests[-1].body["stream_options"] == {"include_usage": True}
    assert_chat_usage(otel, stream=True)


def test_stream_keeps_the_callers_other_stream_options(client, otel, server):
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=USER, stream=True, stream_options={"include_obfuscation": False}
    )
    assert all(chunk.choices for chunk in stream)
    assert server.requests[-1].body["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert_chat_usage(otel, stream=True)


def test_stream_with_callers_include_usage_is_left_alone(client, otel, server):
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 1200  # the caller asked for it: visible
    assert server.requests[-1].body["stream_options"] == {"include_usage": True}
    assert_chat_usage(otel, stream=True)


def test_stream_with_include_usage_false_is_not_injected_and_flagged(client, otel, server):
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=USER, stream=True, stream_options={"include_usage": False}
        )
    )
    assert len(chunks) == 5
    assert server.requests[-1].body["stream_options"] == {"include_usage": False}
    a = only_span(otel).attributes
    assert a["tailpipe.token_accuracy"] == "estimated"
    assert "usage_missing" in a["tailpipe.flags"]


def test_stream_injection_can_be_turned_off(server, otel):
    client = wrap_client(new_client(server), otel.telemetry, inject_stream_usage=False)
    assert len(list(client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True))) == 5
    assert "stream_options" not in server.requests[-1].body
    assert only_span(otel).attributes["tailpipe.token_accuracy"] == "estimated"


def test_async_stream_injects_and_hides(aclient, otel, server):
    async def main():
        stream = await aclient.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
        return [chunk.choices[0].finish_reason async for chunk in stream]

    assert asyncio.run(main()) == [None, None, None, None, "stop"]
    assert server.requests[-1].body["stream_options"] == {"include_usage": True}
    assert_chat_usage(otel, stream=True)


def test_endpoint_rejecting_stream_options_gets_the_request_again_without(client, otel, server):
    def call():
        return list(client.chat.completions.create(model="fake-rejects-stream-options", messages=USER, stream=True))

    assert len(call()) == 5  # the caller never sees our 400
    assert [("stream_options" in r.body) for r in server.requests] == [True, False]
    a = only_span(otel).attributes
    assert a["tailpipe.token_accuracy"] == "estimated" and "error.type" not in a
    assert len(call()) == 5
    assert [("stream_options" in r.body) for r in server.requests] == [True, False, False]  # remembered


def test_stream_early_break_and_gc_ends_the_span(client, otel):
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    for _ in stream:
        break
    del stream
    gc.collect()
    a = only_span(otel).attributes
    assert a["tailpipe.token_accuracy"] == "estimated"
    assert "stream_incomplete" in a["tailpipe.flags"]
    assert only_record(otel).token_accuracy == "estimated"


def test_stream_close_ends_the_span_once(client, otel):
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    next(stream)
    stream.close()
    assert len(otel.spans.get_finished_spans()) == 1  # at close, not at GC
    stream.close()
    del stream
    assert "stream_incomplete" in only_span(otel).attributes["tailpipe.flags"]
    assert len(otel.sink.records) == 1


def test_async_stream_early_close(aclient, otel):
    async def main():
        stream = await aclient.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
        await stream.__anext__()
        await stream.close()

    asyncio.run(main())
    assert "stream_incomplete" in only_span(otel).attributes["tailpipe.flags"]


def test_stream_as_context_manager(client, otel):
    with client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True) as stream:
        assert len(list(stream)) == 5
    assert_chat_usage(otel, stream=True)


def test_stream_context_manager_exit_early(client, otel):
    with client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True) as stream:
        next(stream)
    assert len(otel.spans.get_finished_spans()) == 1
    assert "stream_incomplete" in only_span(otel).attributes["tailpipe.flags"]


def test_chat_stream_helper_sees_what_it_would_have_seen(client, otel, server):
    with client.chat.completions.stream(model="gpt-4o-mini", messages=USER) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "content.done" in events
    assert final.choices[0].message.content == "echo: hello"
    assert final.usage is None  # exactly as without instrumentation: the caller did not ask for usage
    assert server.requests[-1].body["stream_options"] == {"include_usage": True}
    assert_chat_usage(otel, stream=True)


def test_chat_stream_helper_early_exit_ends_the_span_at_exit(client, otel):
    with client.chat.completions.stream(model="gpt-4o-mini", messages=USER) as stream:
        next(iter(stream))
    assert len(otel.spans.get_finished_spans()) == 1  # the close hook, not the garbage collector
    assert "stream_incomplete" in otel.spans.get_finished_spans()[0].attributes["tailpipe.flags"]


def test_async_chat_stream_helper(aclient, otel):
    async def main():
        async with aclient.chat.completions.stream(model="gpt-4o-mini", messages=USER) as stream:
            async for _ in stream:
                pass

    asyncio.run(main())
    assert_chat_usage(otel, stream=True)


def test_slow_stream_time_to_first_chunk(client, otel):
    assert len(list(client.chat.completions.create(model="fake-slow", messages=USER, stream=True))) == 5
    a = only_span(otel).attributes
    assert a["gen_ai.response.time_to_first_chunk"] >= 0.04
    assert only_record(otel).ttft_ms >= 40


def test_error_inside_stream(client, otel):
    stream = client.chat.completions.create(model="fake-stream-error", messages=USER, stream=True)
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
    span = only_span(otel)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "APIError"


# --------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("model", "exc"), [("fake-error-429", "RateLimitError"), ("fake-error-500", "InternalServerError")]
)
def test_error_response_propagates_unchanged(client, otel, model, exc):
    with pytest.raises(getattr(openai, exc)) as info:
        client.chat.completions.create(model=model, messages=USER)
    assert info.value.status_code == int(model[-3:])
    span = only_span(otel)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == exc
    record = only_record(otel)
    assert (record.status, record.error_type) == ("error", exc)
    (duration,) = otel.metric_points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == exc


def test_async_error(aclient, otel):
    async def main():
        await aclient.chat.completions.create(model="fake-error-429", messages=USER, stream=True)

    with pytest.raises(openai.RateLimitError):
        asyncio.run(main())
    assert only_span(otel).attributes["error.type"] == "RateLimitError"


# --------------------------------------------------------------------------------------- bad input


def test_malformed_usage_leaves_the_result_alone_and_flags(client, otel):
    result = client.chat.completions.create(model="fake-malformed", messages=USER)
    assert result.usage.prompt_tokens == "lots"  # what the SDK gave the caller, untouched
    a = only_span(otel).attributes
    assert "gen_ai.usage.input_tokens" not in a
    assert a["tailpipe.token_accuracy"] == "estimated"
    assert "usage_missing" in a["tailpipe.flags"]


def test_malformed_usage_in_a_stream(client, otel):
    assert len(list(client.chat.completions.create(model="fake-malformed", messages=USER, stream=True))) == 5
    assert only_span(otel).attributes["tailpipe.token_accuracy"] == "estimated"


def test_missing_usage_is_flagged(client, otel):
    assert client.chat.completions.create(model="fake-no-usage", messages=USER).usage is None
    a = only_span(otel).attributes
    assert a["tailpipe.token_accuracy"] == "estimated" and "usage_missing" in a["tailpipe.flags"]


def test_a_failure_inside_our_code_does_not_reach_the_caller(client, otel, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("parser broke")

    monkeypatch.setattr(instr.openai_parser, "parse_response", boom)
    assert client.chat.completions.create(model="gpt-4o-mini", messages=USER).choices[0].message.content
    assert "usage_unreadable" in only_span(otel).attributes["tailpipe.flags"]


def test_a_failing_quiet_check_mid_stream_does_not_reach_the_caller(client, otel, monkeypatch):
    calls = []

    def boom(chunk):
        calls.append(chunk)
        raise RuntimeError("quiet check broke")

    monkeypatch.setattr(instr.openai_parser, "is_quiet_chunk", boom)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    seen = [(chunk.choices[0].delta.content, chunk.choices[0].finish_reason) for chunk in stream]
    assert seen == [("", None), ("ech", None), ("o: ", None), ("hello", None), (None, "stop")]
    assert calls  # the failing check ran, and every chunk went through the full parse instead
    assert_chat_usage(otel, stream=True)


# ------------------------------------------------------------------------------------------ responses


def assert_responses_usage(otel, model="gpt-4.1", *, stream=False):
    span = only_span(otel)
    a = span.attributes
    assert span.name == f"chat {model}"
    assert a["gen_ai.response.id"] == "resp_fake1"
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("completed",)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (2000, 500)
    assert a["gen_ai.usage.cache_read.input_tokens"] == 1536
    assert a["gen_ai.usage.cache_creation.input_tokens"] == 0
    assert a["gen_ai.usage.reasoning.output_tokens"] == 256
    assert a.get("gen_ai.request.stream", False) is stream
    est = expected_estimate(
        fake.response_model(model),
        input_tokens=2000,
        output_tokens=500,
        cache_read_tokens=1536,
        cache_write_tokens=0,
        reasoning_tokens=256,
    )
    assert only_record(otel).energy_wh == pytest.approx(est.energy_wh)
    return a


def test_responses_create(client, otel):
    result = client.responses.create(model="gpt-4.1", input="hello", max_output_tokens=100)
    assert result.output_text == "echo: hello"
    assert assert_responses_usage(otel)["gen_ai.request.max_tokens"] == 100


def test_responses_stream_needs_no_injection(client, otel, server):
    events = [e.type for e in client.responses.create(model="gpt-4.1", input="hello", stream=True)]
    assert events[0] == "response.created" and events[-1] == "response.completed"
    assert "stream_options" not in server.requests[-1].body
    assert_responses_usage(otel, stream=True)


def test_responses_stream_helper(client, otel):
    with client.responses.stream(model="gpt-4.1", input="hello") as stream:
        for _ in stream:
            pass
        assert stream.get_final_response().usage.output_tokens == 500
    assert_responses_usage(otel, stream=True)


def test_responses_stream_helper_early_exit(client, otel):
    with client.responses.stream(model="gpt-4.1", input="hello") as stream:
        next(iter(stream))
    assert len(otel.spans.get_finished_spans()) == 1
    assert only_span(otel).attributes["gen_ai.response.id"] == "resp_fake1"  # from response.created


def test_responses_parse(client, otel):
    class Answer(BaseModel):
        answer: str

    result = client.responses.parse(model="gpt-4.1", input="hello", text_format=Answer)
    assert result.output_parsed == Answer(answer="echo: hello")
    assert assert_responses_usage(otel)["gen_ai.output.type"] == "json"


def test_async_responses_stream(aclient, otel):
    async def main():
        stream = await aclient.responses.create(model="gpt-4.1", input="hello", stream=True)
        return [e.type async for e in stream]

    assert asyncio.run(main())[-1] == "response.completed"
    assert_responses_usage(otel, stream=True)


# ----------------------------------------------------------------------------- completions, embeddings


def test_legacy_completions_stream(client, otel, server):
    chunks = list(client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hello", stream=True))
    assert all(chunk.choices for chunk in chunks)
    assert server.requests[-1].body["stream_options"] == {"include_usage": True}
    span = only_span(otel)
    assert span.name == "text_completion gpt-3.5-turbo-instruct"
    assert (span.attributes["gen_ai.usage.input_tokens"], span.attributes["gen_ai.usage.output_tokens"]) == (20, 40)


def test_embeddings(client, otel):
    result = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"], dimensions=3)
    assert result.data[1].embedding == fake.EMBEDDING
    span = only_span(otel)
    a = span.attributes
    assert span.name == "embeddings text-embedding-3-small"
    assert a["gen_ai.usage.input_tokens"] == 8 and "gen_ai.usage.output_tokens" not in a
    assert a["gen_ai.embeddings.dimension.count"] == 3
    record = only_record(otel)
    assert (record.operation, record.output_type) == ("embeddings", "embedding")
    est = expected_estimate(fake.response_model("text-embedding-3-small"), input_tokens=8)
    assert record.energy_wh == pytest.approx(est.energy_wh)


def test_async_embeddings(aclient, otel):
    async def main():
        return await aclient.embeddings.create(model="text-embedding-3-small", input="a", encoding_format="float")

    assert asyncio.run(main()).data[0].embedding == fake.EMBEDDING
    assert tuple(only_span(otel).attributes["gen_ai.request.encoding_formats"]) == ("float",)


# ------------------------------------------------------------------------------------------- images


def test_images_dalle_counts_images_with_requested_quality(client, otel):
    result = client.images.generate(model="dall-e-3", prompt="a cat", n=2, quality="hd")
    assert len(result.data) == 2
    span = only_span(otel)
    assert span.name == "image_generation dall-e-3"
    a = span.attributes
    assert (a["tailpipe.images.count"], a["tailpipe.image.size"], a["tailpipe.image.quality"]) == (2, "1024x1024", "hd")
    record = only_record(otel)
    assert (record.images, record.output_type, record.token_accuracy) == (2, "image", "exact")
    est = expected_estimate("dall-e-3", images=2, image_size="1024x1024", image_quality="hd")
    assert record.energy_wh == pytest.approx(est.energy_wh)


def test_images_gpt_image_reports_tokens_size_and_quality(client, otel):
    client.images.generate(model="gpt-image-1", prompt="a cat", size="1536x1024", quality="medium")
    record = only_record(otel)
    assert (record.images, record.image_size, record.image_quality) == (1, "1536x1024", "medium")
    assert (record.input_tokens, record.output_tokens) == (50, 4160)


def test_images_stream(client, otel):
    events = [
        e.type for e in client.images.generate(model="gpt-image-1", prompt="a cat", stream=True, partial_images=1)
    ]
    assert events == ["image_generation.partial_image", "image_generation.completed"]
    record = only_record(otel)
    assert (record.images, record.streamed, record.output_tokens) == (1, True, 4160)


# ---------------------------------------------------------------------------------- videos

# OpenAI announced the Sora API's shutdown (2026-09-24); the SDK still ships it and warns on every call.
_sora_warning = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")


def _video_wh(seconds, resolution):
    """The seed's per-second video figure x PSE x TL x PUE, read from the bundled tables (hand formula)."""
    from tailpipe_ai.carbon.datasets import load

    ds = load()
    f = ds.factors
    return seconds * ds.video[resolution].wh * f["pse"].value * f["transmission"].value * f["pue"].value


@_sora_warning
def test_video_create_counts_seconds_at_the_returned_size(client, otel, server):
    video = client.videos.create(model="sora-2", prompt="a cat", seconds="8", size="1280x720")
    assert (video.status, video.seconds) == ("queued", "8")
    assert server.requests[-1].path.endswith("/videos")
    span = only_span(otel)
    assert span.name == "video_generation sora-2"
    a = span.attributes
    assert (a["gen_ai.operation.name"], a["gen_ai.output.type"]) == ("video_generation", "video")
    assert (a["tailpipe.video.seconds"], a["tailpipe.video.resolution"]) == (8.0, "1280x720")
    record = only_record(otel)
    assert (record.video_seconds, record.output_type, record.response_model) == (8.0, "video", "sora-2")
    assert record.energy_wh == pytest.approx(_video_wh(8, "720p"))


@_sora_warning
def test_video_defaults_remix_and_extension(client, otel):
    client.videos.create(prompt="a cat")  # API defaults: sora-2, 4 s, 720x1280
    client.videos.remix("video_fake", prompt="a dog")
    client.videos.extend(video=b"\x00fake mp4", prompt="more", seconds="4")
    records = otel.sink.records
    assert [r.video_seconds for r in records] == [4.0, 4.0, 4.0]  # extend: the 4 s added, not the 12 s clip
    assert all(r.video_resolution == "720x1280" for r in records)


@_sora_warning
def test_video_failed_job_generated_nothing(client, otel):
    video = client.videos.create(model="fake-video-failed", prompt="a cat")
    assert video.status == "failed"
    record = only_record(otel)
    assert (record.video_seconds, record.energy_wh) == (0.0, 0.0)


@_sora_warning
def test_video_async_create(aclient, otel):
    asyncio.run(aclient.videos.create(model="sora-2-pro", prompt="a cat", seconds="12", size="1792x1024"))
    record = only_record(otel)
    assert (record.video_seconds, record.video_resolution) == (12.0, "1792x1024")
    assert record.energy_wh == pytest.approx(_video_wh(12, "1080p"))


@_sora_warning
def test_video_error_is_recorded_and_raised(client, otel):
    with pytest.raises(openai.InternalServerError):
        client.videos.create(model="fake-error-500", prompt="a cat")
    record = only_record(otel)
    assert (record.status, record.error_type) == ("error", "InternalServerError")


# ---------------------------------------------------------------------------------- raw responses


def test_with_raw_response_counts_once_with_usage(client, otel, server):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER)
    assert raw.headers["x-request-id"] == "req_fake"
    assert raw.parse().usage.total_tokens == 1500
    assert_chat_usage(otel)


def test_with_raw_response_stream_is_traced_when_parsed_but_not_injected(client, otel, server):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER, stream=True)
    assert "stream_options" not in server.requests[-1].body  # raw bytes are exactly what the caller asked for
    assert len(list(raw.parse())) == 5
    a = only_span(otel).attributes
    assert a["tailpipe.token_accuracy"] == "estimated"
    assert "usage_missing" in a["tailpipe.flags"]


def test_with_raw_response_stream_with_callers_include_usage(client, otel):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    for _ in raw.parse():
        pass
    assert_chat_usage(otel, stream=True)


def test_with_streaming_response_parse(client, otel):
    with client.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=USER) as response:
        assert response.parse().usage.prompt_tokens == 1200
    assert_chat_usage(otel)


def test_with_streaming_response_read_without_parse(client, otel):
    with client.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=USER) as response:
        assert json.loads(response.read())["usage"]["prompt_tokens"] == 1200
    assert_chat_usage(otel)


def test_with_streaming_response_stream_lines(client, otel):
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=USER, stream=True
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    a = only_span(otel).attributes
    assert a["tailpipe.token_accuracy"] == "estimated"


def test_async_with_streaming_response(aclient, otel):
    async def main():
        async with aclient.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", messages=USER
        ) as response:
            return (await response.parse()).usage.prompt_tokens

    assert asyncio.run(main()) == 1200
    assert_chat_usage(otel)


# ---------------------------------------------------------------------------- wrapping and counting


def test_instrumentor_and_wrap_client_count_once(server, otel, instrumentor):
    other = Telemetry(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider, sink=MemorySink())
    client = new_client(server)
    wrap_client(client, other)
    wrap_client(client, other)  # idempotent
    client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert len(otel.spans.get_finished_spans()) == 1
    assert len(other.sink.records) == 1 and otel.sink.records == []  # the outer wrapper (wrap_client) wins


def test_wrap_client_covers_copies_and_raw_views_built_before(server, otel):
    client = new_client(server)
    _ = client.chat.completions.with_raw_response  # built before wrapping: must be rebuilt
    wrap_client(client, otel.telemetry)
    client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER)
    client.with_options(timeout=5).chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert len(otel.sink.records) == 2
    new_client(server).chat.completions.create(model="x", messages=USER)
    assert len(otel.sink.records) == 2  # another client is not touched


def test_uninstrument_restores_the_sdk(server, otel):
    original = openai.resources.chat.completions.Completions.create
    instrumentor = OpenAIInstrumentor()
    assert tuple(instrumentor.instrumentation_dependencies()) == instr._instruments
    instrumentor.instrument(telemetry=otel.telemetry)
    instrumentor.uninstrument()
    assert openai.resources.chat.completions.Completions.create is original
    new_client(server).chat.completions.create(model="x", messages=USER)
    assert otel.spans.get_finished_spans() == ()


# ------------------------------------------------------------------------------------------------ azure


def test_azure_deployment_is_the_model(server, otel, instrument):
    client = instrument(
        new_client(
            server,
            openai.AzureOpenAI,
            api_version="2024-10-21",
            azure_endpoint=server.url,
            azure_deployment="my-gpt-4o-mini",
        )
    )
    stream = client.chat.completions.create(model="ignored", messages=USER, stream=True)
    assert all(chunk.choices for chunk in stream)
    assert server.requests[-1].path == "/openai/deployments/my-gpt-4o-mini/chat/completions"
    span = only_span(otel)
    a = span.attributes
    assert span.name == "chat my-gpt-4o-mini"
    assert a["gen_ai.provider.name"] == "azure.ai.openai"
    assert a["gen_ai.response.model"] == fake.response_model("my-gpt-4o-mini")
    assert a["gen_ai.usage.input_tokens"] == 1200
    assert only_record(otel).provider == "azure.ai.openai"


def test_azure_model_argument_names_the_deployment(server, otel, instrument):
    client = instrument(new_client(server, openai.AzureOpenAI, api_version="2024-10-21", azure_endpoint=server.url))
    client.embeddings.create(model="emb-deployment", input="hello")
    span = only_span(otel)
    assert span.name == "embeddings emb-deployment"
    assert span.attributes["gen_ai.provider.name"] == "azure.ai.openai"


@pytest.mark.parametrize(
    ("url", "provider", "port", "region"),
    [
        ("https://api.openai.com/v1/", "openai", 443, None),
        ("https://myres.openai.azure.com/openai/v1/", "azure.ai.openai", 443, None),
        ("https://api.deepseek.com/v1/", "deepseek", 443, None),
        ("https://bedrock-mantle.us-east-1.api.aws/openai/v1/", "aws.bedrock", 443, "aws:us-east-1"),
        ("http://localhost:11434/v1/", "openai", 11434, None),
    ],
)
def test_provider_and_server_from_base_url(url, provider, port, region):
    target = instr._target_for(url, False, None)
    assert (target.provider, target.port, target.region) == (provider, port, region)


# ---------------------------------------------------------------------------------------------- privacy

CANARIES = {
    "system": "CANARY-SYSTEM-7f3a",
    "user": "CANARY-USER-91bd",
    "tool": "CANARY-TOOLARGS-44ce",
    "key": "sk-CANARY-KEY-0e12",
}


def test_no_content_or_key_leaves_through_any_channel(server, otel, instrument, caplog):
    caplog.set_level(logging.DEBUG)
    client = instrument(new_client(server, api_key=CANARIES["key"]))
    messages = [
        {"role": "system", "content": CANARIES["system"]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "f", "arguments": json.dumps({"a": CANARIES["tool"]})},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": CANARIES["tool"]},
        {"role": "user", "content": CANARIES["user"]},
    ]
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools, user=CANARIES["user"])
    assert CANARIES["user"] in answer.choices[0].message.tool_calls[0].function.arguments  # the response has it
    assert CANARIES["user"] in "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
    )
    client.responses.create(model="gpt-4.1", input=CANARIES["user"], instructions=CANARIES["system"])
    client.embeddings.create(model="text-embedding-3-small", input=CANARIES["user"])
    client.images.generate(model="dall-e-3", prompt=CANARIES["user"])
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="fake-error-429", messages=messages)
    gc.collect()

    exported = []
    for span in otel.spans.get_finished_spans():
        exported.append(span.to_json())
    exported.append(repr(otel.metrics.get_metrics_data().to_json()))
    exported += [record.encode().decode() for record in otel.sink.records]
    exported.append(caplog.text)
    blob = "\n".join(exported)
    assert len(otel.sink.records) == 6
    for canary in CANARIES.values():
        assert canary not in blob
