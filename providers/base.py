"""The provider-neutral result of parsing one response (or one stream event)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

_MISSING = object()


def get(obj: Any, name: str, default: Any = None) -> Any:
    """`obj.name` for SDK objects, `obj[name]` for JSON dicts; `default` when absent or None."""
    if type(obj) is dict:  # the proxy's and the gateway's JSON: first, as the cheapest test
        value = obj.get(name)
        return default if value is None else value
    if obj is None:
        return default
    if isinstance(obj, dict):
        value = obj.get(name, default)
    else:
        # SDK models (pydantic) keep their fields in __dict__; a plain getattr of a missing name makes
        # pydantic raise and catch an AttributeError, which costs microseconds on every stream chunk.
        fields_ = getattr(obj, "__dict__", None)
        if fields_ is not None and name in fields_:
            value = fields_[name]
        elif fields_ is not None and _pydantic_miss(obj, name):
            return default  # the same answer getattr would give, without pydantic's raise and catch
        else:
            value = getattr(obj, name, _MISSING)
            if value is _MISSING:
                return default
    return default if value is None else value


def reader(obj: Any) -> Callable[[str], Any]:
    """`get` bound to `obj`: reads its fields by name, None when absent or None. For a JSON dict it is the
    dict's own `get`, C code at a quarter of the cost of a `get` call, so parsers that read several fields
    of one object take a reader for it (the proxy's and the gateway's JSON)."""
    if type(obj) is dict:
        return obj.get
    return functools.partial(get, obj)


def _pydantic_miss(obj: Any, name: str) -> bool:
    """True when `name` is neither a field, an extra field nor a class attribute of a pydantic model
    (a Chat Completions chunk asked for a Responses event's ``type``, say)."""
    if not _pydantic_without(type(obj), name):
        return False
    extra = getattr(obj, "__pydantic_extra__", None)
    return not extra or name not in extra


@functools.lru_cache(maxsize=4096)
def _pydantic_without(cls: type, name: str) -> bool:
    """`cls` is a pydantic model class and none of its classes defines `name` (one answer per class)."""
    if name.startswith("_") or not hasattr(cls, "__pydantic_fields__"):
        return False  # private attributes live elsewhere: left to getattr
    return not any(name in vars(klass) for klass in cls.__mro__)


def as_int(value: Any) -> int | None:
    """A token count, or None for anything that is not a non-negative whole number."""
    if type(value) is int:
        return value if value >= 0 else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


@dataclass(slots=True)
class CallInfo:
    """Usage and identifiers of one model call, normalised to GenAI semconv.

    ``input_tokens`` includes cached tokens; ``output_tokens`` includes reasoning tokens. Parsers build it
    as ``CallInfo(model, id)``, positionally: a keyword call to a class costs a dict of its keywords.
    """

    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: tuple[str, ...] = ()
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    total_tokens: int | None = None  # only when a source gives nothing but the sum (some third-party spans)
    images: int | None = None
    image_size: str | None = None
    image_quality: str | None = None
    video_seconds: float | None = None
    video_resolution: str | None = None

    def update(self, other: CallInfo) -> None:
        """Take every field `other` knows (later stream events override earlier ones)."""
        for name in _FIELD_NAMES:
            value = getattr(other, name)
            if value is not None and value != ():
                setattr(self, name, value)

    @property
    def has_usage(self) -> bool:
        return self.input_tokens is not None or self.output_tokens is not None or self.total_tokens is not None


_FIELD_NAMES = tuple(f.name for f in fields(CallInfo))
