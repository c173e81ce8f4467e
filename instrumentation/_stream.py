"""Stream proxies: pass every chunk through unchanged, read usage from chunks, end the span exactly once.

The span ends on exhaustion, on an exception, on `close()`/`aclose()`, on context-manager exit, and when
the caller abandons the stream (early `break` followed by garbage collection). Chunks are never kept:
only the usage fields the provider parser extracts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import wrapt

from tailpipe_ai.providers import CallInfo

from ._telemetry import CallHandle, log_once

ChunkParser = Callable[[Any], "CallInfo | None"]
"""Reads one chunk. It may carry a `quiet` predicate: chunks it accepts after the first one carry nothing
to parse and are never hidden, so the proxies pass them on with that one check (most chunks of a stream)."""
ChunkFilter = Callable[[Any], bool]


class _StreamState:
    """What both proxies share: accumulated usage and the once-only end."""

    __slots__ = ("done", "handle", "hide", "info", "parse", "quiet", "seen")

    def __init__(self, handle: CallHandle, parse: ChunkParser, hide: ChunkFilter | None) -> None:
        self.handle = handle
        self.parse = parse
        self.quiet: ChunkFilter | None = getattr(parse, "quiet", None)
        self.hide = hide
        self.info = CallInfo()
        self.done = False
        self.seen = 0

    def is_quiet(self, chunk: Any) -> bool:
        """True when the chunk needs no parsing (see ChunkParser); never raises."""
        quiet = self.quiet
        try:
            return quiet is not None and self.seen > 0 and quiet(chunk)
        except Exception as exc:
            log_once("stream chunk", exc)
            return False

    def observe(self, chunk: Any) -> bool:
        """Record a chunk; True if the caller must not see it (our injected usage-only chunk)."""
        try:
            if not self.seen:
                self.handle.first_chunk()
            self.seen += 1
            parsed = self.parse(chunk)
            if parsed is not None:
                self.info.update(parsed)
            hide = self.hide
            return hide is not None and hide(chunk)
        except Exception as exc:
            log_once("stream chunk", exc)
            return False

    def end(self, error: BaseException | None = None, *, complete: bool = True) -> None:
        if self.done:
            return
        self.done = True
        flags: tuple[str, ...] = ()
        accuracy = None
        if not complete and not self.info.has_usage:
            flags = ("stream_incomplete",)
            accuracy = "estimated"
        self.handle.finish(self.info, error=error, token_accuracy=accuracy, flags=flags)


class TracedStream(wrapt.ObjectProxy):
    """A synchronous stream (iterator, possibly a context manager) with its span."""

    def __init__(self, wrapped: Any, handle: CallHandle, parse: ChunkParser, hide: ChunkFilter | None = None):
        super().__init__(wrapped)
        self._self_state = _StreamState(handle, parse, hide)

    def __iter__(self):
        # `for chunk in stream` runs this generator: per chunk only a resume and the state's cheap
        # observe(), instead of a Python-level __next__ through the proxy (benchmarks/overhead.py).
        return self._self_chunks()

    def _self_chunks(self):
        state = self._self_state
        observe = state.observe
        try:
            if state.quiet is None:
                for chunk in self.__wrapped__:
                    if not observe(chunk):
                        yield chunk
            else:  # per chunk one cheap check (is_quiet inlined), the full observe() only where needed
                quiet = state.quiet
                first = True
                for chunk in self.__wrapped__:
                    if first:
                        first = False
                    else:
                        try:
                            if quiet(chunk):
                                yield chunk
                                continue
                        except Exception as exc:
                            log_once("stream chunk", exc)
                    if not observe(chunk):
                        yield chunk
        except GeneratorExit:  # the caller stopped this loop; it may iterate again, so the stream's
            raise  # end is left to close(), context exit or garbage collection of the stream itself
        except Exception as exc:
            state.end(exc)
            raise
        state.end()

    def __next__(self):
        state = self._self_state
        while True:
            try:
                chunk = next(self.__wrapped__)
            except StopIteration:
                state.end()
                raise
            except Exception as exc:
                state.end(exc)
                raise
            if state.is_quiet(chunk) or not state.observe(chunk):
                return chunk

    def __enter__(self):
        enter = getattr(self.__wrapped__, "__enter__", None)
        if enter is not None:
            enter()
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            leave = getattr(self.__wrapped__, "__exit__", None)
            return leave(exc_type, exc, tb) if leave is not None else None
        finally:
            self._self_state.end(exc, complete=exc is None and self._self_state.info.has_usage)

    def close(self):
        try:
            closer = getattr(self.__wrapped__, "close", None)
            if closer is not None:
                return closer()
        finally:
            self._self_state.end(complete=self._self_state.info.has_usage)

    def __del__(self):
        with contextlib.suppress(Exception):
            self._self_state.end(complete=self._self_state.info.has_usage)


class TracedAsyncStream(wrapt.ObjectProxy):
    """An asynchronous stream (async iterator, possibly an async context manager) with its span."""

    def __init__(self, wrapped: Any, handle: CallHandle, parse: ChunkParser, hide: ChunkFilter | None = None):
        super().__init__(wrapped)
        self._self_state = _StreamState(handle, parse, hide)

    def __aiter__(self):
        return self

    async def __anext__(self):
        state = self._self_state
        while True:
            try:
                chunk = await self.__wrapped__.__anext__()
            except StopAsyncIteration:
                state.end()
                raise
            except Exception as exc:
                state.end(exc)
                raise
            if state.is_quiet(chunk) or not state.observe(chunk):
                return chunk

    async def __aenter__(self):
        enter = getattr(self.__wrapped__, "__aenter__", None)
        if enter is not None:
            await enter()
        return self

    async def __aexit__(self, exc_type, exc, tb):
        try:
            leave = getattr(self.__wrapped__, "__aexit__", None)
            return await leave(exc_type, exc, tb) if leave is not None else None
        finally:
            self._self_state.end(exc, complete=exc is None and self._self_state.info.has_usage)

    async def close(self):
        try:
            closer = getattr(self.__wrapped__, "close", None) or getattr(self.__wrapped__, "aclose", None)
            if closer is not None:
                result = closer()
                if hasattr(result, "__await__"):
                    await result
        finally:
            self._self_state.end(complete=self._self_state.info.has_usage)

    async def aclose(self):
        await self.close()

    def __del__(self):
        with contextlib.suppress(Exception):
            self._self_state.end(complete=self._self_state.info.has_usage)
