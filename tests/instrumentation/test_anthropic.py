"""Anthropic instrumentation against the real SDK and the loopback fake (tests/fakes/anthropic.py).

Every behaviour is checked both through `AnthropicInstrumentor` (class patching) and through `wrap_client`
(one instance), via the parametrised `make` fixture.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket

import pytest
import wrapt

anthropic = pytest.importorskip("anthropic")

from opentelemetry import trace  # noqa: E402
from opentelemetry.instrumentation.dependencies import get_dependency_conflicts  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

from tailpipe_ai.carbon import Usage, estimate  # noqa: E402
from tailpipe_ai.instrumentation import anthropic as inst_mod  # noqa: E402
from tailpipe_ai.instrumentation.anthropic import AnthropicInstrumentor, wrap_client  # noqa: E402
from tailpipe_ai.semconv import attributes as sc  # noqa: E402
from tests.fakes import anthropic as fake  # noqa: E402
from tests.fakes.server import FakeServer  # noqa: E402

MODEL = "claude-sonnet-4-6"
MESSAGES = [{"role": "user", "content": "Hello there"}]
SDK_SCOPE = "com.anthropic.sdk.python"
E = fake.EXPECTED


@pytest.fixture(scope="module")
def module_server():
    """One fake for the whole module: stopping a `FakeServer` takes ~0.5 s (its serve_forever poll)."""
    with FakeServer() as server:
        # Accepted sockets inherit TCP_NODELAY: without it each response waits ~40 ms on a delayed ACK.
        server._httpd.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        fake.install(server)
        yield server


@pytest.fixture
def server(module_server):
    module_server.requests.clear()
    return module_server


@pytest.fixture(params=["instrumentor", "wrap_client"])
def make(request, otel, server):
    """`make(cls=Anthropic, **kwargs)` -> an instrumented client pointed at the fake."""
    instrumentor = None
    if request.param == "instrumentor":
        instrumentor = AnthropicInstrumentor()
        instrumentor.instrument(telemetry=otel.telemetry)

    def build(cls=anthropic.Anthropic, **kwargs):
        client = new_client(server, cls, **kwargs)
        return client if instrumentor else wrap_client(client, otel.telemetry)

    build.mode = request.param
    yield build
    if instrumentor is not None:
        instrumentor.uninstrument()


def new_client(server, cls=anthropic.Anthropic, **kwargs):
    """A client of `cls` for the fake (no TLS context: building one costs ~50 ms per client)."""
    kwargs.setdefault("max_retries", 0)
    is_async = cls.__name__.startswith("Async")
    kwargs.setdefault(
        "http_client", (anthropic.DefaultAsyncHttpxClient if is_async else anthropic.DefaultHttpxClient)(verify=False)
    )
    if "Bedrock" in cls.__name__:
        kwargs.setdefault("base_url", fake.bedrock_base_url(server))
        kwargs.setdefault("api_key", "test-key")
        kwargs.setdefault("aws_region", "us-west-2")
    elif "Vertex" in cls.__name__:
        kwargs.setdefault("base_url", fake.vertex_base_url(server))
        kwargs.setdefault("access_token", "test-token")
        kwargs.setdefault("project_id", "proj")
        kwargs.setdefault("region", "us-east5")
    else:
        kwargs.setdefault("base_url", server.url)
        kwargs.setdefault("api_key", "test-key")
    return cls(**kwargs)


@pytest.fixture
def sdk_global_provider(otel, monkeypatch):
    """Let the SDK's own tracing find a global tracer provider that exports into `otel.spans`."""
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: otel.tracer_provider)
    return otel.tracer_provider


def spans(otel):
    return list(otel.spans.get_finished_spans())


def only_span(otel):
    out = spans(otel)
    assert len(out) == 1, [(s.name, s.instrumentation_scope.name) for s in out]
    return out[0]


def expected_estimate(model=MODEL, provider=sc.PROVIDER_ANTHROPIC, region=None):
    usage = Usage(
        model=model,
        provider=provider,
        input_tokens=E["input"],
        output_tokens=E["output"],
        cache_read_tokens=E["cache_read"],
        cache_write_tokens=E["cache_write"],
        reasoning_tokens=E["reasoning"],
    )
    return estimate(usage, region=region)


def assert_full_usage(otel, *, model=MODEL, provider=sc.PROVIDER_ANTHROPIC, stream=False, region=None):
    span = only_span(otel)
    a = span.attributes
    assert span.name == f"chat {model}"
    assert span.kind is SpanKind.CLIENT
    assert span.instrumentation_scope.name == "tailpipe_ai"
    assert a[sc.GEN_AI_OPERATION_NAME] == sc.OPERATION_CHAT
    assert a[sc.GEN_AI_PROVIDER_NAME] == provider
    assert a[sc.GEN_AI_REQUEST_MODEL] == model
    assert a[sc.GEN_AI_RESPONSE_MODEL] == model
    assert a[sc.GEN_AI_RESPONSE_ID] == fake.MESSAGE_ID
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert a[sc.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == E["input"]  # 25 + 1000 cache read + 100 cache write
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == E["output"]
    assert a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == E["cache_read"]
    assert a[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == E["cache_write"]
    assert a[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == E["reasoning"]
    assert a[sc.SERVER_ADDRESS] == "127.0.0.1"
    assert isinstance(a[sc.SERVER_PORT], int)
    assert a[sc.TAILPIPE_TOKEN_ACCURACY] == "exact"
    assert a.get(sc.GEN_AI_REQUEST_STREAM, False) is stream
    assert (sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in a) is stream
    assert span.status.status_code is not StatusCode.ERROR
    est = expected_estimate(model, provider, region)
    assert a[sc.TAILPIPE_ENERGY_WH] == pytest.approx(est.energy_wh)
    assert a[sc.TAILPIPE_CARBON_GCO2E] == pytest.approx(est.carbon_gco2e)
    (record,) = otel.sink.records
    assert (record.provider, record.request_model, record.response_model) == (provider, model, model)
    assert (record.input_tokens, record.output_tokens) == (E["input"], E["output"])
    assert (record.cache_read_tokens, record.cache_write_tokens, record.reasoning_tokens) == (
        E["cache_read"],
        E["cache_write"],
        E["reasoning"],
    )
    assert record.streamed is stream and record.status == "ok" and record.region == region
    assert record.energy_wh == pytest.approx(est.energy_wh)
    assert record.carbon_gco2e == pytest.approx(est.carbon_gco2e)
    assert record.span_id == format(span.context.span_id, "016x")
    tokens = {
        p.attributes[sc.GEN_AI_TOKEN_TYPE]: p.sum for p in otel.metric_points(sc.METRIC_GEN_AI_CLIENT_TOKEN_USAGE)
    }
    assert tokens == {"input": E["input"], "output": E["output"]}
    (energy,) = otel.metric_points(sc.METRIC_TAILPIPE_ENERGY)
    assert energy.value == pytest.approx(est.energy_wh)
    (carbon,) = otel.metric_points(sc.METRIC_TAILPIPE_CARBON)
    assert carbon.value == pytest.approx(est.carbon_gco2e)
    (duration,) = otel.metric_points(sc.METRIC_GEN_AI_CLIENT_OPERATION_DURATION)
    assert duration.count == 1 and duration.attributes[sc.GEN_AI_PROVIDER_NAME] == provider
    return span


def create(client, model=MODEL, **kwargs):
    return client.messages.create(model=model, max_tokens=64, messages=MESSAGES, **kwargs)


# ---------------------------------------------------------------------------------------------------------
# messages.create
# ---------------------------------------------------------------------------------------------------------


def test_create(make, otel):
    message = create(make())
    assert isinstance(message, anthropic.types.Message)
    assert message.content[0].text == "echo: Hello there" and message.usage.input_tokens == 25
    assert_full_usage(otel)


def test_create_async(make, otel):
    client = make(anthropic.AsyncAnthropic)
    message = asyncio.run(client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES))
    assert message.usage.output_tokens == 40
    assert_full_usage(otel)


@pytest.mark.parametrize("model", [MODEL, "fake-legacy-delta"])
def test_create_stream(make, otel, model):
    """message_start gives the input side, message_delta the cumulative totals: replaced, never added."""
    events = [e.type for e in create(make(), model=model, stream=True)]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert_full_usage(otel, model=model, stream=True)


def test_create_stream_async(make, otel):
    client = make(anthropic.AsyncAnthropic)

    async def run():
        stream = await client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
        async with stream:
            return [e.type async for e in stream]

    assert "message_delta" in asyncio.run(run())
    assert_full_usage(otel, stream=True)


def test_parse_and_raw_response(make, otel):
    client = make()
    parsed = client.messages.parse(model=MODEL, max_tokens=64, messages=MESSAGES)
    assert parsed.usage.input_tokens == 25
    assert_full_usage(otel)
    otel.spans.clear()
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    assert raw.parse().usage.output_tokens == 40
    (span,) = spans(otel)[-1:]
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == E["input"]


def test_count_tokens_is_not_traced(make, otel):
    assert make().messages.count_tokens(model=MODEL, messages=MESSAGES).input_tokens == fake.COUNT_TOKENS
    assert spans(otel) == [] and otel.sink.records == []


def test_beta_messages(make, otel):
    client = make()
    client.beta.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    with client.beta.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        assert stream.get_final_text() == "echo: Hello there"
    assert [s.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] for s in spans(otel)] == [E["input"], E["input"]]


# ---------------------------------------------------------------------------------------------------------
# the messages.stream helper
# ---------------------------------------------------------------------------------------------------------


def helper(client, model=MODEL):
    return client.messages.stream(model=model, max_tokens=64, messages=MESSAGES)


def test_stream_helper_text_stream(make, otel):
    with helper(make()) as stream:
        assert "".join(stream.text_stream) == "echo: Hello there"
        assert len(spans(otel)) == 1  # text_stream read the raw stream to its end
        final = stream.get_final_message()
    assert final.usage.output_tokens == 40
    assert_full_usage(otel, stream=True)


def test_stream_helper_final_message_only(make, otel):
    with helper(make()) as stream:
        assert stream.get_final_message().content[0].text == "echo: Hello there"
    assert_full_usage(otel, stream=True)


def test_stream_helper_not_entered_sends_nothing(make, otel, server):
    manager = helper(make())
    assert isinstance(manager, anthropic.lib.streaming.MessageStreamManager)
    del manager
    gc.collect()
    assert spans(otel) == [] and server.requests == []


def test_stream_helper_async(make, otel):
    client = make(anthropic.AsyncAnthropic)

    async def run():
        async with client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
            text = [t async for t in stream.text_stream]
            final = await stream.get_final_message()
        return "".join(text), final

    text, final = asyncio.run(run())
    assert text == "echo: Hello there" and final.usage.output_tokens == 40
    assert_full_usage(otel, stream=True)


def test_stream_helper_exit_early_ends_span_once(make, otel):
    with helper(make()) as stream:
        for event in stream:
            assert event.type == "message_start"
            break
        assert spans(otel) == []
    span = only_span(otel)
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == E["input"]
    gc.collect()
    assert len(spans(otel)) == 1 and len(otel.sink.records) == 1


def test_stream_helper_error_in_block(make, otel):
    with pytest.raises(KeyError), helper(make()) as stream:
        next(iter(stream))
        raise KeyError("user code")
    span = only_span(otel)
    assert span.attributes[sc.ERROR_TYPE] == "KeyError"


def test_stream_helper_abandoned(make, otel):
    manager = helper(make())
    stream = manager.__enter__()
    next(iter(stream))
    del stream, manager
    gc.collect()
    assert len(spans(otel)) == 1 and len(otel.sink.records) == 1


# ---------------------------------------------------------------------------------------------------------
# stream endings
# ---------------------------------------------------------------------------------------------------------


def test_stream_break_and_gc(make, otel):
    stream = create(make(), stream=True)
    for _event in stream:
        break
    assert spans(otel) == []
    del stream, _event
    gc.collect()
    span = only_span(otel)
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == E["input"]


def test_stream_close_before_reading(make, otel):
    stream = create(make(), stream=True)
    stream.close()
    span = only_span(otel)
    assert span.attributes[sc.TAILPIPE_TOKEN_ACCURACY] == "estimated"
    assert "stream_incomplete" in span.attributes[sc.TAILPIPE_FLAGS]
    stream.close()
    del stream
    gc.collect()
    assert len(spans(otel)) == 1


def test_stream_context_manager_exit(make, otel):
    with create(make(), stream=True) as stream:
        next(iter(stream))
    assert only_span(otel).attributes[sc.GEN_AI_REQUEST_STREAM] is True


def test_slow_stream_time_to_first_chunk(make, otel):
    list(create(make(), model="fake-slow", stream=True))
    a = only_span(otel).attributes
    assert a[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] >= fake.SLOW_DELAY * 0.8
    assert otel.sink.records[0].latency_ms >= 5 * fake.SLOW_DELAY * 1000


# ---------------------------------------------------------------------------------------------------------
# errors and bad input
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, "BadRequestError"),
        (401, "AuthenticationError"),
        (429, "RateLimitError"),
        (500, "InternalServerError"),
        (529, "OverloadedError"),
    ],
)
def test_error_response(make, otel, status, error):
    client = make()
    with pytest.raises(anthropic.APIStatusError) as info:
        create(client, model=f"fake-error-{status}")
    assert type(info.value).__name__ == error and info.value.status_code == status
    span = only_span(otel)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == error
    (record,) = otel.sink.records
    assert record.status == "error" and record.error_type == error
    (duration,) = otel.metric_points(sc.METRIC_GEN_AI_CLIENT_OPERATION_DURATION)
    assert duration.attributes[sc.ERROR_TYPE] == error


def test_error_response_async_stream(make, otel):
    client = make(anthropic.AsyncAnthropic)
    with pytest.raises(anthropic.RateLimitError):
        asyncio.run(client.messages.create(model="fake-error-429", max_tokens=8, messages=MESSAGES, stream=True))
    assert only_span(otel).attributes[sc.ERROR_TYPE] == "RateLimitError"


def test_error_event_mid_stream(make, otel):
    with pytest.raises(anthropic.APIStatusError):
        list(create(make(), model="fake-stream-error", stream=True))
    span = only_span(otel)
    assert span.attributes[sc.ERROR_TYPE] == "APIStatusError"
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == E["input"]  # message_start came before the error


def test_error_entering_stream_helper(make, otel):
    with pytest.raises(anthropic.OverloadedError), helper(make(), model="fake-error-529"):
        pass
    assert only_span(otel).attributes[sc.ERROR_TYPE] == "OverloadedError"


@pytest.mark.parametrize("stream", [False, True])
def test_missing_usage(make, otel, stream):
    result = create(make(), model="fake-no-usage", stream=stream)
    if stream:
        assert [e.type for e in result][-1] == "message_stop"
    else:
        assert result.usage is None and result.content[0].text == "echo: Hello there"
    a = only_span(otel).attributes
    assert sc.GEN_AI_USAGE_INPUT_TOKENS not in a
    assert a[sc.TAILPIPE_TOKEN_ACCURACY] == "estimated"
    assert "usage_missing" in a[sc.TAILPIPE_FLAGS]


@pytest.mark.parametrize("stream", [False, True])
def test_malformed_usage(make, otel, stream):
    result = create(make(), model="fake-malformed", stream=stream)
    if stream:
        events = list(result)
        assert events[0].message.usage.input_tokens == "25"  # the caller sees what the API sent
    else:
        assert result.usage.input_tokens == "25" and result.usage.output_tokens == -4
    a = only_span(otel).attributes
    assert sc.GEN_AI_USAGE_INPUT_TOKENS not in a and sc.GEN_AI_USAGE_OUTPUT_TOKENS not in a
    assert a[sc.TAILPIPE_TOKEN_ACCURACY] == "estimated"


def test_our_failures_never_reach_the_caller(make, otel, monkeypatch):
    client = make()

    def boom(*args, **kwargs):
        raise RuntimeError("internal")

    monkeypatch.setattr(inst_mod, "parse_response", boom)
    assert create(client).usage.input_tokens == 25
    assert "usage_unreadable" in only_span(otel).attributes[sc.TAILPIPE_FLAGS]

    monkeypatch.setattr(inst_mod.StreamParser, "__call__", boom)
    assert len(list(create(client, stream=True))) == 8
    with helper(client) as stream:
        assert stream.get_final_text() == "echo: Hello there"

    otel.spans.clear()
    monkeypatch.setattr(inst_mod, "_provider", boom)  # describe fails: the call goes on untraced
    assert create(client).id == fake.MESSAGE_ID
    with helper(client) as stream:
        assert stream.get_final_message().id == fake.MESSAGE_ID
    assert spans(otel) == []


# ---------------------------------------------------------------------------------------------------------
# Bedrock and Vertex AI clients
# ---------------------------------------------------------------------------------------------------------

BEDROCK_MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"


def test_bedrock(make, otel):
    client = make(anthropic.AnthropicBedrock)
    assert client.messages.create(model=BEDROCK_MODEL, max_tokens=64, messages=MESSAGES).usage.input_tokens == 25
    assert_full_usage(otel, model=BEDROCK_MODEL, provider=sc.PROVIDER_AWS_BEDROCK, region="aws:us-west-2")


def test_bedrock_error(make, otel):
    client = make(anthropic.AnthropicBedrock)
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model="fake-error-429", max_tokens=8, messages=MESSAGES)
    span = only_span(otel)
    assert span.attributes[sc.GEN_AI_PROVIDER_NAME] == sc.PROVIDER_AWS_BEDROCK
    assert span.attributes[sc.ERROR_TYPE] == "RateLimitError"


def test_bedrock_stream(make, otel):
    pytest.importorskip("botocore")  # the SDK decodes Bedrock's binary event stream with botocore
    client = make(anthropic.AsyncAnthropicBedrock)

    async def run():
        async with client.messages.stream(model=BEDROCK_MODEL, max_tokens=64, messages=MESSAGES) as stream:
            return await stream.get_final_text()

    assert asyncio.run(run()) == "echo: Hello there"
    assert_full_usage(otel, model=BEDROCK_MODEL, provider=sc.PROVIDER_AWS_BEDROCK, stream=True, region="aws:us-west-2")


def test_vertex(make, otel):
    client = make(anthropic.AnthropicVertex)
    create(client)
    assert_full_usage(otel, provider=sc.PROVIDER_GCP_VERTEX_AI, region="gcp:us-east5")


def test_vertex_stream_async(make, otel):
    client = make(anthropic.AsyncAnthropicVertex)

    async def run():
        stream = await client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
        return [e.type async for e in stream]

    asyncio.run(run())
    assert_full_usage(otel, provider=sc.PROVIDER_GCP_VERTEX_AI, stream=True, region="gcp:us-east5")


def test_vertex_global_region_is_not_a_location(make, otel):
    create(make(anthropic.AnthropicVertex, region="global"))
    assert otel.sink.records[0].region is None


# ---------------------------------------------------------------------------------------------------------
# the SDK's own tracing: one call, one span, no content
# ---------------------------------------------------------------------------------------------------------

CANARIES = {
    "system": "CANARY-SYSTEM-5d1e",
    "user": "CANARY-USER-8a2f",
    "tool_arg": "CANARY-TOOLARG-3c9b",
    "tool_def": "CANARY-TOOLDEF-71aa",
    "tool_result": "CANARY-TOOLRESULT-0e4d",
    "stop": "CANARY-STOP-6b3c",
    "key": "sk-ant-CANARY-KEY-90fe",
}

CANARY_MESSAGES = [
    {"role": "user", "content": "look this up"},
    {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"query": CANARIES["tool_arg"]}}],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": CANARIES["tool_result"]},
            {"type": "text", "text": f"and now {CANARIES['user']}"},
        ],
    },
]
CANARY_TOOLS = [
    {
        "name": "lookup",
        "description": CANARIES["tool_def"],
        "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}},
    }
]


def canary_calls(client):
    """A plain, a streamed and a stream-helper call, every one carrying every canary (the answer echoes)."""
    kwargs = dict(
        model=MODEL,
        max_tokens=64,
        messages=CANARY_MESSAGES,
        system=CANARIES["system"],
        tools=CANARY_TOOLS,
        stop_sequences=[CANARIES["stop"]],
        metadata={"user_id": "u-1"},
    )
    assert CANARIES["user"] in client.messages.create(**kwargs).content[0].text
    list(client.messages.create(stream=True, **kwargs))
    with client.messages.stream(**kwargs) as stream:
        assert CANARIES["user"] in stream.get_final_text()


def exported_text(otel, caplog) -> str:
    parts = []
    for span in spans(otel):
        parts += [span.name, span.status.description or "", json.dumps(dict(span.attributes), default=str)]
        parts += [json.dumps([e.name, dict(e.attributes or {})], default=str) for e in span.events]
        parts += [json.dumps(dict(link.attributes or {}), default=str) for link in span.links]
    for name in (
        sc.METRIC_GEN_AI_CLIENT_TOKEN_USAGE,
        sc.METRIC_GEN_AI_CLIENT_OPERATION_DURATION,
        sc.METRIC_TAILPIPE_ENERGY,
        sc.METRIC_TAILPIPE_CARBON,
    ):
        parts += [json.dumps(dict(p.attributes), default=str) for p in otel.metric_points(name)]
    parts += [r.encode().decode() for r in otel.sink.records]
    parts.append(caplog.text)
    return "\n".join(parts)


def test_sdk_spans_exist_without_us(otel, server, sdk_global_provider, monkeypatch):
    """The control: uninstrumented, the SDK exports its own span, with content in content mode."""
    monkeypatch.setenv("ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE", "content")
    client = new_client(server)
    create(client)
    (span,) = spans(otel)
    assert span.instrumentation_scope.name == SDK_SCOPE
    assert "Hello there" in span.attributes["gen_ai.input.messages"]


def test_one_span_no_content_with_env_content_mode(make, otel, sdk_global_provider, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG, logger="tailpipe_ai")
    monkeypatch.setenv("ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE", "content")
    client = make(api_key=CANARIES["key"])
    canary_calls(client)
    client.messages.count_tokens(model=MODEL, messages=MESSAGES)  # neither we nor the SDK trace it
    out = spans(otel)
    assert [s.instrumentation_scope.name for s in out] == ["tailpipe_ai"] * 3
    assert all(s.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == E["input"] for s in out)
    assert len(otel.sink.records) == 3
    text = exported_text(otel, caplog)
    for canary in CANARIES.values():
        assert canary not in text


def test_one_span_with_client_content_option(make, otel, caplog):
    caplog.set_level(logging.DEBUG, logger="tailpipe_ai")
    client = make(open_telemetry={"tracer_provider": otel.tracer_provider, "traces": {"content_mode": "content"}})
    canary_calls(client)
    asyncio.run(
        make(anthropic.AsyncAnthropic, open_telemetry={"tracer_provider": otel.tracer_provider}).messages.create(
            model=MODEL, max_tokens=8, messages=MESSAGES
        )
    )
    assert [s.instrumentation_scope.name for s in spans(otel)] == ["tailpipe_ai"] * 4
    text = exported_text(otel, caplog)
    assert not any(canary in text for canary in CANARIES.values())


def test_uninstrument_restores_sdk(otel, server, sdk_global_provider):
    client = new_client(server)
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(telemetry=otel.telemetry)
    create(client)
    instrumentor.uninstrument()
    create(client)
    assert [s.instrumentation_scope.name for s in spans(otel)] == ["tailpipe_ai", SDK_SCOPE]
    assert len(otel.sink.records) == 1
    assert not isinstance(vars(anthropic.resources.messages.Messages)["create"], wrapt.ObjectProxy)


# ---------------------------------------------------------------------------------------------------------
# wrap_client specifics and double counting
# ---------------------------------------------------------------------------------------------------------


def test_wrap_client_idempotent_and_copies(otel, server):
    client = new_client(server)
    assert wrap_client(wrap_client(client, otel.telemetry), otel.telemetry) is client
    assert client.open_telemetry["traces"]["enabled"] is False
    create(client)
    copy = client.with_options(timeout=5.0)
    assert copy.open_telemetry["traces"]["enabled"] is False
    create(copy)
    with copy.with_options(max_retries=1).messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as s:
        s.until_done()
    assert len(spans(otel)) == 3 and len(otel.sink.records) == 3


def test_wrap_client_and_instrumentor_count_once(otel, server):
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(telemetry=otel.telemetry)
    try:
        client = wrap_client(new_client(server), otel.telemetry)
        create(client)
        list(create(client, stream=True))
        with helper(client) as stream:
            stream.until_done()
        aclient = wrap_client(new_client(server, anthropic.AsyncAnthropic), otel.telemetry)

        async def run():
            async with aclient.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as s:
                await s.until_done()

        asyncio.run(run())
    finally:
        instrumentor.uninstrument()
    assert len(spans(otel)) == 4 and len(otel.sink.records) == 4


def test_instrumentor_dependencies():
    instruments = AnthropicInstrumentor().instrumentation_dependencies()
    assert any(dep.startswith("anthropic") for dep in instruments)
    assert get_dependency_conflicts(instruments) is None


def test_streaming_response_is_counted_without_usage(make, otel):
    """with_streaming_response leaves the body to the caller: the call counts, its usage is flagged missing."""
    with make().messages.with_streaming_response.create(model=MODEL, max_tokens=64, messages=MESSAGES) as response:
        assert response.parse().usage.input_tokens == 25
    a = only_span(otel).attributes
    assert a[sc.TAILPIPE_TOKEN_ACCURACY] == "estimated" and "usage_missing" in a[sc.TAILPIPE_FLAGS]


def test_parse_async(make, otel):
    client = make(anthropic.AsyncAnthropic)
    parsed = asyncio.run(client.messages.parse(model=MODEL, max_tokens=64, messages=MESSAGES))
    assert parsed.usage.output_tokens == 40
    assert_full_usage(otel)


# ---------------------------------------------------------------------------------------------------------
# the provider parsers on JSON (as the proxy will use them)
# ---------------------------------------------------------------------------------------------------------


def test_parser_on_json_bodies():
    from tailpipe_ai.providers.anthropic import StreamParser, parse_response

    info = parse_response(fake.message(MODEL, "x", fake.USAGE))
    assert (info.input_tokens, info.output_tokens, info.cache_read_tokens, info.cache_write_tokens) == (
        E["input"],
        E["output"],
        E["cache_read"],
        E["cache_write"],
    )
    assert info.reasoning_tokens == E["reasoning"] and info.finish_reasons == ("stop",)
    assert not parse_response(fake.message(MODEL, "x", fake.MALFORMED_USAGE)).has_usage
    assert not parse_response({"usage": "garbage"}).has_usage and not parse_response(None).has_usage

    for model in (MODEL, "fake-legacy-delta"):  # cumulative deltas replace, never add
        parser, total = StreamParser(), None
        for _name, event in fake._events(model, "some text"):
            update = parser(event)
            if update is not None:
                total = total or update
                total.update(update)
        assert (total.input_tokens, total.output_tokens, total.response_id) == (
            E["input"],
            E["output"],
            fake.MESSAGE_ID,
        )


def test_parser_bedrock_metrics_fallback():
    from tailpipe_ai.providers.anthropic import StreamParser

    parser = StreamParser()
    assert parser({"type": "message_start", "message": {"id": "m", "model": "x"}}).input_tokens is None
    stop = {"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 7, "outputTokenCount": 3}}
    info = parser(stop)
    assert (info.input_tokens, info.output_tokens) == (7, 3)
    assert parser({"type": "message_stop", "amazon-bedrock-invocationMetrics": "bad"}) is None
