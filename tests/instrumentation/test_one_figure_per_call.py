"""A call traced by us and by another GenAI instrumentation (its span around ours) gets one carbon figure,
with our emission deferred to the telemetry thread."""

from openai import OpenAI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tailpipe_ai import TailpipeAI
from tailpipe_ai.exporter.sink import MemorySink
from tailpipe_ai.processor import build_pipeline
from tests.fakes import openai as fake_openai

PEER = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 300,
}


def test_peer_span_around_our_call_is_not_counted_twice(fake_server):
    fake_openai.install(fake_server)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(build_pipeline(SimpleSpanProcessor(exporter)))
    sink = MemorySink()
    tailpipe = TailpipeAI(tracer_provider=provider, sink=sink)
    client = tailpipe.wrap(OpenAI(api_key="sk-test", base_url=fake_server.url + "/v1"))
    peer = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    with peer.start_as_current_span("chat gpt-4o", kind=trace.SpanKind.CLIENT, attributes=PEER):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert tailpipe.flush(10)
    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    with_energy = [s for s in spans if "tailpipe.energy.wh" in s.attributes]
    assert [s.instrumentation_scope.name for s in with_energy] == ["tailpipe_ai"]
    ours = with_energy[0]
    assert ours.parent is not None and ours.parent.span_id == next(s for s in spans if s is not ours).context.span_id
    assert len(sink.records) == 1
    provider.shutdown()
