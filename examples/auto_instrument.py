"""Auto-instrumentation from code (what `opentelemetry-instrument` does), with spans printed.

python examples/auto_instrument.py
"""

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

import tailpipe_ai
from tailpipe_ai.instrumentation.openai import OpenAIInstrumentor
from tailpipe_ai.processor import build_pipeline

provider = TracerProvider()
provider.add_span_processor(build_pipeline(SimpleSpanProcessor(ConsoleSpanExporter())))
trace.set_tracer_provider(provider)
OpenAIInstrumentor().instrument()

from openai import OpenAI  # noqa: E402  (any import order works; shown after set-up for clarity)

client = OpenAI()
client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello!"}])
tailpipe_ai.flush()  # spans are emitted off the request path; flush before shutting the provider down by hand
provider.shutdown()
