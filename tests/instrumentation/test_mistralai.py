"""The mistralai instrumentation against the real SDK and the loopback fake Mistral API."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

pytest.importorskip("mistralai.client")
pytest.importorskip("opentelemetry.instrumentation")

from mistralai.client import Mistral, errors
from opentelemetry.trace import SpanKind, StatusCode

from tailpipe_ai.carbon import Usage, estimate
from tailpipe_ai.instrumentation.mistralai import MistralAIInstrumentor, wrap_client
from tailpipe_ai.providers import mistralai as mp
from tailpipe_ai.semconv import attributes as sc
from tests.fakes import mistralai as fake
from tests.fakes.server import FakeServer
from tests.instrumentation._shared import instrument_mode, metric_sum, only_record, only_span

MODEL = "mistral-small-latest"
MESSAGES = [{"role": "user", "content": "hello"}]
FULL = dict(input_tokens=fake.PROMPT, output_tokens=fake.COMPLETION, cache_read_tokens=fake.CACHED)


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def base():
    """One fake server for the module (stopping a FakeServer takes ~0.5 s; the tests never read its log)."""
    with FakeServer() as server:
        yield fake.install(server)


@pytest.fixture(params=["instrumentor", "wrap_client"])
def mode(request, otel):
    """Instrument either globally or one client at a time; calling it prepares a client."""
    yield from instrument_mode(request.param, MistralAIInstrumentor, wrap_client, otel)


def _client(base, key="test-key"):
    return Mistral(api_key=key, server_url=base)


@pytest.fixture(scope="module")
def cached(base):
    """Clients reused across tests (building one takes ~0.1 s), one per mode: a wrap_client'ed client is
    only ever re-wrapped, which switches it to the current test's telemetry."""
    cache = {}

    def get(mode_name):
        if mode_name not in cache:
            cache[mode_name] = _client(base)
        return cache[mode_name]

    return get


@pytest.fixture
def client(mode, cached):
    return mode(cached(mode.name))


@pytest.fixture
def aclient(mode, base):
    """A fresh client for async tests: the SDK's async HTTP client is bound to the first event loop it ran on,
    and each test runs its own loop (asyncio.run)."""
    return mode(_client(base))


def _assert_full_usage(otel, stream=False, model=MODEL, operation=sc.OPERATION_CHAT, request_model=MODEL):
    span, record = only_span(otel), only_record(otel)
    a = span.attributes
    assert span.name == f"{operation} {request_model}" if request_model else operation
    assert span.kind is SpanKind.CLIENT
    assert a[sc.GEN_AI_OPERATION_NAME] == operation
    assert a[sc.GEN_AI_PROVIDER_NAME] == sc.PROVIDER_MISTRAL_AI
    assert a.get(sc.GEN_AI_REQUEST_MODEL) == request_model
    assert a[sc.GEN_AI_RESPONSE_MODEL] == model
    assert a[sc.GEN_AI_RESPONSE_ID] == f"cmpl-{model}"
    assert list(a[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ["stop"]
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == fake.PROMPT
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == fake.COMPLETION
    assert a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == fake.CACHED
    assert a[sc.SERVER_ADDRESS] == "127.0.0.1" and isinstance(a[sc.SERVER_PORT], int)
    assert a.get(sc.GEN_AI_REQUEST_STREAM, False) is stream
    assert a[sc.TAILPIPE_TOKEN_ACCURACY] == "exact"
    assert span.status.status_code is not StatusCode.ERROR

    expected = estimate(Usage(model=model, provider=sc.PROVIDER_MISTRAL_AI, **FULL))
    assert a[sc.TAILPIPE_ENERGY_WH] == pytest.approx(expected.energy_wh)
    assert a[sc.TAILPIPE_CARBON_GCO2E] == pytest.approx(expected.carbon_gco2e)
    assert (record.provider, record.operation, record.streamed) == (sc.PROVIDER_MISTRAL_AI, operation, stream)
    assert (record.input_tokens, record.output_tokens, record.cache_read_tokens) == (
        fake.PROMPT,
        fake.COMPLETION,
        fake.CACHED,
    )
    assert record.status == "ok" and record.token_accuracy == "exact"
    assert record.energy_wh == pytest.approx(expected.energy_wh)
    assert record.carbon_gco2e == pytest.approx(expected.carbon_gco2e)
    assert record.span_id == format(span.context.span_id, "016x")
    if stream:
        assert record.ttft_ms is not None and a[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] >= 0

    usage = "gen_ai.client.token.usage"
    assert metric_sum(otel, usage, **{sc.GEN_AI_TOKEN_TYPE: "input"}) == fake.PROMPT
    assert metric_sum(otel, usage, **{sc.GEN_AI_TOKEN_TYPE: "output"}) == fake.COMPLETION
    assert len(otel.metric_points("gen_ai.client.operation.duration")) == 1
    assert metric_sum(otel, "tailpipe.energy") == pytest.approx(expected.energy_wh)
    assert metric_sum(otel, "tailpipe.carbon") == pytest.approx(expected.carbon_gco2e)
    return span, record


# ------------------------------------------------------------------------------------------------------ chat


def test_chat_complete(client, otel):
    response = client.chat.complete(
        model=MODEL, messages=MESSAGES, temperature=0.2, top_p=0.8, max_tokens=64, random_seed=3, n=2
    )
    assert response.usage.prompt_tokens == fake.PROMPT  # the caller's object is untouched
    span, _ = _assert_full_usage(otel)
    a = span.attributes
    assert (a[sc.GEN_AI_REQUEST_TEMPERATURE], a[sc.GEN_AI_REQUEST_TOP_P]) == (0.2, 0.8)
    assert (a[sc.GEN_AI_REQUEST_MAX_TOKENS], a[sc.GEN_AI_REQUEST_SEED]) == (64, 3)
    assert a[sc.GEN_AI_REQUEST_CHOICE_COUNT] == 2
    assert a[sc.GEN_AI_OUTPUT_TYPE] == "text"


def test_json_output_type(client, otel):
    client.chat.complete(model=MODEL, messages=MESSAGES, response_format={"type": "json_object"})
    assert only_span(otel).attributes[sc.GEN_AI_OUTPUT_TYPE] == "json"


def test_async_complete(aclient, otel):
    response = asyncio.run(aclient.chat.complete_async(model=MODEL, messages=MESSAGES))
    assert response.choices[0].finish_reason == "stop"
    _assert_full_usage(otel)


def test_fim_and_agents(aclient, otel):
    aclient.fim.complete(model="codestral-latest", prompt="def f(", suffix="")
    _assert_full_usage(
        otel, model="codestral-latest", operation=sc.OPERATION_TEXT_COMPLETION, request_model="codestral-latest"
    )
    otel.spans.clear()
    otel.sink.records.clear()
    asyncio.run(aclient.agents.complete_async(agent_id="ag_123", messages=MESSAGES))
    span = only_span(otel)
    assert span.name == "chat"  # an agent id is not a model; the response says which model ran
    assert span.attributes[sc.GEN_AI_RESPONSE_MODEL] == fake.AGENT_MODEL
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == fake.PROMPT


# ------------------------------------------------------------------------------------------------- streaming


def test_stream(client, otel):
    events = list(client.chat.stream(model=MODEL, messages=MESSAGES))
    assert len(events) == 3 and events[-1].data.usage.total_tokens == fake.PROMPT + fake.COMPLETION
    _assert_full_usage(otel, stream=True)


def test_stream_context_manager(client, otel):
    with client.chat.stream(model=MODEL, messages=MESSAGES) as stream:
        assert len([e.data.id for e in stream]) == 3
    _assert_full_usage(otel, stream=True)


def test_stream_exit_early_from_context_manager(client, otel):
    with client.chat.stream(model=MODEL, messages=MESSAGES) as stream:
        next(iter(stream))
    a = only_span(otel).attributes  # ended on exit, before the usage chunk arrived
    assert a[sc.TAILPIPE_TOKEN_ACCURACY] == "estimated" and "stream_incomplete" in a[sc.TAILPIPE_FLAGS]


def test_stream_close(client, otel):
    stream = client.chat.stream(model=MODEL, messages=MESSAGES)
    next(stream)
    stream.close()
    assert "stream_incomplete" in only_span(otel).attributes[sc.TAILPIPE_FLAGS]
    stream.close()  # twice is harmless: still one span, one record
    assert len(otel.spans.get_finished_spans()) == 1 and len(otel.sink.records) == 1


def test_stream_abandoned_after_break(client, otel):
    stream = client.chat.stream(model=MODEL, messages=MESSAGES)
    for _ in stream:
        break
    assert otel.spans.get_finished_spans() == ()  # still open while the caller holds the stream
    del stream
    gc.collect()
    a = only_span(otel).attributes
    assert a[sc.TAILPIPE_TOKEN_ACCURACY] == "estimated" and "stream_incomplete" in a[sc.TAILPIPE_FLAGS]
    assert len(otel.sink.records) == 1


def test_async_stream(aclient, otel):
    async def run():
        stream = await aclient.chat.stream_async(model=MODEL, messages=MESSAGES)
        return [event async for event in stream]

    assert len(asyncio.run(run())) == 3
    _assert_full_usage(otel, stream=True)


def test_async_stream_context_manager_and_early_exit(aclient, otel):
    async def run():
        async with await aclient.chat.stream_async(model=MODEL, messages=MESSAGES) as stream:
            async for _ in stream:
                pass
        stream = await aclient.chat.stream_async(model=MODEL, messages=MESSAGES)
        async for _ in stream:
            break
        await stream.close()
        stream = await aclient.chat.stream_async(model=MODEL, messages=MESSAGES)
        async for _ in stream:
            break
        del stream  # abandoned
        gc.collect()

    asyncio.run(run())
    spans = otel.spans.get_finished_spans()
    assert len(spans) == 3 and len(otel.sink.records) == 3
    assert spans[0].attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == fake.PROMPT
    assert all("stream_incomplete" in s.attributes[sc.TAILPIPE_FLAGS] for s in spans[1:])


def test_slow_stream_time_to_first_chunk(client, otel):
    assert len(list(client.chat.stream(model="fake-slow", messages=MESSAGES))) == 3
    record = only_record(otel)
    assert record.ttft_ms >= fake.SLOW_DELAY * 1000 * 0.8
    assert record.latency_ms >= record.ttft_ms


# ---------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("model", "exc", "status"),
    [
        ("fake-error-429", errors.SDKError, 429),
        ("fake-error-500", errors.SDKError, 500),
        ("fake-error-422", errors.HTTPValidationError, 422),
    ],
)
def test_error_response_propagates(client, otel, model, exc, status):
    with pytest.raises(exc) as info:
        client.chat.complete(model=model, messages=MESSAGES)
    assert info.value.raw_response.status_code == status
    span, record = only_span(otel), only_record(otel)
    assert span.attributes[sc.ERROR_TYPE] == exc.__name__
    assert span.status.status_code is StatusCode.ERROR
    assert (record.status, record.error_type) == ("error", exc.__name__)


def test_stream_errors(client, otel):
    with pytest.raises(errors.SDKError):
        client.chat.stream(model="fake-error-400", messages=MESSAGES)
    seen = []
    with pytest.raises(errors.ResponseValidationError):
        for event in client.chat.stream(model="fake-stream-error", messages=MESSAGES):
            seen.append(event)
    assert len(seen) == 1
    spans = otel.spans.get_finished_spans()
    assert [s.attributes[sc.ERROR_TYPE] for s in spans] == ["SDKError", "ResponseValidationError"]


def test_async_errors(aclient, otel):
    async def run():
        with pytest.raises(errors.SDKError):
            await aclient.chat.complete_async(model="fake-error-503", messages=MESSAGES)
        with pytest.raises(errors.SDKError):
            await aclient.embeddings.create_async(model="fake-error-401", inputs=["x"])

    asyncio.run(run())
    assert [s.attributes[sc.ERROR_TYPE] for s in otel.spans.get_finished_spans()] == ["SDKError", "SDKError"]


# ------------------------------------------------------------------------------------------ bad or no usage


@pytest.mark.parametrize("model", ["fake-malformed", "fake-no-usage"])
def test_bad_usage_is_flagged_not_raised(client, otel, model):
    response = client.chat.complete(model=model, messages=MESSAGES)
    assert response.choices[0].message.content.startswith("Hello.")
    assert len(list(client.chat.stream(model=model, messages=MESSAGES))) == 3
    client.embeddings.create(model=model, inputs=["x"])
    for span in otel.spans.get_finished_spans():
        a = span.attributes
        assert sc.GEN_AI_USAGE_INPUT_TOKENS not in a and sc.GEN_AI_USAGE_OUTPUT_TOKENS not in a
        assert a[sc.TAILPIPE_TOKEN_ACCURACY] == "estimated"
        assert "usage_missing" in a[sc.TAILPIPE_FLAGS]
    assert len(otel.sink.records) == 3


def test_parser_failure_never_reaches_the_caller(client, otel, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("parser bug")

    monkeypatch.setattr(mp, "parse_response", boom)
    monkeypatch.setattr(mp, "parse_chunk", boom)
    assert client.chat.complete(model=MODEL, messages=MESSAGES).usage.prompt_tokens == fake.PROMPT
    assert len(list(client.chat.stream(model=MODEL, messages=MESSAGES))) == 3
    assert len(otel.spans.get_finished_spans()) == 2


@pytest.mark.parametrize(
    "body",
    [
        {"usage": [1, 2]},
        {"usage": "lots", "choices": "nope"},
        {"usage": {"prompt_tokens": "12", "completion_tokens": True, "prompt_tokens_details": [1]}},
        {"usage": {"prompt_tokens": 1.5, "total_tokens": {"n": 1}}, "model": 3, "id": []},
        {"data": None, "choices": [None, {"finish_reason": 7}]},
        "[DONE]",
        None,
        [],
    ],
)
def test_parsers_tolerate_malformed_json(body):
    for parse in (mp.parse_response, mp.parse_chunk, mp.parse_embeddings):
        info = parse(body)
        assert info is None or not info.has_usage


def test_parsers_read_wire_json():
    """The same parsers read raw REST JSON and SSE chunk dicts, for the proxy."""
    final = fake._chunk(MODEL, {"content": "x"}, "stop", fake._usage(MODEL))
    info = mp.parse_chunk(final)
    assert (info.input_tokens, info.output_tokens, info.cache_read_tokens) == (
        fake.PROMPT,
        fake.COMPLETION,
        fake.CACHED,
    )
    assert info.finish_reasons == ("stop",) and info.response_id == f"cmpl-{MODEL}"
    assert mp.parse_chunk("[DONE]") is None
    usage = {"prompt_tokens": 10, "completion_tokens": 7, "completion_tokens_details": {"reasoning_tokens": 4}}
    assert mp.parse_response({"usage": usage}).reasoning_tokens == 4
    assert mp.parse_embeddings({"usage": {"total_tokens": 9}}).input_tokens == 9


# ---------------------------------------------------------------------------------------------- embeddings


def test_embeddings(client, otel):
    client.embeddings.create(model="mistral-embed", inputs=["a", "b"], output_dimension=256, encoding_format="float")
    span, record = only_span(otel), only_record(otel)
    tokens = 2 * fake.EMBED_TOKENS_PER_INPUT
    assert span.name == "embeddings mistral-embed"
    a = span.attributes
    assert a[sc.GEN_AI_OPERATION_NAME] == sc.OPERATION_EMBEDDINGS
    assert a[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == 256
    assert list(a[sc.GEN_AI_REQUEST_ENCODING_FORMATS]) == ["float"]
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == tokens and sc.GEN_AI_USAGE_OUTPUT_TOKENS not in a
    expected = estimate(Usage(model="mistral-embed", provider=sc.PROVIDER_MISTRAL_AI, input_tokens=tokens))
    assert record.energy_wh == pytest.approx(expected.energy_wh)
    assert record.output_type == "embedding" and record.token_accuracy == "exact"


def test_async_embeddings(aclient, otel):
    asyncio.run(aclient.embeddings.create_async(model="mistral-embed", inputs="one"))
    assert only_span(otel).attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == fake.EMBED_TOKENS_PER_INPUT


# ------------------------------------------------------------------------------- wrapping, double counting


def test_global_and_client_wrapping_count_once(otel, base):
    inst = MistralAIInstrumentor()
    inst.instrument(telemetry=otel.telemetry)
    try:
        c = wrap_client(wrap_client(_client(base), otel.telemetry), otel.telemetry)
        c.chat.complete(model=MODEL, messages=MESSAGES)
        list(c.chat.stream(model=MODEL, messages=MESSAGES))
        asyncio.run(c.embeddings.create_async(model="mistral-embed", inputs=["x"]))
    finally:
        inst.uninstrument()
    assert len(otel.spans.get_finished_spans()) == 3
    assert len(otel.sink.records) == 3


def test_uninstrument_restores_the_sdk(otel, base):
    from mistralai.client.chat import Chat

    original = Chat.complete
    inst = MistralAIInstrumentor()
    inst.instrument(telemetry=otel.telemetry)
    assert Chat.complete is not original
    inst.uninstrument()
    assert Chat.complete is original
    c = _client(base)
    c.chat.complete(model=MODEL, messages=MESSAGES)
    assert otel.spans.get_finished_spans() == ()
    assert MistralAIInstrumentor().instrumentation_dependencies() == ("mistralai >= 1.0.0, < 4",)


def test_wrap_client_leaves_other_clients_alone(otel, base):
    kept, other = wrap_client(_client(base), otel.telemetry), _client(base)
    assert kept is not other
    other.chat.complete(model=MODEL, messages=MESSAGES)
    assert otel.spans.get_finished_spans() == ()


# ---------------------------------------------------------------------------------------------------- privacy


def test_no_content_or_secret_leaves(otel, base, mode, caplog):
    caplog.set_level(logging.DEBUG)
    canaries = {
        "key": "CANARY-mistral-api-key-6b1d",
        "prompt": "CANARY-mistral-prompt-93aa",
        "system": "CANARY-mistral-system-1f4c",
        "tool": "CANARY-mistral-tool-args-d270",
        "response": fake.RESPONSE_CANARY,
    }
    c = mode(_client(base, key=canaries["key"]))
    call = {"id": "call_0", "type": "function", "function": {"name": "lookup", "arguments": canaries["tool"]}}
    messages = [
        {"role": "system", "content": canaries["system"]},
        {"role": "user", "content": canaries["prompt"]},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_0", "name": "lookup", "content": canaries["tool"]},
    ]
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": canaries["tool"],
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ]
    c.chat.complete(model=MODEL, messages=messages, tools=tools, stop=[canaries["prompt"]])
    c.chat.complete(model="fake-tool", messages=messages, tools=tools)
    with c.chat.stream(model=MODEL, messages=messages, tools=tools) as stream:
        list(stream)
    asyncio.run(c.chat.complete_async(model=MODEL, messages=messages))
    c.fim.complete(model="codestral-latest", prompt=canaries["prompt"], suffix=canaries["prompt"])
    c.embeddings.create(model="mistral-embed", inputs=[canaries["prompt"]])
    with pytest.raises(errors.SDKError) as info:
        c.chat.complete(model="fake-error-400", messages=messages)
    assert fake.RESPONSE_CANARY in str(info.value)  # the SDK's own error does quote the body

    spans = otel.spans.get_finished_spans()
    assert len(spans) == 7
    exported = [s.to_json() for s in spans]
    exported.append(otel.metrics.get_metrics_data().to_json())
    exported += [r.encode().decode() for r in otel.sink.records]
    exported.append(caplog.text)
    blob = "\n".join(exported)
    for name, canary in canaries.items():
        assert canary not in blob, name
