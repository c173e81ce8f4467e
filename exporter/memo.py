"""Results remembered per object, for objects that are shared and never changed after they are made."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class IdentityMemo:
    """`fn(obj)` remembered per object (by identity, not equality): an estimate's factors object is
    shared by every call with the same model, region and method, and walking it per record costs more
    than the rest of the work. Each object is kept alive while remembered, so its id is not reused; past
    `limit` objects everything is forgotten at once."""

    __slots__ = ("_fn", "_limit", "_seen")

    def __init__(self, fn: Callable[[Any], Any], limit: int = 20_000) -> None:
        self._fn = fn
        self._limit = limit
        self._seen: dict[int, tuple[Any, Any]] = {}

    def __call__(self, obj: Any) -> Any:
        hit = self._seen.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        value = self._fn(obj)
        if len(self._seen) > self._limit:
            self._seen.clear()
        self._seen[id(obj)] = (obj, value)
        return value
