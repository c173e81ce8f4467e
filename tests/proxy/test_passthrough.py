"""The proxy is invisible: same status, headers and body bytes as going direct, compressed or not."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.fakes import anthropic as fake_anthropic

from .helpers import gunzip_if, raw_request

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}
MESSAGES = {"model": "claude-sonnet-4-20250514", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
GEMINI = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
MISTRAL = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "hi"}]}

# (route, path under the route, direct path on the fake, body)
CASES = {
    "openai-chat": ("openai", "/v1/chat/completions", "/v1/chat/completions", CHAT),
    "openai-chat-stream": (
        "openai",
        "/v1/chat/completions",
        "/v1/chat/completions",
        {**CHAT, "stream": True, "stream_options": {"include_usage": True}},
    ),
    "openai-responses-stream": (
        "openai",
        "/v1/responses",
        "/v1/responses",
        {"model": "gpt-4o", "input": "hello", "stream": True},
    ),
    "openai-embeddings": (
        "openai",
        "/v1/embeddings",
        "/v1/embeddings",
        {"model": "text-embedding-3-small", "input": "x"},
    ),
    "anthropic": ("anthropic", "/v1/messages?beta=true", "/v1/messages?beta=true", MESSAGES),
    "anthropic-stream": ("anthropic", "/v1/messages?beta=true", "/v1/messages?beta=true", {**MESSAGES, "stream": True}),
    "gemini": (
        "gemini",
        "/v1beta/models/gemini-2.5-flash:generateContent",
        "/gemini/v1beta/models/gemini-2.5-flash:generateContent",
        GEMINI,
    ),
    "gemini-stream": (
        "gemini",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        GEMINI,
    ),
    "mistral": ("mistral", "/v1/chat/completions", "/mistral/v1/chat/completions", MISTRAL),
    "mistral-stream": ("mistral", "/v1/chat/completions", "/mistral/v1/chat/completions", {**MISTRAL, "stream": True}),
    "openai-error": ("openai", "/v1/chat/completions", "/v1/chat/completions", {**CHAT, "model": "fake-error-429"}),
    "anthropic-error": ("anthropic", "/v1/messages", "/v1/messages", {**MESSAGES, "model": "fake-error-529"}),
    "gemini-error": (
        "gemini",
        "/v1beta/models/fake-error-400:generateContent",
        "/gemini/v1beta/models/fake-error-400:generateContent",
        GEMINI,
    ),
    "mistral-error": (
        "mistral",
        "/v1/chat/completions",
        "/mistral/v1/chat/completions",
        {**MISTRAL, "model": "fake-error-422"},
    ),
}
_VOLATILE = {"date", "server"}


@pytest.mark.parametrize("compressed", [False, True], ids=["identity", "gzip"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bytes_identical_to_direct(upstream, proxy, case, compressed):
    route, path, direct_path, body = CASES[case]
    upstream.server.compress = compressed
    headers = {"Accept-Encoding": "gzip"} if compressed else {}
    direct = raw_request(upstream.url + direct_path, body, headers)
    proxied = raw_request(proxy.route(route) + path, body, headers)
    assert proxied[0] == direct[0]
    assert proxied[2] == direct[2]  # the bytes on the wire, compressed ones included
    assert {k: v for k, v in proxied[1].items() if k not in _VOLATILE} == {
        k: v for k, v in direct[1].items() if k not in _VOLATILE
    }
    if compressed:
        assert direct[1]["content-encoding"] == "gzip"
        gunzip_if(direct[1], direct[2])  # really gzip
    records = proxy.records
    assert len(records) == 1
    record = records[0]
    if "error" in case:
        assert record.status == "error" and record.error_type
        assert record.input_tokens is None
    else:
        assert record.status == "ok" and record.token_accuracy == "exact"
        assert record.input_tokens is not None
        assert record.streamed == ("stream" in case)


def test_request_forwarded_verbatim(upstream, proxy):
    """Method, path, query, credentials and beta headers as sent; a gzip body stays compressed; our
    attribution header is removed."""
    raw = gzip.compress(json.dumps(MESSAGES).encode(), mtime=0)
    headers = {
        "x-api-key": "sk-ant-api03-test",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
        "Content-Encoding": "gzip",
        "x-tailpipe-tags": "team=search,project=rag",
        "X-Custom-Thing": "kept",
    }
    status, _, body = raw_request(proxy.route("anthropic") + "/v1/messages?beta=true", raw, headers)
    assert status == 200, body
    seen = upstream.requests[-1]
    assert seen.path == "/v1/messages" and seen.query == {"beta": ["true"]}
    assert seen.raw == raw  # compressed bytes passed as is
    sent = {k.lower(): v for k, v in seen.headers.items()}
    for name, value in headers.items():
        if name != "x-tailpipe-tags":
            assert sent[name.lower()] == value
    assert "x-tailpipe-tags" not in sent
    assert "user-agent" not in sent and sent["accept-encoding"] == "identity"  # as http.client sent them
    record = proxy.records[0]
    assert record.attributes == {"team": "search", "project": "rag"}
    assert record.request_model == MESSAGES["model"]  # read from the compressed body, after the fact
    assert record.input_tokens == fake_anthropic.EXPECTED["input"]


def test_a_multi_megabyte_request_body_is_forwarded_whole(upstream, proxy):
    """Claude Code sends conversations of several megabytes; aiohttp's own default limit is 1 MiB."""
    big = {**MESSAGES, "messages": [{"role": "user", "content": "x" * (6 << 20)}]}
    raw = json.dumps(big).encode()
    status, _, body = raw_request(proxy.route("anthropic") + "/v1/messages", raw)
    assert status == 200, body[:200]
    assert upstream.requests[-1].raw == raw
    assert proxy.records[0].request_model == MESSAGES["model"]


def test_unknown_paths_pass_through_without_records(upstream, proxy):
    status, _, body = raw_request(proxy.route("anthropic") + "/v1/messages/count_tokens", MESSAGES)
    assert status == 200 and json.loads(body) == {"input_tokens": fake_anthropic.COUNT_TOKENS}
    status, _, _ = raw_request(proxy.route("anthropic") + "/api/event_logging/batch", {"events": []})
    assert status == 404  # whatever the upstream says, as it says it
    assert upstream.requests[-1].path == "/api/event_logging/batch"
    status, _, _ = raw_request(proxy.route("openai") + "/v1/models", None, method="GET")
    assert status == 404 and upstream.requests[-1].method == "GET"
    assert proxy.records == []


def test_health_and_unknown_prefix(proxy):
    status, _, body = raw_request(proxy.url + "/healthz", None, method="GET")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, _, body = raw_request(proxy.url + "/cohere/v1/chat", {})
    assert status == 404
    error = json.loads(body)["error"]
    assert error["type"] == "proxy_no_route" and "/openai" in error["message"]
