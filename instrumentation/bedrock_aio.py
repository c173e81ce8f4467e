"""The aiobotocore half of the Bedrock instrumentation: async ``bedrock-runtime`` clients.

aiobotocore's ``AioBaseClient`` subclasses botocore's ``BaseClient`` and overrides ``_make_api_call`` with
a coroutine, so the class-level wrap of botocore never sees its calls. `wrapper` is the same wrapper made
async; what a call is, how its response is read and what the span says all come from `bedrock` (one
piece of knowledge, one place). Only the I/O differs:

- Event streams (ConverseStream, InvokeModelWithResponseStream) are ``AioEventStream``s, iterated with
  ``async for``; they get `TracedAsyncStream`, with botocore's synchronous ``close()`` kept.
- The InvokeModel body is an async ``StreamingBody`` (aiohttp or httpx). It is read once with ``await``
  and replaced by a subclass of its class over the same bytes, so ``read()``, ``read(n)``, ``readinto``,
  ``async for``, ``iter_chunks``, ``iter_lines`` and ``async with`` give the caller exactly what Bedrock
  sent. A failed read is replayed: the bytes that arrived, then the same exception.

Imported only when aiobotocore is installed.
"""

from __future__ import annotations

import io
from typing import Any

import wrapt
from aiobotocore import response as aio_response
from aiobotocore.client import AioBaseClient

from . import bedrock
from ._context import enter_call, exit_call
from ._stream import TracedAsyncStream
from ._telemetry import log_once

__all__ = ["AioBaseClient", "wrapper"]


def wrapper(get_telemetry):
    """The async twin of `bedrock._wrapper`, for ``AioBaseClient._make_api_call``."""

    async def call(wrapped, instance, args, kwargs):
        spec, handle = bedrock.begin(get_telemetry, wrapped, instance, args, kwargs)
        if handle is None:
            return await wrapped(*args, **kwargs)
        token = enter_call()
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:  # ClientError (throttling, validation, ...): same error for the caller
            handle.finish(None, error=exc)
            raise
        finally:
            exit_call(token)
        try:
            taken = await _take_body(result, bedrock.body_to_read(spec, result, _BODY_TYPES))
        except Exception as exc:  # a bug of ours, never the read's (that is kept): the call goes on
            log_once("bedrock_aio.body", exc)
            taken = None
        except BaseException as exc:  # cancelled while we read the body: the caller gets the cancellation
            handle.finish(None, error=exc)
            raise
        return bedrock.complete(spec, handle, result, taken, _traced_event_stream)

    return call


# ---------------------------------------------------------------------------------------------------------
# event streams
# ---------------------------------------------------------------------------------------------------------


def _traced_event_stream(stream: Any, handle: Any, parse: Any) -> Any:
    return _TracedEventStream(_AwaitableEvents(stream), handle, parse)


class _AwaitableEvents(wrapt.ObjectProxy):
    """An AioEventStream with an awaitable ``__anext__``: aiobotocore's is an async generator function (only
    ``async for`` works on the stream), and TracedAsyncStream awaits ``__anext__``. Everything else, class
    included, is the stream's."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._self_events = None

    async def __anext__(self):
        if self._self_events is None:
            self._self_events = self.__wrapped__.__aiter__()
        return await self._self_events.__anext__()


class _TracedEventStream(TracedAsyncStream):
    """TracedAsyncStream with the event stream's synchronous ``close()`` (botocore's), so a caller's
    ``stream.close()`` still closes it rather than making a coroutine nobody awaits."""

    def close(self):
        try:
            return self.__wrapped__.close()
        finally:
            self._self_state.end(complete=self._self_state.info.has_usage)

    async def aclose(self):
        self.close()


# ---------------------------------------------------------------------------------------------------------
# InvokeModel: read the async body once, hand the caller an identical one
# ---------------------------------------------------------------------------------------------------------


async def _take_body(result: Any, body: Any) -> bedrock.Taken | None:
    """Read `body` and put a subclass of its class over the same bytes in its place; (bytes, read failed).
    A failed read is kept for the caller, never raised here; None (unread) for no body or one we lack."""
    replacement = _replacement_class(body) if body is not None else None
    if replacement is None:
        return None
    parts: list[bytes] = []
    error: Exception | None = None
    try:
        while True:
            part = await body.read(bedrock._READ_CHUNK)
            if not part:
                break
            parts.append(part)
    except Exception as exc:
        error = exc
    data = b"".join(parts)
    new = replacement(body.raw_stream, len(data))
    new._tailpipe_data = io.BytesIO(data)
    new._tailpipe_error = error
    result["body"] = new
    return data, error is not None


class _Buffered:
    """The I/O of an aiobotocore body over bytes already read, and the read's error replayed after them.
    Mixed into each body class, whose iteration, line splitting and ``async with`` run on this ``read``."""

    _tailpipe_data: io.BytesIO
    _tailpipe_error: BaseException | None

    async def read(self, amt=None):
        data = self._tailpipe_data
        if amt is None or amt < 0:
            self._tailpipe_raise()  # a read-all failed as a whole, as it did for us
            chunk = data.read()
        else:
            chunk = data.read(amt)
            if not chunk and amt > 0:
                self._tailpipe_raise()
        self._amount_read += len(chunk)
        if amt is None or (not chunk and amt > 0):
            self._verify_content_length()
        return chunk

    async def readinto(self, b):
        chunk = await self.read(len(b))
        b[: len(chunk)] = chunk
        return len(chunk)

    def readable(self):
        data = self._tailpipe_data
        return self._tailpipe_error is not None or data.tell() < len(data.getbuffer())

    def _tailpipe_raise(self) -> None:
        error, self._tailpipe_error = self._tailpipe_error, None
        if error is not None:
            raise error


def _buffered_classes() -> dict[type, type]:
    """Our replacement class for each aiobotocore body class (aiohttp's, httpx's) this version has. Only
    bodies built on ``AioStreamingBodyBase`` have the layout `_Buffered` relies on; bodies of releases
    without it get none, so they are left unread."""
    root = getattr(aio_response, "AioStreamingBodyBase", None)
    classes: dict[type, type] = {}
    for name in ("AioStreamingBody", "AioHttpxStreamingBody"):
        base = getattr(aio_response, name, None)
        if root is not None and isinstance(base, type) and issubclass(base, root):
            classes[base] = type(
                f"Buffered{name}", (_Buffered, base), {"__doc__": _Buffered.__doc__, "__module__": __name__}
            )
    return classes


_REPLACEMENTS = _buffered_classes()
_BODY_TYPES = tuple(_REPLACEMENTS)  # other (older) bodies are left unread: usage from the headers alone


def _replacement_class(body: Any) -> type | None:
    return next((_REPLACEMENTS[c] for c in type(body).__mro__ if c in _REPLACEMENTS), None)
