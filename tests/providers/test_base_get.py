"""`providers.base.get` reads SDK objects and JSON dicts alike, and gives what getattr would on pydantic
models (fields, extra fields, properties, missing names) without pydantic's raise-and-catch on a miss."""

from __future__ import annotations

import pytest
from openai.types.chat import ChatCompletionChunk
from pydantic import BaseModel, ConfigDict

from tailpipe_ai.providers.base import get


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str | None = None
    empty: str | None = None

    @property
    def shout(self) -> str:
        return (self.model or "").upper()


class Plain:
    def __init__(self) -> None:
        self.model = "m"

    @property
    def shout(self) -> str:
        return "M"


@pytest.mark.parametrize("obj", [Loose(model="m", type="extra-type"), Plain()], ids=["pydantic", "plain"])
def test_fields_properties_and_misses_match_getattr(obj):
    for name in ("model", "shout", "type", "missing", "empty"):
        expected = getattr(obj, name, None)
        assert get(obj, name) == expected
        assert get(obj, name, "dflt") == ("dflt" if expected is None else expected)


def test_extra_field_seen_on_one_instance_and_missing_on_another():
    assert get(Loose(type="x"), "type") == "x"
    assert get(Loose(), "type") is None  # the per-class answer never hides another instance's extra field
    assert get(Loose(type="y"), "type") == "y"


def test_sdk_chunk_without_type_and_dicts():
    chunk = ChatCompletionChunk.model_validate(
        {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini", "choices": []}
    )
    assert get(chunk, "type") is None and get(chunk, "model") == "gpt-4o-mini"
    assert get({"type": "t", "none": None}, "type") == "t" and get({"none": None}, "none", 0) == 0
    assert get(None, "x", 1) == 1


@pytest.mark.parametrize(
    "obj",
    [
        {"model": "m", "empty": None, "type": "t"},
        Loose(model="m", type="extra-type"),
        Plain(),
        None,
    ],
    ids=["json", "pydantic", "plain", "none"],
)
def test_a_reader_reads_every_name_as_get_does(obj):
    from tailpipe_ai.providers.base import reader

    field = reader(obj)
    for name in ("model", "shout", "type", "missing", "empty"):
        assert field(name) == get(obj, name), name
