"""Per-call context: attribution tags and the guard that stops one call being counted twice."""

from __future__ import annotations

import contextvars
import threading
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


# Spans of other GenAI instrumentations that describe a call we also trace (their span wraps ours, or
# starts inside our call): the CarbonSpanProcessor forwards them without a second carbon figure.
_shadowed: set[int] = set()
_shadow_lock = threading.Lock()
_MAX_SHADOWED = 100_000


def shadow(span_id: int) -> None:
    with _shadow_lock:
        if len(_shadowed) >= _MAX_SHADOWED:
            _shadowed.clear()
        _shadowed.add(span_id)


def take_shadow(span_id: int) -> bool:
    """True (once) if the span was marked as describing a call we trace."""
    with _shadow_lock:
        if span_id in _shadowed:
            _shadowed.discard(span_id)
            return True
        return False


# An outer call of ours that an inner one may hand itself to: a LangChain model run around the provider SDK
# call it makes. The first inner call of ours started inside it "claims" it and, when it ends, gives its
# data (exact usage, server, region) to the outer call instead of emitting its own span and record, so
# the call is counted once, by the outermost integration, with the best data of both.
# Entries are objects with `open` (still claimable) and `claim() -> bool`; see instrumentation/langchain.py.
_outer: contextvars.ContextVar[tuple] = contextvars.ContextVar("tailpipe_outer_calls", default=())


def push_outer_call(call: object) -> None:
    _outer.set((*(c for c in _outer.get() if c.open), call))  # type: ignore[attr-defined]


def drop_outer_call(call: object) -> None:
    current = _outer.get()
    if current:
        _outer.set(tuple(c for c in current if c is not call and c.open))  # type: ignore[attr-defined]


def claim_outer_call() -> object | None:
    """The oldest open outer call in this context, now claimed by the caller; None if there is none."""
    for call in _outer.get():
        if call.open and call.claim():  # type: ignore[attr-defined]
            return call
    return None


def in_open_outer_call() -> bool:
    """True inside an outer call not claimed yet (a peer's GenAI span here describes that call)."""
    return any(c.open for c in _outer.get())  # type: ignore[attr-defined]
