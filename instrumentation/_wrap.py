"""Wrapper factories shared by the instrumentors: one sync and one async wrapt wrapper per SDK method.

An instrumentor supplies `describe(instance, args, kwargs) -> CallSpec | None` (metadata of the request,
possibly adjusted kwargs) and parsers for the response and stream chunks. The factories add the
span/metrics/record machinery and the never-break-the-caller discipline.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tailpipe_ai.providers import CallInfo

from ._context import enter_call, exit_call, in_call
from ._stream import ChunkFilter, ChunkParser, TracedAsyncStream, TracedStream
from ._telemetry import Telemetry, log_once, suppressed


@dataclass(slots=True)
class CallSpec:
    """What an instrumentor knows about a request before it is sent (metadata only)."""

    provider: str
    operation: str
    model: str | None
    server: tuple[str | None, int | None] = (None, None)
    stream: bool = False
    request: Mapping[str, Any] = field(default_factory=dict)
    output_type: str | None = None
    region: str | None = None
    kwargs: dict[str, Any] | None = None  # replacement kwargs (e.g. stream_options injected), else None
    hide: ChunkFilter | None = None  # chunks the caller must not see (our injected usage-only chunk)
    context: Any = None  # anything the parsers need from the request (e.g. requested image size)


Describe = Callable[[Any, tuple, dict], "CallSpec | None"]
ParseResponse = Callable[[Any, CallSpec], "CallInfo | None"]
ParseChunkFactory = Callable[[CallSpec], ChunkParser]
GetTelemetry = Callable[[], "Telemetry | None"]


@functools.lru_cache(maxsize=256)
def known_region(spec: str | None) -> str | None:
    """`spec` (e.g. 'aws:eu-west-1') if the carbon engine knows it, else None: an unknown region would cost the
    call its estimate, so instrumentors only put regions the engine can use on a call."""
    if not spec:
        return None
    try:
        from tailpipe_ai.carbon import resolve_region

        resolve_region(spec)
        return spec
    except Exception:
        return None


def begin_call(get_telemetry: GetTelemetry, describe: Describe, instance: Any, args: tuple, kwargs: dict):
    """(spec, handle) for a call we trace, or (None, None) to pass it through untouched. Public for
    instrumentors that start a call themselves (stream helpers that send on __enter__)."""
    if in_call() or suppressed():
        return None, None
    telemetry = get_telemetry()
    if telemetry is None:
        return None, None
    try:
        spec = describe(instance, args, kwargs)
        if spec is None:
            return None, None
        handle = telemetry.start(
            provider=spec.provider,
            operation=spec.operation,
            model=spec.model,
            server=spec.server,
            stream=spec.stream,
            request=spec.request,
            output_type=spec.output_type,
            region=spec.region,
        )
        return spec, handle
    except Exception as exc:
        log_once(f"{describe.__module__}.describe", exc)
        return None, None


def _complete(
    spec: CallSpec, handle, result: Any, parse: ParseResponse, parse_chunk: ParseChunkFactory | None, is_async: bool
) -> Any:
    try:
        if spec.stream and parse_chunk is not None:
            proxy = TracedAsyncStream if is_async else TracedStream
            return proxy(result, handle, parse_chunk(spec), spec.hide)
        handle.finish(parse(result, spec))
    except Exception as exc:
        log_once(f"{parse.__module__}.parse", exc)
        handle.finish(None, flags=("usage_unreadable",))
    return result


def sync_wrapper(
    get_telemetry: GetTelemetry, describe: Describe, parse: ParseResponse, parse_chunk: ParseChunkFactory | None = None
):
    """A wrapt wrapper for a synchronous SDK method."""

    def wrapper(wrapped, instance, args, kwargs):
        spec, handle = begin_call(get_telemetry, describe, instance, args, kwargs)
        if handle is None:
            return wrapped(*args, **kwargs)
        token = enter_call()
        try:
            result = wrapped(*args, **(spec.kwargs if spec.kwargs is not None else kwargs))
        except BaseException as exc:
            handle.finish(None, error=exc)
            raise
        finally:
            exit_call(token)
        return _complete(spec, handle, result, parse, parse_chunk, is_async=False)

    return wrapper


def async_wrapper(
    get_telemetry: GetTelemetry, describe: Describe, parse: ParseResponse, parse_chunk: ParseChunkFactory | None = None
):
    """A wrapt wrapper for an `async def` SDK method (the coroutine is awaited inside)."""

    async def wrapper(wrapped, instance, args, kwargs):
        spec, handle = begin_call(get_telemetry, describe, instance, args, kwargs)
        if handle is None:
            return await wrapped(*args, **kwargs)
        token = enter_call()
        try:
            result = await wrapped(*args, **(spec.kwargs if spec.kwargs is not None else kwargs))
        except BaseException as exc:
            handle.finish(None, error=exc)
            raise
        finally:
            exit_call(token)
        return _complete(spec, handle, result, parse, parse_chunk, is_async=True)

    return wrapper


class MethodPatches:
    """What an instrumentor patched, so that `_uninstrument` undoes exactly that and nothing else."""

    def __init__(self) -> None:
        self._patched: list[tuple[Any, str]] = []

    def wrap(self, owner: Any, name: str, wrapper: Callable) -> None:
        import wrapt

        wrapt.wrap_function_wrapper(owner, name, wrapper)
        self._patched.append((owner, name))

    def undo(self) -> None:
        from opentelemetry.instrumentation.utils import unwrap

        while self._patched:
            unwrap(*self._patched.pop())
