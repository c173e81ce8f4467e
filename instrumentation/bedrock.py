"""Instrumentation of Amazon Bedrock Runtime clients made by boto3/botocore, and of aiobotocore's async
clients: ``converse``, ``converse_stream``, ``invoke_model``, ``invoke_model_with_response_stream`` and,
for the video models, ``start_async_invoke``.

Where the hook sits
-------------------
Every botocore client method goes through ``BaseClient._make_api_call(operation_name, api_params)``.
`BedrockInstrumentor` wraps it on the class and passes any call that is not one of the operations above
of a ``bedrock-runtime`` client straight through after two cheap checks, so S3, Firehose or DynamoDB
calls are untouched. ``wrap_client`` puts the same wrapper on one client instance only. Both work for
clients created before instrumentation, which wrapping ``create_client`` would miss.

aiobotocore's ``AioBaseClient`` overrides ``_make_api_call`` with a coroutine, which the wrap of
``BaseClient`` never reaches. When aiobotocore is installed the instrumentor also wraps
``AioBaseClient._make_api_call``, and ``wrap_client`` gives an async client's instance the async wrapper,
both from `bedrock_aio`. That module holds only the async I/O (awaiting the call, the async event stream,
the async body); which calls are traced, what is read and how the span ends are this module's
(`begin`, `describe`, `complete`), shared by both. A call is counted once however many of the wrappers
it passes (the in-call guard).

What is read
------------
- Converse: the ``usage`` block and ``stopReason``. ConverseStream: the stream is replaced by a proxy
  that passes every event through and reads ``metadata.usage`` and ``messageStop`` (content events are
  skipped after two dict lookups); the span ends exactly once on exhaustion, error, ``close()`` or when the
  stream is dropped.
- InvokeModel: the response ``body`` is read once and replaced by a new ``StreamingBody`` over the same
  bytes (for an async client, a subclass of aiobotocore's body class), so what the caller reads is byte for
  byte what Bedrock sent; usage comes from the body by model family (`providers.bedrock`), else from the
  ``x-amzn-bedrock-*-token-count`` headers. Bodies larger than `MAX_BODY_BYTES` are left unread (headers
  only). A failed read is replayed to the caller: it gets the bytes that arrived and then the same
  exception, as it would have without us.
- InvokeModelWithResponseStream: each chunk's bytes are JSON-decoded only when they contain a usage-
  bearing key; the final ``amazon-bedrock-invocationMetrics`` gives the usage of every family.
- Image models (Titan Image, Nova Canvas, Stability): images counted from the response, size and quality
  from the request. StartAsyncInvoke of Nova Reel / Luma Ray: the requested seconds and resolution.

The span carries the client's region (``cloud.region``) and the record ``region = "aws:<region>"``, so the
carbon engine uses that region's PUE and grid intensity. A cross-region inference profile may serve a
call from another region of its geography; the client's (source) region is used.

Nothing here reads prompts, system prompts, messages, tool payloads or generated content into any span,
metric, log or record; credentials are never touched.
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap

from tailpipe_ai.providers import bedrock as parser
from tailpipe_ai.providers.base import CallInfo
from tailpipe_ai.semconv import attributes as sc

from ._context import enter_call, exit_call
from ._stream import TracedStream
from ._telemetry import Telemetry, default_telemetry, log_once, telemetry_from_kwargs
from ._wrap import CallSpec, begin_call, known_region

__all__ = ["BedrockInstrumentor", "wrap_client"]

_instruments = ("botocore >= 1.34.116",)  # the first botocore with the Converse API (2024-05-30)

SERVICE = "bedrock-runtime"
MAX_BODY_BYTES = 64 * 1024 * 1024  # larger InvokeModel bodies are left to the caller unread
_MAX_REQUEST_BYTES = 8 * 1024 * 1024  # image requests parsed for their size and count (not larger ones)
_READ_CHUNK = 1024 * 1024

_CONVERSE, _CONVERSE_STREAM = "Converse", "ConverseStream"
_INVOKE, _INVOKE_STREAM, _ASYNC = "InvokeModel", "InvokeModelWithResponseStream", "StartAsyncInvoke"
OPERATIONS = frozenset({_CONVERSE, _CONVERSE_STREAM, _INVOKE, _INVOKE_STREAM, _ASYNC})

_KIND_OPERATION = {  # providers.bedrock.model_kind -> (gen_ai.operation.name, gen_ai.output.type)
    "chat": (sc.OPERATION_CHAT, sc.OUTPUT_TYPE_TEXT),
    "text_completion": (sc.OPERATION_TEXT_COMPLETION, sc.OUTPUT_TYPE_TEXT),
    "embeddings": (sc.OPERATION_EMBEDDINGS, sc.OUTPUT_TYPE_EMBEDDING),
    "image": (sc.OPERATION_IMAGE_GENERATION, sc.OUTPUT_TYPE_IMAGE),
    "video": (sc.OPERATION_VIDEO_GENERATION, sc.OUTPUT_TYPE_VIDEO),
}
_INFERENCE_CONFIG = (
    ("maxTokens", sc.GEN_AI_REQUEST_MAX_TOKENS),
    ("temperature", sc.GEN_AI_REQUEST_TEMPERATURE),
    ("topP", sc.GEN_AI_REQUEST_TOP_P),
)
log = logging.getLogger("tailpipe_ai")


class BedrockInstrumentor(BaseInstrumentor):
    """Traces Bedrock Runtime model calls of every boto3/botocore client (metadata only).

    ``instrument(telemetry=...)`` (or ``tracer_provider=``/``meter_provider=``), else the process-wide
    default telemetry.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        from botocore.client import BaseClient

        get_telemetry = telemetry_from_kwargs(kwargs)
        wrapt.wrap_function_wrapper(BaseClient, "_make_api_call", _wrapper(get_telemetry))
        aio = _aio()
        if aio is not None:  # AioBaseClient overrides _make_api_call: the wrap above never sees async calls
            wrapt.wrap_function_wrapper(aio.AioBaseClient, "_make_api_call", aio.wrapper(get_telemetry))

    def _uninstrument(self, **kwargs: Any) -> None:
        from botocore.client import BaseClient

        unwrap(BaseClient, "_make_api_call")
        aio = _aio()
        if aio is not None:
            unwrap(aio.AioBaseClient, "_make_api_call")


class _InstanceWrapper(wrapt.FunctionWrapper):
    """The ``_make_api_call`` wrap_client put on one client (its type marks it, so wrapping is idempotent)."""


def wrap_client(client: Any, telemetry: Telemetry | None = None) -> Any:
    """Instrument one ``bedrock-runtime`` client instance (boto3/botocore, or aiobotocore's async client)
    and return it; other clients come back unchanged (with a warning). Wrapping twice is a no-op; with
    `BedrockInstrumentor` also active a call is counted once."""
    if _service(client) != SERVICE:
        log.warning("tailpipe: only bedrock-runtime clients are instrumented; this client is returned unchanged")
        return client
    try:
        if isinstance(vars(client).get("_make_api_call"), _InstanceWrapper):
            return client
        get_telemetry = functools.partial(_same, telemetry) if telemetry is not None else default_telemetry
        aio = _aio()
        make_wrapper = aio.wrapper if aio is not None and isinstance(client, aio.AioBaseClient) else _wrapper
        client._make_api_call = _InstanceWrapper(client._make_api_call, make_wrapper(get_telemetry))
    except Exception as exc:
        log_once("bedrock.wrap_client", exc)
    return client


def _same(telemetry: Telemetry) -> Telemetry:
    return telemetry


def _aio() -> Any:
    """The aiobotocore half (`bedrock_aio`), or None when aiobotocore is not installed."""
    try:
        import aiobotocore.client  # noqa: F401
    except ImportError:
        return None
    from . import bedrock_aio

    return bedrock_aio


# ---------------------------------------------------------------------------------------------------------
# what a call is (model id, numeric parameters, region; never messages, prompts or bodies' content)
# ---------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Request:
    operation: str
    media: parser.MediaRequest | None = None


def _service(client: Any) -> str | None:
    try:
        return client.meta.service_model.service_name
    except Exception:
        return None


def _call_args(args: tuple, kwargs: dict) -> tuple[Any, Any]:
    operation = args[0] if args else kwargs.get("operation_name")
    params = args[1] if len(args) > 1 else kwargs.get("api_params")
    return operation, params


def describe(instance: Any, args: tuple, kwargs: dict) -> CallSpec | None:
    operation, params = _call_args(args, kwargs)
    if not isinstance(params, Mapping):
        return None
    model = params.get("modelId")
    model = model if isinstance(model, str) and model else None
    kind = parser.model_kind(model)
    request: dict[str, Any] = {}
    media = None
    if operation in (_CONVERSE, _CONVERSE_STREAM):
        op, output_type = sc.OPERATION_CHAT, sc.OUTPUT_TYPE_TEXT
        config = params.get("inferenceConfig")
        if isinstance(config, Mapping):
            for key, attr in _INFERENCE_CONFIG:
                value = config.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    request[attr] = value
    elif operation == _ASYNC:
        if kind != "video":
            return None  # an asynchronous job of a non-video model: nothing we can count
        op, output_type = _KIND_OPERATION["video"]
        media = parser.video_request(params.get("modelInput"))
    else:
        op, output_type = _KIND_OPERATION[kind]
        if kind == "image":
            media = parser.image_request(_request_json(params.get("body")))
    region = _region_name(instance)
    if region:
        request[sc.CLOUD_REGION] = region
    return CallSpec(
        provider=sc.PROVIDER_AWS_BEDROCK,
        operation=op,
        model=model,
        server=_server(instance),
        stream=operation in (_CONVERSE_STREAM, _INVOKE_STREAM),
        request=request,
        output_type=output_type,
        region=known_region(f"aws:{region}") if region else None,
        context=_Request(operation, media),
    )


def _request_json(body: Any) -> Any:
    """The JSON of an InvokeModel request body given as bytes or str (a file object is never read)."""
    if isinstance(body, (bytes, bytearray, str)) and len(body) <= _MAX_REQUEST_BYTES:
        return parser.decode_json(body)
    return None


def _region_name(client: Any) -> str | None:
    try:
        region = client.meta.region_name
    except Exception:
        return None
    return region if isinstance(region, str) and region else None


def _server(client: Any) -> tuple[str | None, int | None]:
    try:
        return _server_for(client.meta.endpoint_url)
    except Exception:
        return None, None


@functools.lru_cache(maxsize=64)
def _server_for(url: str) -> tuple[str | None, int | None]:
    parts = urlsplit(url)
    return parts.hostname, parts.port or {"https": 443, "http": 80}.get(parts.scheme)


# ---------------------------------------------------------------------------------------------------------
# the wrapper
# ---------------------------------------------------------------------------------------------------------


def begin(get_telemetry, wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> tuple[Any, Any]:
    """(spec, handle) of a model call of a bedrock-runtime client, else (None, None): every other call
    (other operations, other services, a call already traced) passes through after two cheap checks."""
    client = getattr(wrapped, "__self__", None) or instance
    operation, _ = _call_args(args, kwargs)
    if operation not in OPERATIONS or _service(client) != SERVICE:
        return None, None
    return begin_call(get_telemetry, describe, client, args, kwargs)


def _wrapper(get_telemetry):
    def wrapper(wrapped, instance, args, kwargs):
        spec, handle = begin(get_telemetry, wrapped, instance, args, kwargs)
        if handle is None:
            return wrapped(*args, **kwargs)
        token = enter_call()
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:  # ClientError (throttling, validation, ...): same error for the caller
            handle.finish(None, error=exc)
            raise
        finally:
            exit_call(token)
        body = body_to_read(spec, result, _streaming_body_type())
        return complete(spec, handle, result, _take_body(result, body) if body is not None else None)

    return wrapper


def complete(spec: CallSpec, handle: Any, result: Any, taken: Taken | None = None, traced: Any = TracedStream) -> Any:
    """End the call's span from the response (sync and async clients alike), or hand a stream to `traced`
    (TracedStream, or the async proxy) to end it later. `taken`: the InvokeModel body already read."""
    request: _Request = spec.context
    try:
        if not isinstance(result, dict):
            handle.finish(None, flags=("usage_unreadable",))
        elif request.operation == _CONVERSE_STREAM:
            result["stream"] = traced(result["stream"], handle, parser.ConverseStreamParser())
        elif request.operation == _INVOKE_STREAM:
            result["body"] = traced(result["body"], handle, _InvokeChunks())
        elif request.operation == _CONVERSE:
            handle.finish(parser.parse_converse(result))
        elif request.operation == _INVOKE:
            info, flags = _invoke_usage(result, taken)
            if request.media is not None:
                request.media.apply(info)
            handle.finish(info, flags=flags)
        else:  # StartAsyncInvoke: the video the job was asked for
            info = request.media.apply(CallInfo()) if request.media is not None else CallInfo()
            handle.finish(info)
    except Exception as exc:
        log_once("bedrock.parse", exc)
        handle.finish(None, flags=("usage_unreadable",))
    return result


class _InvokeChunks:
    """InvokeModelWithResponseStream events (``{"chunk": {"bytes": b"..."}}``) -> the payload parser."""

    __slots__ = ("_parse",)

    def __init__(self) -> None:
        self._parse = parser.InvokeStreamParser()

    def __call__(self, event: Any) -> CallInfo | None:
        chunk = event.get("chunk") if isinstance(event, dict) else None
        if chunk is None:
            return None
        return self._parse(chunk.get("bytes"))


# ---------------------------------------------------------------------------------------------------------
# InvokeModel: read the body once, hand the caller an identical one
# ---------------------------------------------------------------------------------------------------------


Taken = tuple[bytes, bool]
"""An InvokeModel body as read by us: (its bytes, whether the read failed)."""


def body_to_read(spec: CallSpec, result: Any, body_types: Any) -> Any:
    """The InvokeModel body to read for its usage, if it is one of `body_types` and at most MAX_BODY_BYTES
    long (by its content-length); else None and usage comes from the headers alone."""
    try:
        if spec.context.operation != _INVOKE or not isinstance(result, dict):
            return None
        body = result.get("body")
        if body_types and isinstance(body, body_types) and _content_length(_headers(result)) <= MAX_BODY_BYTES:
            return body
    except Exception as exc:
        log_once("bedrock.body", exc)
    return None


def _invoke_usage(result: dict, taken: Taken | None) -> tuple[CallInfo, tuple[str, ...]]:
    data, failed = taken if taken is not None else (None, False)
    parsed = parser.decode_json(data) if data else None
    return parser.parse_invoke(parsed, _headers(result)), ("usage_unreadable",) if failed else ()


def _headers(result: dict) -> Mapping[str, Any]:
    return (result.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}


def _streaming_body_type() -> Any:
    try:
        from botocore.response import StreamingBody
    except ImportError:  # pragma: no cover
        return ()
    return StreamingBody


def _content_length(headers: Mapping[str, Any]) -> int:
    value = headers.get("content-length")
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0


def _take_body(result: dict, body: Any) -> Taken:
    """Read `body` and put an identical StreamingBody in its place; (bytes, read failed)."""
    from botocore.response import StreamingBody

    parts: list[bytes] = []
    try:
        while True:
            part = body.read(_READ_CHUNK)
            if not part:
                break
            parts.append(part)
    except Exception as exc:
        data = b"".join(parts)
        result["body"] = StreamingBody(_Replay(data, exc), len(data))
        return data, True
    data = b"".join(parts)
    result["body"] = StreamingBody(io.BytesIO(data), len(data))
    return data, False


class _Replay(io.RawIOBase):
    """The bytes of a body whose read failed, then the same exception: what the caller would have got."""

    def __init__(self, data: bytes, error: BaseException) -> None:
        self._data = io.BytesIO(data)
        self._error: BaseException | None = error

    def readable(self) -> bool:
        return True

    def read(self, amt: int | None = -1) -> bytes:
        if amt is None or amt < 0:  # read-all failed as a whole
            self._raise()
            return self._data.read()
        part = self._data.read(amt)
        if part or amt == 0:
            return part
        self._raise()
        return b""

    def readinto(self, buffer: Any) -> int:
        part = self.read(len(buffer))
        buffer[: len(part)] = part
        return len(part)

    def _raise(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error
