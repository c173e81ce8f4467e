"""Per-call context: attribution tags and the guard that stops one call being counted twice."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType

_EMPTY: Mapping[str, str] = MappingProxyType({})
_tags: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar("tailpipe_tags", default=_EMPTY)
_in_call: contextvars.ContextVar[bool] = contextvars.ContextVar("tailpipe_in_call", default=False)


def current_tags() -> Mapping[str, str]:
    return _tags.get()


@contextmanager
def tags(**values: str) -> Iterator[None]:
    """Attach cost-attribution tags (team, project, feature, ...) to every call made inside the block."""
    merged = {**_tags.get(), **{k: str(v) for k, v in values.items()}}
    token = _tags.set(merged)
    try:
        yield
    finally:
        _tags.reset(token)


def in_call() -> bool:
    """True inside a call we already trace (a wrapped client inside an instrumented SDK, nested wrappers)."""
    return _in_call.get()


def enter_call() -> contextvars.Token[bool]:
    return _in_call.set(True)


def exit_call(token: contextvars.Token[bool]) -> None:
    _in_call.reset(token)
