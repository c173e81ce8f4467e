"""LangChain instrumentation with langchain-aws (`ChatBedrockConverse`, `ChatBedrock`) and langchain-mistralai
(`ChatMistralAI`) pointed at the loopback fakes: a real boto3 bedrock-runtime client (dummy credentials,
`endpoint_url`), and ChatMistralAI's own httpx client (it does not use the mistralai SDK).

Each model call gives one span, one record and one energy figure with exact tokens, nested under its
chain's span; a Bedrock call carries its client's region (``aws:<region>``) and is still counted once with
`BedrockInstrumentor` on (the SDK call hands its data to the LangChain run). The privacy canary for both
packages is at the end. pytest-asyncio is not installed: async tests use `asyncio.run`.
"""

# ruff: noqa: F811  (the fixtures imported from the other LangChain and Bedrock tests are test parameters here)

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

pytest.importorskip("langchain_core")
langchain_aws = pytest.importorskip("langchain_aws")
langchain_mistralai = pytest.importorskip("langchain_mistralai")

import boto3  # noqa: E402
import httpx  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from langchain_core.messages import HumanMessage, SystemMessage  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate  # noqa: E402

from tailpipe_ai.carbon import Usage, estimate  # noqa: E402
from tailpipe_ai.instrumentation.bedrock import BedrockInstrumentor  # noqa: E402
from tailpipe_ai.instrumentation.langchain import TailpipeCallbackHandler  # noqa: E402
from tailpipe_ai.instrumentation.mistralai import MistralAIInstrumentor  # noqa: E402
from tailpipe_ai.semconv import attributes as sc  # noqa: E402
from tests import privacy  # noqa: E402
from tests.fakes import anthropic as fake_anthropic  # noqa: E402
from tests.fakes import bedrock as fake_bedrock  # noqa: E402
from tests.fakes import mistralai as fake_mistral  # noqa: E402
from tests.fakes.server import FakeServer  # noqa: E402
from tests.instrumentation._shared import metric_sum  # noqa: E402
from tests.instrumentation.test_bedrock import _no_aws_environment, new_client  # noqa: E402, F401 (autouse fixture)
from tests.instrumentation.test_langchain import (  # noqa: E402
    assert_counted_once,
    assert_nested_under_chain,
    chain,
    config,  # noqa: F401 (fixture: handler by hand, or injected by LangChainInstrumentor)
    model_spans,
    only_model_span,
    only_record,
)
from tests.instrumentation.test_langchain_privacy import lookup, stack  # noqa: E402, F401 (fixture)

REGION = "eu-central-1"
SONNET = "us.anthropic.claude-sonnet-4-20250514-v1:0"
LLAMA = "meta.llama3-8b-instruct-v1:0"
MISTRAL = "mistral-small-latest"
API_KEY = "mistral-test-key"

# What LangChain reports for each fake answer (semconv: input includes the cache parts).
CONVERSE = {**fake_bedrock.CONVERSE_EXPECTED, "reasoning": None}
# ChatBedrock over InvokeModel (Anthropic body): langchain-aws keeps the cache parts, drops thinking tokens.
INVOKE_ANTHROPIC = {**fake_anthropic.EXPECTED, "reasoning": None}
# ChatBedrock streaming a Llama model: the usage is the final chunk's invocation metrics (no cache: zeros).
LLAMA_STREAM = {"input": 11, "output": 22, "cache_read": 0, "cache_write": 0, "reasoning": None}
P, C, OUT = fake_mistral.PROMPT, fake_mistral.CACHED, fake_mistral.COMPLETION
MISTRAL_INVOKE = {"input": P, "output": OUT, "cache_read": C, "cache_write": None, "reasoning": None}
# langchain-mistralai keeps only prompt/completion/total of a stream's usage: the cached part is unknown.
MISTRAL_STREAM = {**MISTRAL_INVOKE, "cache_read": None}


@pytest.fixture(scope="module")
def server():
    """One loopback server for both fakes (Bedrock under /model/, Mistral under /v1/)."""
    with FakeServer() as fake:
        fake_bedrock.install(fake)
        fake_mistral.install(fake)
        yield fake


@pytest.fixture
def bedrock_instrumented(otel):
    """Our boto3 Bedrock instrumentation on as well: the double-counting setup."""
    instrumentor = BedrockInstrumentor()
    instrumentor.instrument(telemetry=otel.telemetry)
    yield
    instrumentor.uninstrument()


def converse(server, model=SONNET, region=REGION):
    return langchain_aws.ChatBedrockConverse(model=model, client=new_client(server, region=region))


def chat_bedrock(server, model=SONNET, **kwargs):
    return langchain_aws.ChatBedrock(model_id=model, client=new_client(server, region=REGION), **kwargs)


def mistral(server, model=MISTRAL):
    return langchain_mistralai.ChatMistralAI(model=model, endpoint=server.url + "/v1", api_key=API_KEY, max_retries=0)


def assert_estimate(record, expected, region):
    """The record's energy and carbon are the carbon engine's for these tokens in this region."""
    usage = Usage(
        model=record.response_model or record.request_model,
        provider=record.provider,
        input_tokens=expected["input"],
        output_tokens=expected["output"],
        cache_read_tokens=expected["cache_read"],
        cache_write_tokens=expected["cache_write"],
        reasoning_tokens=expected["reasoning"],
    )
    est = estimate(usage, region=region)
    assert record.region == region
    assert record.energy_wh == pytest.approx(est.energy_wh)
    assert record.carbon_gco2e == pytest.approx(est.carbon_gco2e)


def assert_bedrock_call(otel, expected, *, streamed=False, region=REGION):
    """One call counted once, with exact tokens, and carbon of the client's region."""
    span, record = assert_counted_once(otel, sc.PROVIDER_AWS_BEDROCK, expected, streamed=streamed)
    assert span.attributes.get(sc.CLOUD_REGION) == region
    assert_estimate(record, expected, f"aws:{region}" if region else None)
    return span, record


# ------------------------------------------------------------------------------ ChatBedrockConverse


def test_converse_invoke_gives_one_span_with_exact_tokens_and_region(server, otel, config):
    converse(server).invoke("hello", config=config)
    span, record = assert_bedrock_call(otel, CONVERSE)
    assert span.name == f"chat {SONNET}" and record.request_model == record.response_model == SONNET
    assert span.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)  # Converse's stopReason end_turn
    assert span.parent is None
    default = estimate(Usage(model=SONNET, provider=sc.PROVIDER_AWS_BEDROCK, input_tokens=1230, output_tokens=50))
    assert record.energy_wh != pytest.approx(default.energy_wh), "the region must change the figure"


def test_converse_stream(server, otel, config):
    chunks = list(converse(server).stream("hello", config=config))
    assert len(chunks) > 2
    span, record = assert_bedrock_call(otel, CONVERSE, streamed=True)
    assert span.attributes[sc.GEN_AI_REQUEST_STREAM] is True
    assert record.ttft_ms is not None and 0 <= record.ttft_ms <= record.latency_ms


@pytest.mark.parametrize("how", ["invoke", "stream"])
def test_converse_in_a_chain_is_parented_under_the_chain(server, otel, config, how):
    runnable = chain(converse(server))
    if how == "invoke":
        assert runnable.invoke({"question": "hi"}, config=config).startswith("echo")
    else:
        assert len(list(runnable.stream({"question": "hi"}, config=config))) > 1
    assert_nested_under_chain(otel)
    assert_bedrock_call(otel, CONVERSE, streamed=how == "stream")


def test_region_unknown_to_the_engine_is_dropped(server, otel, config):
    """An unknown region would cost the call its estimate: the call keeps the global defaults instead."""
    converse(server, region="xx-nowhere-9").invoke("hello", config=config)
    span, record = only_model_span(otel), only_record(otel)
    assert record.region is None and sc.CLOUD_REGION not in span.attributes
    assert_estimate(record, CONVERSE, None)


def test_converse_async(server, otel, config):
    async def main():
        model = converse(server)
        await model.ainvoke("hello", config=config)
        async for _ in model.astream("hello", config=config):
            pass
        await chain(model).ainvoke({"question": "hi"}, config=config)

    asyncio.run(main())
    records = otel.sink.records
    assert [r.streamed for r in records] == [False, True, False]
    for record in records:
        assert record.integration == "langchain" and record.token_accuracy == "exact"
        assert (record.input_tokens, record.cache_read_tokens) == (CONVERSE["input"], CONVERSE["cache_read"])
        assert record.region == f"aws:{REGION}"
    assert len(model_spans(otel)) == 3
    assert metric_sum(otel, "tailpipe.energy") == pytest.approx(sum(r.energy_wh for r in records))


# ------------------------------------------------------------------------------ ChatBedrock (InvokeModel)


def test_chat_bedrock_invoke_with_region_name(server, otel, config):
    chat_bedrock(server, region_name=REGION).invoke("hello", config=config)
    span, _ = assert_bedrock_call(otel, INVOKE_ANTHROPIC)
    assert span.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)  # stop_reason end_turn


def test_chat_bedrock_stream(server, otel, config):
    chunks = list(chat_bedrock(server, model=LLAMA, region_name=REGION).stream("hello", config=config))
    assert len(chunks) > 2
    assert_bedrock_call(otel, LLAMA_STREAM, streamed=True)


def test_chat_bedrock_in_a_chain(server, otel, config):
    chain(chat_bedrock(server, region_name=REGION)).invoke({"question": "hi"}, config=config)
    assert_nested_under_chain(otel)
    assert_bedrock_call(otel, INVOKE_ANTHROPIC)


def test_chat_bedrock_without_region_name_has_no_region(server, otel, config):
    """ChatBedrock given only a client reports no region to LangChain: global defaults (see the next
    tests for how BedrockInstrumentor recovers it)."""
    chat_bedrock(server).invoke("hello", config=config)
    assert_bedrock_call(otel, INVOKE_ANTHROPIC, region=None)


# ------------------------------------------------------------------------------ with BedrockInstrumentor


BEDROCK_RUNS = {
    # name: (run it, expected tokens, streamed, chained); with the SDK call's data where LangChain has less
    "converse_invoke": (lambda s, c: converse(s).invoke("hello", config=c), CONVERSE, False, False),
    "converse_stream": (lambda s, c: list(converse(s).stream("hello", config=c)), CONVERSE, True, False),
    "converse_chain_stream": (
        lambda s, c: list(chain(converse(s)).stream({"question": "hi"}, config=c)),
        CONVERSE,
        True,
        True,
    ),
    # the SDK call parses the Anthropic body itself: its thinking tokens are kept
    "chat_bedrock_invoke": (
        lambda s, c: chat_bedrock(s).invoke("hello", config=c),
        fake_anthropic.EXPECTED,
        False,
        False,
    ),
    "chat_bedrock_chain": (
        lambda s, c: chain(chat_bedrock(s)).invoke({"question": "hi"}, config=c),
        fake_anthropic.EXPECTED,
        False,
        True,
    ),
    "chat_bedrock_stream": (
        lambda s, c: list(chat_bedrock(s, model=LLAMA).stream("hello", config=c)),
        LLAMA_STREAM,
        True,
        False,
    ),
}


@pytest.mark.parametrize("run", list(BEDROCK_RUNS))
def test_with_bedrock_instrumentation_each_call_is_counted_once(server, otel, config, bedrock_instrumented, run):
    """One span (the LangChain model span, integration langchain) carries the one energy figure; the SDK
    call adds what it observed: the server and the client's region, even for ChatBedrock given only a
    client."""
    call, expected, streamed, chained = BEDROCK_RUNS[run]
    call(server, config)
    if chained:
        assert_nested_under_chain(otel)
    span, _ = assert_bedrock_call(otel, expected, streamed=streamed)
    assert span.attributes[sc.SERVER_ADDRESS] == "127.0.0.1"
    assert [s.name for s in otel.spans.get_finished_spans() if sc.TAILPIPE_ENERGY_WH in s.attributes] == [span.name]


def test_with_bedrock_instrumentation_async_counted_once(server, otel, config, bedrock_instrumented):
    async def main():
        model = converse(server)
        await model.ainvoke("hello", config=config)
        async for _ in model.astream("hello", config=config):
            pass

    asyncio.run(main())
    records = otel.sink.records
    assert len(records) == 2 and {r.integration for r in records} == {"langchain"}
    assert all(r.input_tokens == CONVERSE["input"] and r.region == f"aws:{REGION}" for r in records)
    assert len(model_spans(otel)) == 2
    assert metric_sum(otel, "tailpipe.energy") == pytest.approx(sum(r.energy_wh for r in records))


def test_observed_region_beats_a_configured_default(server, otel):
    """A configured default region is for calls whose location is unknown: the region the Bedrock SDK
    call observed wins when it joins a ChatBedrock run that knew none."""
    from tailpipe_ai.instrumentation._telemetry import Telemetry

    telemetry = Telemetry(
        tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider, sink=otel.sink, region="aws:us-east-1"
    )
    instrumentor = BedrockInstrumentor()
    instrumentor.instrument(telemetry=telemetry)
    try:
        chat_bedrock(server).invoke("hello", config={"callbacks": [TailpipeCallbackHandler(telemetry)]})
    finally:
        instrumentor.uninstrument()
    assert_bedrock_call(otel, fake_anthropic.EXPECTED)


def test_bedrock_calls_outside_langchain_are_still_counted(server, otel, config, bedrock_instrumented):
    converse(server).invoke("hello", config=config)
    new_client(server, region=REGION).converse(modelId=SONNET, messages=[{"role": "user", "content": [{"text": "x"}]}])
    assert sorted(r.integration for r in otel.sink.records) == ["auto", "langchain"]


# ------------------------------------------------------------------------------ ChatMistralAI


def assert_mistral_call(otel, expected, *, streamed=False):
    span, record = assert_counted_once(otel, sc.PROVIDER_MISTRAL_AI, expected, streamed=streamed)
    assert span.name == f"chat {MISTRAL}" and record.request_model == record.response_model == MISTRAL
    assert span.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert_estimate(record, expected, None)
    return span, record


def test_mistral_invoke_gives_one_span_with_exact_tokens(server, otel, config):
    mistral(server).invoke("hello", config=config)
    span, _ = assert_mistral_call(otel, MISTRAL_INVOKE)  # the cached count comes from llm_output
    assert span.attributes[sc.GEN_AI_REQUEST_TEMPERATURE] == 0.7 and span.parent is None


def test_mistral_stream(server, otel, config):
    chunks = list(mistral(server).stream("hello", config=config))
    assert len(chunks) > 2
    span, record = assert_mistral_call(otel, MISTRAL_STREAM, streamed=True)
    assert record.ttft_ms is not None and span.attributes[sc.GEN_AI_REQUEST_STREAM] is True


@pytest.mark.parametrize("how", ["invoke", "stream"])
def test_mistral_in_a_chain_is_parented_under_the_chain(server, otel, config, how):
    runnable = chain(mistral(server))
    if how == "invoke":
        runnable.invoke({"question": "hi"}, config=config)
    else:
        assert len(list(runnable.stream({"question": "hi"}, config=config))) > 1
    assert_nested_under_chain(otel)
    assert_mistral_call(otel, MISTRAL_INVOKE if how == "invoke" else MISTRAL_STREAM, streamed=how == "stream")


def test_mistral_async(server, otel, config):
    async def main():
        model = mistral(server)  # its httpx.AsyncClient is made here, on this event loop
        await model.ainvoke("hello", config=config)
        async for _ in model.astream("hello", config=config):
            pass

    asyncio.run(main())
    records = otel.sink.records
    assert [r.streamed for r in records] == [False, True]
    assert [r.cache_read_tokens for r in records] == [C, None]
    assert all(r.provider == "mistral_ai" and (r.input_tokens, r.output_tokens) == (P, OUT) for r in records)
    assert all(r.token_accuracy == "exact" for r in records)


def test_mistral_error_is_recorded_and_raised_unchanged(server, otel, config):
    with pytest.raises(httpx.HTTPStatusError) as caught:
        mistral(server, model="fake-error-429").invoke("hello", config=config)
    record = only_record(otel)
    assert record.provider == "mistral_ai"
    assert record.status == "error" and record.error_type == type(caught.value).__qualname__


def test_mistral_without_usage_is_flagged_estimated(server, otel, config):
    mistral(server, model="fake-no-usage").invoke("hello", config=config)
    record = only_record(otel)
    assert record.token_accuracy == "estimated" and "usage_missing" in record.flags


def test_mistral_sdk_instrumentation_does_not_add_a_count(server, otel, config):
    """ChatMistralAI talks httpx, not the mistralai SDK: with our Mistral instrumentation on, still one."""
    instrumentor = MistralAIInstrumentor()
    instrumentor.instrument(telemetry=otel.telemetry)
    try:
        mistral(server).invoke("hello", config=config)
    finally:
        instrumentor.uninstrument()
    assert_mistral_call(otel, MISTRAL_INVOKE)


# ------------------------------------------------------------------------------ privacy canary


PROMPT = "CANARY-LCP-PROMPT-61f0"
SYSTEM = "CANARY-LCP-SYSTEM-a93c"
META = "CANARY-LCP-META-0d2e"
MISTRAL_KEY = "CANARY-LCP-MISTRAL-KEY-7b11"
AWS_KEY_ID = "AKIACANARYLCP4F2E"
AWS_SECRET = "CANARY-LCP-AWS-SECRET-c6d4"
CANARIES = (
    PROMPT,
    SYSTEM,
    META,
    MISTRAL_KEY,
    AWS_KEY_ID,
    AWS_SECRET,
    fake_bedrock.RESPONSE_CANARY,
    fake_mistral.RESPONSE_CANARY,
    "CANARY-LC-TOOLDEF-9c2f",  # the description of test_langchain_privacy's `lookup` tool
)


def _canary_calls(server, handler) -> int:
    """Every kind of run of both packages with canaries in prompts, keys and metadata (the fakes echo
    them into the answers); returns how many model calls were made."""
    config = {"metadata": {"note": META}, "tags": [META]}
    client = boto3.client(
        "bedrock-runtime",
        region_name=REGION,
        endpoint_url=server.url,
        aws_access_key_id=AWS_KEY_ID,
        aws_secret_access_key=AWS_SECRET,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    models = [
        langchain_aws.ChatBedrockConverse(model=SONNET, client=client),
        langchain_aws.ChatBedrock(model_id=SONNET, client=client, region_name=REGION),
        langchain_mistralai.ChatMistralAI(
            model=MISTRAL, endpoint=server.url + "/v1", api_key=MISTRAL_KEY, max_retries=0
        ),
    ]
    messages = [SystemMessage(SYSTEM), HumanMessage(PROMPT)]
    prompt = ChatPromptTemplate.from_messages([("system", SYSTEM), ("user", "{q}")])
    for model in models:
        model.invoke(messages, config=config)
        list(model.stream(messages, config={**config, "callbacks": [handler]}))
        (prompt | model).invoke({"q": PROMPT}, config=config)
    tool_call = langchain_mistralai.ChatMistralAI(
        model="fake-tool", endpoint=server.url + "/v1", api_key=MISTRAL_KEY, max_retries=0
    )
    tool_call.bind_tools([lookup]).invoke(messages, config=config)  # tool-call arguments hold a canary
    with pytest.raises(ClientError):  # ValidationException whose message holds the Bedrock response canary
        langchain_aws.ChatBedrockConverse(model="fake-invalid", provider="anthropic", client=client).invoke(
            messages, config=config
        )
    with pytest.raises(httpx.HTTPStatusError):  # Mistral's error JSON quotes a canary
        langchain_mistralai.ChatMistralAI(
            model="fake-error-400", endpoint=server.url + "/v1", api_key=MISTRAL_KEY, max_retries=0
        ).invoke(messages, config=config)
    return len(models) * 3 + 3


def test_no_bedrock_or_mistral_content_leaves_through_any_channel(server, stack, caplog, capfd):
    tailpipe, spans, metrics, lake = stack  # LangChain, OpenAI and Anthropic instrumented; Bedrock too:
    bedrock = BedrockInstrumentor()
    bedrock.instrument(telemetry=tailpipe.telemetry)
    caplog.set_level(logging.DEBUG)
    try:
        calls = _canary_calls(server, tailpipe.langchain_handler())
        gc.collect()
        assert tailpipe.flush(10)
    finally:
        bedrock.uninstrument()

    finished = spans.get_finished_spans()
    model_spans_ = [s for s in finished if "gen_ai.operation.name" in s.attributes]
    assert len(model_spans_) == calls, "one span per model call"
    assert all("tailpipe.energy.wh" in s.attributes for s in model_spans_)
    written = privacy.lake_bytes(lake)
    assert written.count(b'"integration":"langchain"') == calls, "one record per model call"
    assert b'"provider":"mistral_ai"' in written and b'"region":"aws:eu-central-1"' in written
    logged = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith(("tailpipe", "langchain_core.callbacks"))
    )
    found = privacy.channels(spans=finished, metrics=metrics, lake=written, logs=logged, capfd=capfd)
    privacy.assert_no_canary(found, CANARIES)
    assert "echo" not in found["spans"] and "echo" not in found["lake"], "response text leaked"
