"""LangChain instrumentation with real `ChatOpenAI` / `ChatAnthropic` pointed at the loopback fakes.

Each model call gives one span, one record and one energy figure, whether the handler is passed by hand
or injected by `LangChainInstrumentor`, and still exactly one when the provider SDK is instrumented too
(the SDK call hands its data to the LangChain run). pytest-asyncio is not installed: async tests use
`asyncio.run`.
"""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("langchain_core")
langchain_openai = pytest.importorskip("langchain_openai")
langchain_anthropic = pytest.importorskip("langchain_anthropic")

from langchain_core.output_parsers import StrOutputParser  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

from tailpipe_ai.instrumentation.anthropic import AnthropicInstrumentor  # noqa: E402
from tailpipe_ai.instrumentation.langchain import LangChainInstrumentor, TailpipeCallbackHandler  # noqa: E402
from tailpipe_ai.instrumentation.openai import OpenAIInstrumentor  # noqa: E402
from tailpipe_ai.instrumentation.openai import wrap_client as wrap_openai  # noqa: E402
from tests.fakes import anthropic as fake_anthropic  # noqa: E402
from tests.fakes import openai as fake_openai  # noqa: E402
from tests.fakes.server import FakeServer  # noqa: E402
from tests.instrumentation._shared import metric_sum  # noqa: E402

API_KEY = "sk-test-key"
OPENAI = {"input": 1200, "output": 300, "cache_read": 1024, "cache_write": None, "reasoning": 128}
ANTHROPIC = fake_anthropic.EXPECTED
CLAUDE = "claude-sonnet-4-20250514"


@pytest.fixture(scope="module")
def servers():
    """One fake server per provider (the OpenAI fake's /v1/ catch-all would shadow /v1/messages)."""
    with FakeServer() as openai_server, FakeServer() as anthropic_server:
        fake_openai.install(openai_server)
        fake_anthropic.install(anthropic_server)
        yield openai_server, anthropic_server


def chat_openai(servers, model="gpt-4o-mini", **kwargs):
    return langchain_openai.ChatOpenAI(
        model=model, base_url=servers[0].url + "/v1", api_key=API_KEY, max_retries=0, **kwargs
    )


def chat_anthropic(servers, model=CLAUDE, **kwargs):
    return langchain_anthropic.ChatAnthropic(
        model=model, base_url=servers[1].url, api_key=API_KEY, max_retries=0, **kwargs
    )


@pytest.fixture
def fresh_async_clients():
    """The partner packages cache one async HTTP client per base URL, bound to the event loop it first ran
    on; each `asyncio.run` needs new ones."""
    from langchain_anthropic import _client_utils as anthropic_clients
    from langchain_openai.chat_models import _client_utils as openai_clients

    caches = (openai_clients._cached_async_httpx_client, anthropic_clients._get_default_async_httpx_client)
    for cache in caches:
        cache.cache_clear()
    yield
    for cache in caches:
        cache.cache_clear()


MODELS = {"openai": (chat_openai, "openai", OPENAI), "anthropic": (chat_anthropic, "anthropic", ANTHROPIC)}


@pytest.fixture(params=["by_hand", "instrumentor"])
def config(request, otel):
    """The RunnableConfig to call with: our handler passed by hand, or none (the instrumentor injects it)."""
    if request.param == "by_hand":
        yield {"callbacks": [TailpipeCallbackHandler(otel.telemetry)]}
        return
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(telemetry=otel.telemetry)
    yield {}
    instrumentor.uninstrument()


@pytest.fixture(params=["openai", "anthropic"])
def provider(request):
    return request.param


@pytest.fixture
def sdk_instrumented(otel):
    """Our OpenAI and Anthropic SDK instrumentation on as well: the double-counting setup."""
    instrumentors = [OpenAIInstrumentor(), AnthropicInstrumentor()]
    for inst in instrumentors:
        inst.instrument(telemetry=otel.telemetry)
    yield
    for inst in instrumentors:
        inst.uninstrument()


def model_spans(otel):
    return [s for s in otel.spans.get_finished_spans() if "gen_ai.operation.name" in s.attributes]


def only_model_span(otel):
    spans = model_spans(otel)
    assert len(spans) == 1, [s.name for s in otel.spans.get_finished_spans()]
    return spans[0]


def only_record(otel):
    assert len(otel.sink.records) == 1, [r.integration for r in otel.sink.records]
    return otel.sink.records[0].validate()


def assert_tokens(span, record, expected):
    a = span.attributes
    assert a["gen_ai.usage.input_tokens"] == record.input_tokens == expected["input"]
    assert a["gen_ai.usage.output_tokens"] == record.output_tokens == expected["output"]
    assert a.get("gen_ai.usage.cache_read.input_tokens") == record.cache_read_tokens == expected["cache_read"]
    assert a.get("gen_ai.usage.cache_creation.input_tokens") == record.cache_write_tokens == expected["cache_write"]
    assert a.get("gen_ai.usage.reasoning.output_tokens") == record.reasoning_tokens == expected["reasoning"]


def assert_counted_once(otel, provider_name, expected, *, streamed=False):
    """One span, one record, one energy figure: tokens exact, the metric sums equal the record's."""
    span, record = only_model_span(otel), only_record(otel)
    assert span.kind is SpanKind.CLIENT
    assert span.instrumentation_scope.name == "tailpipe_ai"
    assert span.attributes["gen_ai.provider.name"] == record.provider == provider_name
    assert span.attributes["tailpipe.integration"] == record.integration == "langchain"
    assert record.token_accuracy == "exact" and record.status == "ok"
    assert record.streamed is streamed
    assert_tokens(span, record, expected)
    assert record.energy_wh > 0
    assert span.attributes["tailpipe.energy.wh"] == record.energy_wh
    assert metric_sum(otel, "tailpipe.energy") == pytest.approx(record.energy_wh)
    assert metric_sum(otel, "tailpipe.carbon") == pytest.approx(record.carbon_gco2e)
    assert record.span_id == format(span.context.span_id, "016x")
    return span, record


# ---------------------------------------------------------------------------------------------- direct


def test_invoke_gives_one_span_with_exact_tokens(servers, otel, config, provider):
    make, name, expected = MODELS[provider]
    make(servers).invoke("hello", config=config)
    span, record = assert_counted_once(otel, name, expected)
    model = "gpt-4o-mini" if provider == "openai" else CLAUDE
    assert span.name == f"chat {model}" and record.request_model == model
    assert record.response_model == (fake_openai.response_model(model) if provider == "openai" else model)
    assert span.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert span.parent is None  # no chain, no current span: a root


def test_carbon_follows_the_documented_formula(servers, otel, config):
    """energy = (in x Wh/in-token + out x Wh/out-token + Wh/request) x PSE x TL x PUE; carbon = Wh/1000 x grid,
    with the global defaults (PUE 1.54, grid 473) since the location is unknown."""
    chat_openai(servers).invoke("hello", config=config)
    record = only_record(otel)
    shape = record.factors["shape"]
    wh = (1200 * shape["per_input_token"] + 300 * shape["per_output_token"] + shape["per_request"]) * 1.04 * 1.08
    assert record.factors["pue"]["value"] == 1.54 and record.factors["grid"]["value"] == 473.0
    assert record.energy_wh == pytest.approx(wh * 1.54)
    assert record.carbon_gco2e == pytest.approx(wh * 1.54 / 1000 * 473.0)


def test_stream_counts_chunks_and_reads_the_final_usage(servers, otel, config, provider):
    make, name, expected = MODELS[provider]
    model = make(servers, stream_usage=True)
    chunks = list(model.stream("hello", config=config))
    assert len(chunks) > 2
    span, record = assert_counted_once(otel, name, expected, streamed=True)
    assert span.attributes["gen_ai.request.stream"] is True
    assert record.ttft_ms is not None and 0 <= record.ttft_ms <= record.latency_ms


def test_openai_stream_without_usage_is_flagged_estimated(servers, otel, config):
    """ChatOpenAI on a custom base URL does not ask for stream usage; with no SDK instrumentation nothing
    can count the tokens: the call is still recorded, flagged."""
    list(chat_openai(servers).stream("hello", config=config))
    record = only_record(otel)
    assert record.token_accuracy == "estimated" and "usage_missing" in record.flags
    assert record.input_tokens is None and record.streamed is True


def test_model_without_usage_gives_flagged_estimate(servers, otel, config, provider):
    make, _, _ = MODELS[provider]
    make(servers, model="fake-no-usage").invoke("hello", config=config)
    record = only_record(otel)
    assert record.token_accuracy == "estimated" and "usage_missing" in record.flags
    assert record.status == "ok"


def test_provider_error_is_recorded_and_raised_unchanged(servers, otel, config, provider):
    make, _, _ = MODELS[provider]
    with pytest.raises(Exception) as caught:
        make(servers, model="fake-error-429").invoke("hello", config=config)
    span, record = only_model_span(otel), only_record(otel)
    assert record.status == "error" and record.error_type == type(caught.value).__qualname__
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == record.error_type  # the type only, never the provider's message


def test_text_completion_llm(servers, otel, config):
    llm = langchain_openai.OpenAI(
        model="gpt-3.5-turbo-instruct", base_url=servers[0].url + "/v1", api_key=API_KEY, max_retries=0
    )
    llm.invoke("hello", config=config)
    span, record = only_model_span(otel), only_record(otel)
    assert span.attributes["gen_ai.operation.name"] == record.operation == "text_completion"
    assert (record.input_tokens, record.output_tokens) == (20, 40)  # COMPLETION_USAGE via llm_output


# ---------------------------------------------------------------------------------------------- chains


def chain(model):
    prompt = ChatPromptTemplate.from_messages([("system", "be brief"), ("user", "{question}")])
    return prompt | model | StrOutputParser()


def assert_nested_under_chain(otel, outer=None):
    spans = otel.spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}
    model_span = only_model_span(otel)
    chain_span = by_id[model_span.parent.span_id]
    assert chain_span.name == "chain RunnableSequence"
    assert chain_span.kind is SpanKind.INTERNAL and chain_span.attributes["tailpipe.langchain.run_type"] == "chain"
    assert "tailpipe.energy.wh" not in chain_span.attributes  # the call is counted on the model span only
    assert chain_span.start_time <= model_span.start_time and model_span.end_time <= chain_span.end_time
    # light chain spans: the prompt template and the parser have no model call inside, so no span
    assert [s.name for s in spans if s.instrumentation_scope.name == "tailpipe_ai" and s is not model_span] == [
        "chain RunnableSequence"
    ]
    if outer is None:
        assert chain_span.parent is None
    else:
        assert chain_span.parent.span_id == outer.get_span_context().span_id
    return model_span


def test_chain_model_span_is_parented_under_the_chain(servers, otel, config, provider):
    make, name, expected = MODELS[provider]
    outer = otel.tracer_provider.get_tracer("app").start_span("request")
    from opentelemetry import trace

    with trace.use_span(outer, end_on_exit=True):
        answer = chain(make(servers)).invoke({"question": "hi"}, config=config)
    assert answer.startswith("echo")
    model_span = assert_nested_under_chain(otel, outer)
    assert model_span.context.trace_id == outer.get_span_context().trace_id
    assert_counted_once(otel, name, expected)


def test_chain_stream_is_parented_and_counted(servers, otel, config, provider):
    make, name, expected = MODELS[provider]
    parts = list(chain(make(servers, stream_usage=True)).stream({"question": "hi"}, config=config))
    assert len(parts) > 1
    assert_nested_under_chain(otel)
    assert_counted_once(otel, name, expected, streamed=True)


def test_async_invoke_stream_and_chain(servers, otel, config, provider, fresh_async_clients):
    make, _, expected = MODELS[provider]

    async def main():
        model = make(servers, stream_usage=True)
        await model.ainvoke("hello", config=config)
        async for _ in model.astream("hello", config=config):
            pass
        await chain(model).ainvoke({"question": "hi"}, config=config)

    asyncio.run(main())
    records = otel.sink.records
    assert len(records) == 3 and {r.integration for r in records} == {"langchain"}
    assert [r.streamed for r in records] == [False, True, False]
    for record in records:
        assert record.token_accuracy == "exact"
        assert (record.input_tokens, record.output_tokens) == (expected["input"], expected["output"])
    spans = model_spans(otel)
    assert len(spans) == 3
    chain_spans = [s for s in otel.spans.get_finished_spans() if s.name == "chain RunnableSequence"]
    assert len(chain_spans) == 1 and spans[2].parent.span_id == chain_spans[0].context.span_id
    assert metric_sum(otel, "tailpipe.energy") == pytest.approx(sum(r.energy_wh for r in records))


def test_batch_counts_each_call_once(servers, otel, config):
    chat_openai(servers).batch(["a", "b", "c"], config=config)
    records = otel.sink.records
    assert len(records) == 3 and all(r.input_tokens == 1200 for r in records)
    assert len(model_spans(otel)) == 3


# ------------------------------------------------------------------------------------ double counting


def test_with_sdk_instrumentation_each_call_is_counted_once(servers, otel, config, provider, sdk_instrumented):
    make, name, expected = MODELS[provider]
    make(servers).invoke("hello", config=config)
    span, _ = assert_counted_once(otel, name, expected)
    # the SDK call's own knowledge (the server it talked to) is on the one span
    assert span.attributes["server.address"] == "127.0.0.1"
    assert span.attributes["gen_ai.response.id"] == ("chatcmpl-fake1" if provider == "openai" else "msg_fake_0001")


def test_with_sdk_instrumentation_chain_and_stream_counted_once(servers, otel, config, provider, sdk_instrumented):
    make, name, expected = MODELS[provider]
    # No stream_usage: for OpenAI the SDK instrumentation asks for the usage chunk itself (hidden from
    # LangChain), so the merged call is exact; for Anthropic LangChain's usage fills what the SDK call had not.
    list(chain(make(servers)).stream({"question": "hi"}, config=config))
    assert_nested_under_chain(otel)
    assert_counted_once(otel, name, expected, streamed=True)


def test_with_sdk_instrumentation_async_counted_once(
    servers, otel, config, provider, sdk_instrumented, fresh_async_clients
):
    make, _, expected = MODELS[provider]

    async def main():
        model = make(servers)
        await model.ainvoke("hello", config=config)
        async for _ in model.astream("hello", config=config):
            pass

    asyncio.run(main())
    records = otel.sink.records
    assert len(records) == 2 and {r.integration for r in records} == {"langchain"}
    assert all(r.token_accuracy == "exact" and r.input_tokens == expected["input"] for r in records)
    assert len(model_spans(otel)) == 2
    assert metric_sum(otel, "tailpipe.energy") == pytest.approx(sum(r.energy_wh for r in records))


def test_with_a_wrapped_client_the_call_is_counted_once(servers, otel, config):
    """`TailpipeAI.wrap(OpenAI())` handed to ChatOpenAI: the wrapper's call joins the LangChain run."""
    import openai

    root = wrap_openai(openai.OpenAI(api_key=API_KEY, base_url=servers[0].url + "/v1", max_retries=0), otel.telemetry)
    model = langchain_openai.ChatOpenAI(
        model="gpt-4o-mini", api_key=API_KEY, root_client=root, client=root.chat.completions
    )
    model.invoke("hello", config=config)
    assert_counted_once(otel, "openai", OPENAI)


def test_sdk_calls_outside_langchain_are_still_counted(servers, otel, config, sdk_instrumented):
    import openai

    chat_openai(servers).invoke("hello", config=config)
    client = openai.OpenAI(api_key=API_KEY, base_url=servers[0].url + "/v1", max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert sorted(r.integration for r in otel.sink.records) == ["auto", "langchain"]


def test_handler_by_hand_and_instrumentor_count_once(servers, otel):
    """A handler passed by hand wins over the injected one: one record, with the by-hand telemetry."""
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(telemetry=otel.telemetry)
    try:
        handler = TailpipeCallbackHandler(otel.telemetry)
        chain(chat_openai(servers)).invoke({"question": "hi"}, config={"callbacks": [handler]})
        chat_openai(servers, callbacks=[TailpipeCallbackHandler(otel.telemetry)]).invoke("hello")
    finally:
        instrumentor.uninstrument()
    assert len(otel.sink.records) == 2
    assert len(model_spans(otel)) == 2


def test_uninstrument_stops_injection(servers, otel):
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(telemetry=otel.telemetry)
    instrumentor.uninstrument()
    chat_openai(servers).invoke("hello")
    assert otel.sink.records == []


# ---------------------------------------------------------------------------------- never breaks


def test_malformed_results_never_break_the_run(otel):
    """Callbacks with odd payloads (a custom model's result, missing ids) are absorbed, logged once."""
    from uuid import uuid4

    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, LLMResult

    handler = TailpipeCallbackHandler(otel.telemetry)
    run = uuid4()
    handler.on_chat_model_start(None, [[]], run_id=run, metadata="not a dict", invocation_params=None)
    message = AIMessage(content="x")
    message.usage_metadata = {"input_tokens": "many", "output_tokens": -1, "total_tokens": 0}  # type: ignore[typeddict-item]
    handler.on_llm_end(
        LLMResult(generations=[[ChatGeneration(message=message)]], llm_output={"token_usage": "lots"}), run_id=run
    )
    handler.on_llm_end(None, run_id=uuid4())  # unknown run
    handler.on_llm_new_token("t", run_id=uuid4())
    handler.on_chain_end({}, run_id=uuid4())
    record = only_record(otel)
    assert record.provider == "langchain" and record.token_accuracy == "estimated"


def test_any_provider_and_peer_spans_inside_are_not_counted_twice(tmp_path):
    """A chat model of a package we do not map, whose SDK another vendor instruments: its GenAI span
    (started inside the run) is forwarded without energy; our LangChain span carries the one figure."""
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from tailpipe_ai.exporter.sink import MemorySink
    from tailpipe_ai.instrumentation._telemetry import Telemetry, flush
    from tailpipe_ai.processor import build_pipeline

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(build_pipeline(SimpleSpanProcessor(exporter)))
    peer = provider.get_tracer("some.vendor.instrumentation")

    class VendorChat(BaseChatModel):
        @property
        def _llm_type(self) -> str:
            return "vendor-chat"

        def _get_ls_params(self, stop=None, **kwargs):
            return {"ls_provider": "vendorx", "ls_model_name": "gpt-4o-mini", "ls_model_type": "chat"}

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "vendorx"}
            with peer.start_as_current_span("chat gpt-4o-mini", attributes=attrs) as span:
                span.set_attributes({"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5})
            usage = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
            return ChatResult(generations=[ChatGeneration(message=AIMessage("x", usage_metadata=usage))])

    sink = MemorySink()
    telemetry = Telemetry(tracer_provider=provider, sink=sink)
    VendorChat().invoke("hello", config={"callbacks": [TailpipeCallbackHandler(telemetry)]})
    flush()
    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    with_energy = [s for s in spans if "tailpipe.energy.wh" in s.attributes]
    assert len(with_energy) == 1 and with_energy[0].instrumentation_scope.name == "tailpipe_ai"
    assert with_energy[0].attributes["gen_ai.provider.name"] == "vendorx"
    (record,) = sink.records
    assert (record.provider, record.input_tokens, record.output_tokens) == ("vendorx", 10, 5)
    provider.shutdown()
