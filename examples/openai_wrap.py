"""The 3-line integration: wrap one OpenAI client; use it as normal.

    OPENAI_API_KEY=... python examples/openai_wrap.py
    (OPENAI_BASE_URL points it at any OpenAI-compatible server, e.g. the tests' fake server)

Records (metadata only) land in ./tailpipe-lake/records/ (or TAILPIPE_LAKE).
"""

from openai import OpenAI

from tailpipe_ai import TailpipeAI

tailpipe = TailpipeAI()  # api_key="tp_..." or TAILPIPE_API_KEY when sending to a tailpipe gateway
client = tailpipe.wrap(OpenAI())

with tailpipe.tags(team="search", feature="answer"):
    response = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hello!"}],
    )
print("tokens:", response.usage.prompt_tokens, "in /", response.usage.completion_tokens, "out")
tailpipe.flush()
