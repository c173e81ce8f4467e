"""LangChain: energy and carbon of every model call in a chain, with one callback handler.

    python examples/langchain_chain.py && tailpipe report --by model,team

With OPENAI_API_KEY set it calls OpenAI (or OPENAI_BASE_URL) for real. Without it, ChatOpenAI runs on a
mock transport that answers like the API (usage included), so the example needs no account and no network.
Records (metadata only, never prompts or answers) land in ./tailpipe-lake (or TAILPIPE_LAKE), with
integration "langchain".

For a whole application, `LangChainInstrumentor().instrument()` (or `opentelemetry-instrument`) adds the
handler to every chain and model instead of passing it by hand.
"""

from __future__ import annotations

import json
import os

import httpx2
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from tailpipe_ai import TailpipeAI


def _mock_openai(request: httpx2.Request) -> httpx2.Response:
    """Answer /chat/completions like OpenAI does (shape and usage), echoing nothing of the prompt."""
    body = json.loads(request.content)
    prompt_tokens = 30 + 20 * len(body.get("messages", []))
    message = {"role": "assistant", "content": "A short answer from the mock transport."}
    return httpx2.Response(
        200,
        json={
            "id": "chatcmpl-langchain-example",
            "object": "chat.completion",
            "created": 1_760_000_000,
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 90, "total_tokens": prompt_tokens + 90},
        },
    )


def make_model() -> ChatOpenAI:
    if os.environ.get("OPENAI_API_KEY"):
        return ChatOpenAI(model="gpt-4o-mini")
    return ChatOpenAI(
        model="gpt-4o-mini",
        api_key="sk-example",
        http_client=httpx2.Client(transport=httpx2.MockTransport(_mock_openai)),
    )


def main() -> None:
    tailpipe = TailpipeAI()
    handler = tailpipe.langchain_handler()  # reads usage and model names only
    prompt = ChatPromptTemplate.from_messages([("system", "Answer in one sentence."), ("user", "{question}")])
    chain = prompt | make_model() | StrOutputParser()

    with tailpipe.tags(team="search", feature="answer"):
        chain.invoke({"question": "What is a tailpipe?"}, config={"callbacks": [handler]})
    with tailpipe.tags(team="support"):
        questions = [{"question": "How do I reset my password?"}, {"question": "Where is my invoice?"}]
        chain.batch(questions, config={"callbacks": [handler]})

    tailpipe.flush()
    lake = os.environ.get("TAILPIPE_LAKE", "./tailpipe-lake")
    print(f"3 LangChain model calls captured into {lake}; now run: tailpipe report --by model,team")


if __name__ == "__main__":
    main()
