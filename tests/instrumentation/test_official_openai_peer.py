"""With the official OpenTelemetry OpenAI instrumentation (`opentelemetry-instrumentation-openai-v2`) active
and its content capture turned on: no content leaves through our pipeline, and each call has one carbon figure.

Which wins: when our instrumentation traces a call (wrap() or our instrumentor), our span carries the figure
and the peer's span for the same call is forwarded without one. A call only the peer traces gets its figure
on (a copy of) the peer's span, from the CarbonSpanProcessor. Either way one call, one figure, one record at
most (records come from our own spans only).
"""

from __future__ import annotations

import pytest
from openai import OpenAI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tailpipe_ai import TailpipeAI
from tailpipe_ai.exporter.sink import MemorySink
from tailpipe_ai.processor import build_pipeline
from tests.fakes import openai as fake_openai

openai_v2 = pytest.importorskip("opentelemetry.instrumentation.openai_v2", reason="the official instrumentation")

CANARY = "CANARY-OFFICIAL-PEER-5e1b"
MESSAGES = [{"role": "system", "content": CANARY}, {"role": "user", "content": CANARY}]


@pytest.fixture
def official(monkeypatch):
    """The official instrumentation, capturing message content on its spans, on the given tracer provider."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    instrumentors = []

    def start(provider):
        inst = openai_v2.OpenAIInstrumentor()
        inst.instrument(tracer_provider=provider)
        instrumentors.append(inst)

    yield start
    for inst in instrumentors:
        inst.uninstrument()


def _provider(guarded: bool):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(build_pipeline(processor) if guarded else processor)
    return provider, exporter


def test_the_official_instrumentation_really_captures_content_here(fake_server, official):
    """The premise of the next tests: without our pipeline, the peer's spans carry the prompt."""
    fake_openai.install(fake_server)
    provider, exporter = _provider(guarded=False)
    official(provider)
    OpenAI(api_key="sk-test", base_url=fake_server.url + "/v1").chat.completions.create(
        model="gpt-4o", messages=MESSAGES
    )
    dumped = "".join(s.to_json() for s in exporter.get_finished_spans())
    assert CANARY in dumped
    provider.shutdown()


def test_no_content_and_one_figure_per_call_with_the_official_peer(fake_server, official, capfd):
    fake_openai.install(fake_server)
    provider, exporter = _provider(guarded=True)
    official(provider)
    sink = MemorySink()
    tailpipe = TailpipeAI(tracer_provider=provider, sink=sink)
    plain = OpenAI(api_key="sk-test", base_url=fake_server.url + "/v1")  # traced by the peer only
    wrapped = tailpipe.wrap(OpenAI(api_key="sk-test", base_url=fake_server.url + "/v1"))  # by both

    plain.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    wrapped.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    for _ in wrapped.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
        pass
    assert tailpipe.flush(10)
    provider.force_flush()

    spans = exporter.get_finished_spans()
    dumped = "".join(s.to_json() for s in spans)
    assert CANARY not in dumped
    assert CANARY not in "".join(r.encode().decode() for r in sink.records)
    out, err = capfd.readouterr()
    assert CANARY not in out + err

    peer = [s for s in spans if s.instrumentation_scope.name != "tailpipe_ai"]
    ours = [s for s in spans if s.instrumentation_scope.name == "tailpipe_ai"]
    assert len(peer) == 3 and len(ours) == 2  # the peer saw all three calls, we saw the two wrapped ones
    figures = [s for s in spans if "tailpipe.energy.wh" in s.attributes]
    assert len(figures) == 3  # one per call
    assert sorted(s.instrumentation_scope.name == "tailpipe_ai" for s in figures) == [False, True, True]
    assert len(sink.records) == 2
    provider.shutdown()
