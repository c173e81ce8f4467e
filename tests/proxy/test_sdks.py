"""The official SDKs through the proxy: same results as going direct, and exact usage records.

Expected token counts come from the fakes' constants and each provider's documented normalisation
(Anthropic input = input + cache read + cache write; Gemini output = candidates + thoughts)."""

from __future__ import annotations

import anthropic
import openai
import pytest
from google import genai
from google.genai import types
from mistralai.client import Mistral

from tests.fakes import anthropic as fake_anthropic
from tests.fakes import google_genai as fake_gemini
from tests.fakes import mistralai as fake_mistral
from tests.fakes import openai as fake_openai

MESSAGES = [{"role": "user", "content": "hello there"}]


def _tokens(record):
    return {
        "input": record.input_tokens,
        "output": record.output_tokens,
        "cache_read": record.cache_read_tokens,
        "reasoning": record.reasoning_tokens,
    }


def _openai(base):
    return openai.OpenAI(api_key="sk-test", base_url=base + "/v1", max_retries=0)


def _anthropic(base):
    return anthropic.Anthropic(api_key="sk-ant-test", base_url=base, max_retries=0)


def _gemini(base):
    return genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=base))


def _mistral(base):
    return Mistral(api_key="test-key", server_url=base)


OPENAI_CHAT = {
    "input": fake_openai.CHAT_USAGE["prompt_tokens"],
    "output": fake_openai.CHAT_USAGE["completion_tokens"],
    "cache_read": fake_openai.CHAT_USAGE["prompt_tokens_details"]["cached_tokens"],
    "reasoning": fake_openai.CHAT_USAGE["completion_tokens_details"]["reasoning_tokens"],
}
ANTHROPIC = {k: fake_anthropic.EXPECTED[k] for k in ("input", "output", "cache_read", "reasoning")}
GEMINI = {
    "input": fake_gemini.PROMPT,
    "output": fake_gemini.CANDIDATES + fake_gemini.THOUGHTS,
    "cache_read": fake_gemini.CACHED,
    "reasoning": fake_gemini.THOUGHTS,
}
MISTRAL = {
    "input": fake_mistral.PROMPT,
    "output": fake_mistral.COMPLETION,
    "cache_read": fake_mistral.CACHED,
    "reasoning": None,
}


def test_openai_chat(upstream, proxy):
    direct = _openai(upstream.url).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    via = _openai(proxy.route("openai")).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert via.model_dump() == direct.model_dump()
    (record,) = proxy.records
    assert _tokens(record) == OPENAI_CHAT
    assert (record.provider, record.operation, record.integration) == ("openai", "chat", "proxy")
    assert record.request_model == "gpt-4o" and record.response_model == "gpt-4o-2025-01-01"
    assert record.token_accuracy == "exact" and not record.streamed and record.energy_wh > 0


def test_openai_chat_stream_with_usage(upstream, proxy):
    kwargs = dict(model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True})
    direct = [c.model_dump() for c in _openai(upstream.url).chat.completions.create(**kwargs)]
    via = [c.model_dump() for c in _openai(proxy.route("openai")).chat.completions.create(**kwargs)]
    assert via == direct
    (record,) = proxy.records
    assert _tokens(record) == OPENAI_CHAT
    assert record.streamed and record.token_accuracy == "exact" and record.ttft_ms is not None
    assert 0 <= record.ttft_ms <= record.latency_ms


def test_openai_chat_stream_without_usage_is_estimated(upstream, proxy):
    client = _openai(proxy.route("openai"))
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    (record,) = proxy.records
    assert record.token_accuracy == "estimated"
    assert {"usage_missing", "tokens_estimated_from_chunks", "tokens_estimated_from_bytes"} <= set(record.flags)
    sent = upstream.requests[-1].raw
    assert record.input_tokens == len(sent) // 4  # ~4 bytes of request per token
    assert record.output_tokens == len(chunks) + 1  # one per SSE event, [DONE] included
    assert record.response_model == "gpt-4o-2025-01-01"  # from the first chunk


def test_openai_responses_stream(upstream, proxy):
    client = _openai(proxy.route("openai"))
    events = list(client.responses.create(model="gpt-4o", input="hello", stream=True))
    assert events[-1].type == "response.completed"
    (record,) = proxy.records
    usage = fake_openai.RESPONSES_USAGE
    assert _tokens(record) == {
        "input": usage["input_tokens"],
        "output": usage["output_tokens"],
        "cache_read": usage["input_tokens_details"]["cached_tokens"],
        "reasoning": usage["output_tokens_details"]["reasoning_tokens"],
    }
    assert record.streamed and record.token_accuracy == "exact"


def test_openai_error_verbatim(upstream, proxy):
    errors = []
    for base in (upstream.url, proxy.route("openai")):
        with pytest.raises(openai.RateLimitError) as info:
            _openai(base).chat.completions.create(model="fake-error-429", messages=MESSAGES)
        errors.append((info.value.status_code, info.value.body, info.value.response.headers.get("retry-after-ms")))
    assert errors[0] == errors[1]
    (record,) = proxy.records
    assert record.status == "error" and record.error_type == "requests" and record.input_tokens is None


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic(upstream, proxy, stream):
    kwargs = dict(model="claude-sonnet-4-20250514", max_tokens=64, messages=MESSAGES)
    results = []
    for base in (upstream.url, proxy.route("anthropic")):
        client = _anthropic(base)
        if stream:
            with client.messages.stream(**kwargs) as s:
                results.append(([e.model_dump() for e in s], s.get_final_message().model_dump()))
        else:
            results.append(client.messages.create(**kwargs).model_dump())
    assert results[0] == results[1]
    (record,) = proxy.records
    assert _tokens(record) == ANTHROPIC  # message_start and message_delta both carry input: not added twice
    assert record.cache_write_tokens == fake_anthropic.EXPECTED["cache_write"]
    assert record.streamed is stream and record.token_accuracy == "exact"


def test_anthropic_legacy_delta_and_stream_error(proxy):
    client = _anthropic(proxy.route("anthropic"))
    with client.messages.stream(model="fake-legacy-delta", max_tokens=8, messages=MESSAGES) as s:
        s.get_final_message()
    with (
        pytest.raises(anthropic.APIStatusError),
        client.messages.stream(model="fake-stream-error", max_tokens=8, messages=MESSAGES) as s,
    ):
        s.get_final_message()
    legacy, broken = proxy.records
    assert _tokens(legacy) == ANTHROPIC  # output from the delta, input side kept from message_start
    assert broken.status == "error" and broken.error_type == "overloaded_error"


def test_anthropic_error_verbatim(upstream, proxy):
    bodies = []
    for base in (upstream.url, proxy.route("anthropic")):
        with pytest.raises(anthropic.APIStatusError) as info:
            _anthropic(base).messages.create(model="fake-error-529", max_tokens=8, messages=MESSAGES)
        bodies.append((info.value.status_code, info.value.body))
    assert bodies[0] == bodies[1] and bodies[0][0] == 529
    (record,) = proxy.records
    assert record.error_type == "overloaded_error"


@pytest.mark.parametrize("stream", [False, True])
def test_gemini(upstream, proxy, stream):
    results = []
    for base in (upstream.gemini, proxy.route("gemini")):
        client = _gemini(base)
        models = client.models
        if stream:
            chunks = models.generate_content_stream(model="gemini-2.5-flash", contents="hi")
            results.append([c.model_dump(exclude={"sdk_http_response"}) for c in chunks])
        else:
            answer = models.generate_content(model="gemini-2.5-flash", contents="hi")
            results.append(answer.model_dump(exclude={"sdk_http_response"}))  # its Date header differs
    assert results[0] == results[1]
    (record,) = proxy.records
    assert _tokens(record) == GEMINI  # the last cumulative usageMetadata, thoughts added to output
    assert record.provider == "gcp.gemini" and record.request_model == "gemini-2.5-flash"
    assert record.streamed is stream and record.token_accuracy == "exact"


def test_gemini_error_and_no_usage(proxy):
    client = _gemini(proxy.route("gemini"))
    with pytest.raises(genai.errors.APIError):
        client.models.generate_content(model="fake-error-429", contents="hi")
    client.models.generate_content(model="fake-no-usage", contents="hi")
    error, missing = proxy.records
    assert error.error_type == "RESOURCE_EXHAUSTED"
    assert missing.token_accuracy == "estimated" and "usage_missing" in missing.flags


@pytest.mark.parametrize("stream", [False, True])
def test_mistral(upstream, proxy, stream):
    results = []
    for base in (upstream.mistral, proxy.route("mistral")):
        chat = _mistral(base).chat
        if stream:
            results.append([e.model_dump() for e in chat.stream(model="mistral-small-latest", messages=MESSAGES)])
        else:
            results.append(chat.complete(model="mistral-small-latest", messages=MESSAGES).model_dump())
    assert results[0] == results[1]
    (record,) = proxy.records
    assert _tokens(record) == MISTRAL
    assert record.provider == "mistral_ai" and record.streamed is stream


def test_mistral_validation_error(proxy):
    with pytest.raises(Exception) as info:
        _mistral(proxy.route("mistral")).chat.complete(model="fake-error-422", messages=MESSAGES)
    assert "422" in str(info.value) or getattr(info.value, "status_code", None) == 422
    (record,) = proxy.records
    assert record.status == "error" and record.error_type == "http_422"
