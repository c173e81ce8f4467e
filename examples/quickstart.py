"""Quickstart: capture a few model calls into the local lake, then look at them with `tailpipe report`.

    python examples/quickstart.py && tailpipe report --by model,team

With OPENAI_API_KEY set it calls OpenAI for real. Without it, the same official client runs on a mock
transport that answers like the API (usage included), so the quickstart needs no account, no network and
no config. Records (metadata only, never content) land in ./tailpipe-lake (or TAILPIPE_LAKE).
"""

from __future__ import annotations

import json
import os

import httpx2
from openai import OpenAI

from tailpipe_ai import TailpipeAI


def _mock_openai(request: httpx2.Request) -> httpx2.Response:
    """Answer /chat/completions like OpenAI does (shape and usage), echoing nothing of the prompt."""
    body = json.loads(request.content)
    prompt_tokens = 40 + 25 * len(body.get("messages", []))
    return httpx2.Response(
        200,
        json={
            "id": "chatcmpl-quickstart",
            "object": "chat.completion",
            "created": 1_760_000_000,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "Hello from the mock transport."},
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": 120,
                "total_tokens": prompt_tokens + 120,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        },
    )


def make_client() -> OpenAI:
    if os.environ.get("OPENAI_API_KEY"):
        return OpenAI()
    return OpenAI(
        api_key="sk-quickstart",
        base_url="https://api.openai.com/v1",
        http_client=httpx2.Client(transport=httpx2.MockTransport(_mock_openai)),
    )


def main() -> None:
    tailpipe = TailpipeAI()
    client = tailpipe.wrap(make_client())
    for team, model, calls in (("search", "gpt-4o-mini", 5), ("support", "gpt-4o", 3)):
        with tailpipe.tags(team=team):
            for _ in range(calls):
                client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hello!"}])
    tailpipe.flush()
    lake = os.environ.get("TAILPIPE_LAKE", "./tailpipe-lake")
    print(f"8 calls captured into {lake}; now run: tailpipe report --by model,team")


if __name__ == "__main__":
    main()
