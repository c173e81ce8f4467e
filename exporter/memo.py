"""Results remembered per object, for objects that are shared and never changed after they are made."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def identity_memo(fn: Callable[[Any], Any], limit: int = 20_000) -> Callable[[Any], Any]:
    """`fn(obj)` remembered per object (by identity, not equality): an estimate's factors object is
    shared by every call with the same model, region and method, and walking it per record costs more
    than the rest of the work. Each object is kept alive while remembered, so its id is not reused; past
    `limit` objects everything is forgotten at once.

    A closure rather than a class with `__call__`: calling an instance costs CPython a special-method
    lookup and a bound method (measured: twice the instructions of a function call, per record)."""
    seen: dict[int, tuple[Any, Any]] = {}
    lookup = seen.get

    def remembered(obj: Any) -> Any:
        hit = lookup(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        value = fn(obj)
        if len(seen) > limit:
            seen.clear()
        seen[id(obj)] = (obj, value)
        return value

    return remembered
