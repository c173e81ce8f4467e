"""`is_quiet_chunk`: which OpenAI stream chunks the stream proxies may pass without parsing. A chunk it
calls quiet must carry nothing `parse_chunk` would take after the first chunk (no usage, no finish
reason), for SDK objects and JSON dicts alike; anything unexpected is "not quiet" (parsed in full)."""

from __future__ import annotations

import pytest
from openai.types.chat import ChatCompletionChunk
from openai.types.responses import ResponseTextDeltaEvent

from tailpipe_ai.providers import openai as parser

BASE = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def choice(index=0, finish=None, content="x"):
    return {"index": index, "delta": {"content": content}, "finish_reason": finish}


CASES = [
    ({**BASE, "choices": [choice()]}, True),
    ({**BASE, "choices": [choice()], "usage": None}, True),
    ({**BASE, "choices": [choice(finish="stop")]}, False),
    ({**BASE, "choices": [choice(0), choice(1)]}, True),
    ({**BASE, "choices": [choice(0), choice(1, finish="length")]}, False),
    ({**BASE, "choices": [], "usage": USAGE}, False),  # the usage-only chunk
    ({**BASE, "choices": []}, True),  # Azure's content-filter chunk: nothing to take after the first
    ({**BASE, "choices": [choice()], "usage": USAGE}, False),
]


@pytest.mark.parametrize(("data", "quiet"), CASES)
def test_sdk_chunks_and_dicts_agree(data, quiet):
    chunk = ChatCompletionChunk.model_validate(data)
    assert parser.is_quiet_chunk(chunk) is quiet
    assert parser.is_quiet_chunk(data) is quiet
    if quiet:  # nothing a full parse would add after the first chunk
        info = parser.parse_chunk(chunk)
        assert not info.has_usage and info.finish_reasons == ()


def test_unexpected_shapes_are_never_quiet():
    odd = ChatCompletionChunk.model_construct(**{**BASE, "choices": None, "usage": None})
    assert parser.is_quiet_chunk(odd) is False
    missing = ChatCompletionChunk.model_validate({**BASE, "choices": [choice()]})
    del missing.__dict__["usage"]  # a field the SDK object lacks: pydantic raises, the chunk is parsed
    assert parser.is_quiet_chunk(missing) is False
    event = ResponseTextDeltaEvent.model_construct(type="response.output_text.delta", delta="x")
    assert parser.is_quiet_chunk(event) is False
    assert parser.is_quiet_chunk({"type": "response.output_text.delta", "choices": []}) is False
    assert parser.is_quiet_chunk(object()) is False and parser.is_quiet_chunk(None) is False


def test_a_chat_chunk_after_another_class_is_still_read_right():
    event = ResponseTextDeltaEvent.model_construct(type="response.output_text.delta", delta="x")
    finish = ChatCompletionChunk.model_validate({**BASE, "choices": [choice(finish="stop")]})
    for chunk, quiet in ((event, False), (finish, False), (event, False), (finish, False)):
        assert parser.is_quiet_chunk(chunk) is quiet
