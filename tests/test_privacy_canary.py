"""The privacy canary test across the four SDKs, through the full pipeline, with a content-capturing
third-party instrumentation active.

Canary strings go into prompts, system prompts, tool arguments, API keys and (through the fakes' echo)
responses and error messages. A simulated third-party GenAI instrumentation puts the same strings on its
spans (OpenLLMetry and official-style content attributes and events), as instrumentations with content
capture turned on do. Then every byte that left is searched: exported spans, metric points, the lake's
record files, logs and stderr.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tailpipe_ai import TailpipeAI
from tailpipe_ai.processor import build_pipeline
from tests import privacy
from tests.fakes import anthropic as fake_anthropic
from tests.fakes import google_genai as fake_gemini
from tests.fakes import mistralai as fake_mistral
from tests.fakes import openai as fake_openai
from tests.fakes.server import FakeServer

PROMPT = "CANARY-PROMPT-91d2"
SYSTEM = "CANARY-SYSTEM-4be0"
TOOL = "CANARY-TOOLARG-77aa"
KEY = "sk-CANARY-KEY-3c1f"
CANARIES = (PROMPT, SYSTEM, TOOL, KEY, fake_gemini.RESPONSE_CANARY, fake_mistral.RESPONSE_CANARY)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": TOOL,
            "parameters": {"type": "object", "properties": {TOOL: {"type": "string"}}},
        },
    }
]


@pytest.fixture(scope="module")
def server():
    with FakeServer() as s:
        fake_anthropic.install(s)  # before OpenAI's catch-all /v1/ route
        fake_openai.install(s)
        gemini_url = fake_gemini.install(s, "/gemini")
        mistral_url = fake_mistral.install(s, "/mistral")
        s.gemini_url, s.mistral_url = gemini_url, mistral_url
        yield s


@pytest.fixture
def stack(tmp_path):
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(build_pipeline(SimpleSpanProcessor(spans)))
    metrics = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[metrics])
    tailpipe = TailpipeAI(
        lake=tmp_path, tracer_provider=tracer_provider, meter_provider=meter_provider, tags={"team": "canary-safe"}
    )
    third_party = tracer_provider.get_tracer("opentelemetry.instrumentation.some_llm_instrumentation")
    yield tailpipe, third_party, spans, metrics, tmp_path
    tracer_provider.shutdown()
    meter_provider.shutdown()


def content_span(tracer):
    """What a content-capturing peer instrumentation emits around a call."""
    span = tracer.start_span(
        "chat gpt-4o",
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.prompt.0.content": PROMPT,
            "gen_ai.completion.0.content": fake_gemini.RESPONSE_CANARY,
            "gen_ai.input.messages": json.dumps([{"role": "system", "content": SYSTEM}]),
            "gen_ai.system_instructions": SYSTEM,
            "traceloop.entity.input": TOOL,
            "llm.prompts": PROMPT,
            "gen_ai.usage.prompt_tokens": 10,
            "gen_ai.usage.completion_tokens": 5,
        },
    )
    span.add_event("gen_ai.user.message", {"content": PROMPT})
    span.add_event("gen_ai.choice", {"message": fake_mistral.RESPONSE_CANARY})
    span.record_exception(RuntimeError(f"provider said: {PROMPT}"))
    return span


def run_openai(tailpipe, server):
    from openai import OpenAI

    client = tailpipe.wrap(OpenAI(api_key=KEY, base_url=server.url + "/v1"))
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    client.chat.completions.create(model="gpt-4o", messages=msgs, tools=TOOLS)
    for _ in client.chat.completions.create(model="gpt-4o", messages=msgs, stream=True):
        break
    client.embeddings.create(model="text-embedding-3-small", input=PROMPT)
    import openai

    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="fake-error-400", messages=msgs)


def run_anthropic(tailpipe, server):
    from anthropic import Anthropic

    client = tailpipe.wrap(Anthropic(api_key=KEY, base_url=server.url))
    msgs = [{"role": "user", "content": PROMPT}]
    client.messages.create(
        model="claude-sonnet-4-20250514",
        max_tokens=100,
        system=SYSTEM,
        messages=msgs,
        tools=[{"name": "lookup", "description": TOOL, "input_schema": {"type": "object"}}],
    )
    with client.messages.stream(model="claude-sonnet-4-20250514", max_tokens=100, system=SYSTEM, messages=msgs) as s:
        for _ in s.text_stream:
            pass


def run_gemini(tailpipe, server):
    from google import genai
    from google.genai import types

    client = tailpipe.wrap(genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=server.gemini_url)))
    config = types.GenerateContentConfig(system_instruction=SYSTEM)
    client.models.generate_content(model="gemini-2.5-flash", contents=PROMPT, config=config)
    for _ in client.models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT, config=config):
        pass
    asyncio.run(client.aio.models.generate_content(model="fake-tool", contents=TOOL, config=config))


def run_mistral(tailpipe, server):
    from mistralai.client import Mistral

    client = tailpipe.wrap(Mistral(api_key=KEY, server_url=server.mistral_url))
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    client.chat.complete(model="mistral-small-latest", messages=msgs)
    client.chat.complete(model="fake-tool", messages=msgs, tools=TOOLS)
    for _ in client.chat.stream(model="mistral-small-latest", messages=msgs):
        pass
    from mistralai.client import errors

    with pytest.raises(errors.SDKError):
        client.chat.complete(model="fake-error-500", messages=msgs)


@pytest.mark.parametrize("run", [run_openai, run_anthropic, run_gemini, run_mistral])
def test_no_canary_leaves_through_any_channel(run, server, stack, caplog, capfd, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE", "content")
    tailpipe, third_party, spans, metrics, lake = stack
    caplog.set_level(logging.DEBUG)
    peer = content_span(third_party)
    from opentelemetry import trace

    with trace.use_span(peer, end_on_exit=True):
        run(tailpipe, server)
    gc.collect()
    assert tailpipe.flush(10)

    ours = [s for s in spans.get_finished_spans() if s.instrumentation_scope.name == "tailpipe_ai"]
    assert ours, "the SDK calls produced spans"
    assert all("tailpipe.energy.wh" in s.attributes for s in ours)
    written = privacy.lake_bytes(lake)
    assert written.count(b"\n") >= 1, "records were written"
    # Our loggers only: the SDKs' own DEBUG logs print whole requests, which is their business.
    ours_logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("tailpipe"))
    found = privacy.channels(
        spans=spans.get_finished_spans(), metrics=metrics, lake=written, logs=ours_logged, capfd=capfd
    )
    privacy.assert_no_canary(found, CANARIES)
