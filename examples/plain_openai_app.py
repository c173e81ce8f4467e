"""A plain OpenAI app with no tailpipe import. Run it under auto-instrumentation:

    OTEL_TRACES_EXPORTER=console opentelemetry-instrument python examples/plain_openai_app.py

Every call gets a GenAI span with energy and carbon, and a record in the local lake.
"""

from openai import OpenAI

client = OpenAI()
reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello!"}])
stream = client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "Count to three."}], stream=True
)
for chunk in stream:
    _ = chunk.choices[0].delta.content  # the caller sees exactly the chunks it asked for
print("done:", reply.usage.total_tokens, "tokens")
