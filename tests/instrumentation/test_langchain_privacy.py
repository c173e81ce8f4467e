"""The privacy canary test for LangChain: callbacks receive prompts, messages, tool payloads and
generations; prove none of it leaves.

Canaries go into the user prompt, the system message, a tool's definition and (through the fakes' echo)
the responses and the tool-call arguments, the API key, and the run's metadata and tags. Runs go through
the injected handler and a handler passed by hand, sync, async and streamed, in a chain and direct, with
our SDK instrumentation on (so the SDK call hands its data to the LangChain run) and an error path.
Then every byte that left is searched: exported spans, metric points, the lake's files, our logs (and
LangChain's callback-error logs, which would print our exceptions), stdout and stderr.
"""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

pytest.importorskip("langchain_core")
langchain_openai = pytest.importorskip("langchain_openai")
langchain_anthropic = pytest.importorskip("langchain_anthropic")

from langchain_core.messages import HumanMessage, SystemMessage  # noqa: E402
from langchain_core.output_parsers import StrOutputParser  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate  # noqa: E402
from langchain_core.tools import tool  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from tailpipe_ai import TailpipeAI  # noqa: E402
from tailpipe_ai.instrumentation.anthropic import AnthropicInstrumentor  # noqa: E402
from tailpipe_ai.instrumentation.langchain import LangChainInstrumentor  # noqa: E402
from tailpipe_ai.instrumentation.openai import OpenAIInstrumentor  # noqa: E402
from tailpipe_ai.processor import build_pipeline  # noqa: E402
from tests import privacy  # noqa: E402
from tests.fakes import anthropic as fake_anthropic  # noqa: E402
from tests.fakes import openai as fake_openai  # noqa: E402
from tests.fakes.server import FakeServer  # noqa: E402

PROMPT = "CANARY-LC-PROMPT-5e1a"
SYSTEM = "CANARY-LC-SYSTEM-0b7d"
TOOL = "CANARY-LC-TOOLDEF-9c2f"
KEY = "sk-CANARY-LC-KEY-d41e"
META = "CANARY-LC-META-73b0"
CANARIES = (PROMPT, SYSTEM, TOOL, KEY, META)


@tool
def lookup(query: str) -> str:
    """CANARY-LC-TOOLDEF-9c2f: look something up."""
    return query


@pytest.fixture
def stack(tmp_path):
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(build_pipeline(SimpleSpanProcessor(spans)))
    metrics = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[metrics])
    tailpipe = TailpipeAI(lake=tmp_path, tracer_provider=tracer_provider, meter_provider=meter_provider)
    instrumentors = [LangChainInstrumentor(), OpenAIInstrumentor(), AnthropicInstrumentor()]
    for inst in instrumentors:
        inst.instrument(telemetry=tailpipe.telemetry)
    yield tailpipe, spans, metrics, tmp_path
    for inst in instrumentors:
        inst.uninstrument()
    tracer_provider.shutdown()
    meter_provider.shutdown()


def _calls(openai_url: str, anthropic_url: str, handler) -> int:
    """Every kind of run, with canaries everywhere; returns how many model calls were made."""
    config = {"metadata": {"note": META}, "tags": [META], "run_name": "answer"}
    gpt = langchain_openai.ChatOpenAI(model="gpt-4o-mini", base_url=openai_url, api_key=KEY, max_retries=0)
    claude = langchain_anthropic.ChatAnthropic(
        model="claude-sonnet-4-5", base_url=anthropic_url, api_key=KEY, max_retries=0
    )
    messages = [SystemMessage(SYSTEM), HumanMessage(PROMPT)]
    prompt = ChatPromptTemplate.from_messages([("system", SYSTEM), ("user", "{q}")])
    for model in (gpt, claude):
        model.invoke(messages, config=config)
        model.bind_tools([lookup]).invoke(messages, config=config)  # the answer is a tool call echoing PROMPT
        list(model.stream(messages, config={**config, "callbacks": [handler]}))
        (prompt | model | StrOutputParser()).invoke({"q": PROMPT}, config=config)

    async def run_async():
        await gpt.ainvoke(messages, config=config)
        async for _ in claude.astream(messages, config=config):
            pass

    asyncio.run(run_async())
    import openai

    with pytest.raises(openai.BadRequestError):
        langchain_openai.ChatOpenAI(model="fake-error-400", base_url=openai_url, api_key=KEY, max_retries=0).invoke(
            messages, config=config
        )
    return 4 * 2 + 2 + 1


def test_no_langchain_content_leaves_through_any_channel(stack, caplog, capfd, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE", "content")
    tailpipe, spans, metrics, lake = stack
    caplog.set_level(logging.DEBUG)
    with FakeServer() as openai_server, FakeServer() as anthropic_server:
        fake_openai.install(openai_server)
        fake_anthropic.install(anthropic_server)
        calls = _calls(openai_server.url + "/v1", anthropic_server.url, tailpipe.langchain_handler())
        gc.collect()
        assert tailpipe.flush(10)

    finished = spans.get_finished_spans()
    model_spans = [s for s in finished if "gen_ai.operation.name" in s.attributes]
    assert len(model_spans) == calls, "one span per model call"
    assert all("tailpipe.energy.wh" in s.attributes for s in model_spans)
    assert any(s.name == "chain answer" for s in finished)  # the run_name given in the config
    written = privacy.lake_bytes(lake)
    assert written.count(b'"integration":"langchain"') == calls, "one record per model call"
    logged = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith(("tailpipe", "langchain_core.callbacks"))
    )
    found = privacy.channels(spans=finished, metrics=metrics, lake=written, logs=logged, capfd=capfd)
    privacy.assert_no_canary(found, CANARIES)
    assert "echo" not in found["spans"] and "echo" not in found["lake"], "response text leaked"
