"""Instrumentation of the Anthropic SDK: ``messages.create`` (streamed or not), ``messages.parse`` and the
``messages.stream`` helper, sync and async, on ``Anthropic``, ``AnthropicBedrock`` and ``AnthropicVertex``
clients (and the same methods of ``beta.messages``). ``count_tokens`` and the other endpoints are not
model calls and are left alone.

The SDK's own tracing is switched off for the clients we instrument
--------------------------------------------------------------------
anthropic 2.x traces itself (``anthropic/_tracing.py``, scope ``com.anthropic.sdk.python``): every API call
gets a CLIENT span as soon as a tracer provider exists, and its content mode
(``ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE=content`` or the client option
``open_telemetry={"traces": {"content_mode": "content"}}``) puts prompts and answers on it. Keeping that
span next to ours would make two GenAI spans per call, which GenAI-aware backends (and our own carbon
processor) count twice, and it is a content path we do not control. Building on it instead is not
possible without reaching into the SDK's private span plumbing: the span lives inside the SDK's request
loop, ends when the SDK's body wrapper sees the stream end, goes to the SDK's tracer provider rather than
ours, and its attributes differ from semconv (its input tokens exclude cached ones). So:

- ``AnthropicInstrumentor`` replaces the client tracer property (``BaseClient._tracer``) with one that
  returns None, the state the SDK itself is in when ``open_telemetry=False``: no SDK span, no content,
  for every client, until ``uninstrument()`` puts the property back;
- ``wrap_client`` sets the instance's own option to ``traces.enabled = False`` (the SDK's documented
  switch), which copies made with ``with_options``/``copy`` inherit; those copies are wrapped too.

Either way one call gives one span (ours), one carbon figure and no content, whatever the environment
says. The SDK's other spans (tool runner, sessions, count_tokens) and the ``traceparent`` header it sends
for its own span go too. An SDK without ``_tracing`` (anthropic < 2) needs none of this.

The ``messages.stream`` helper sends its request when its context manager is entered, so the span starts
there; the helper's raw event stream is replaced by our `TracedStream`, so ``text_stream``,
``get_final_message()`` and plain iteration all feed the usage parser, and the span ends when the stream
is exhausted, closed, exited or garbage-collected.

``with_raw_response`` calls are read from the body the SDK has already fetched. ``with_streaming_response``
calls, and raw streamed calls, hand the unread body to the caller: they are counted (span, record) with
their usage flagged missing rather than consuming the caller's body.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Collection, Iterator
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap

from tailpipe_ai.providers.anthropic import StreamParser, parse_response
from tailpipe_ai.providers.base import CallInfo, get
from tailpipe_ai.semconv import attributes as sc

from ._context import enter_call, exit_call
from ._stream import TracedAsyncStream, TracedStream
from ._telemetry import Telemetry, log_once, telemetry_from_kwargs
from ._wrap import CallSpec, async_wrapper, begin_call, known_region, sync_wrapper

_instruments = ("anthropic >= 0.40, < 3",)

# Modules holding Messages resources; Bedrock/Vertex beta classes copy the first-party functions at import
# time, so they are wrapped on their own.
_MODULES = (
    "anthropic.resources.messages.messages",
    "anthropic.resources.beta.messages.messages",
    "anthropic.lib.bedrock._beta_messages",
    "anthropic.lib.vertex._beta_messages",
)
_METHODS = (("create", "call"), ("parse", "call"), ("stream", "manager"))
_RAW_HEADER = "X-Stainless-Raw-Response"
_MARK = "_tailpipe_anthropic_telemetry"
_saved_tracer_property: dict[str, property] = {}


class AnthropicInstrumentor(BaseInstrumentor):
    """Traces Anthropic Messages calls (metadata only) and switches the SDK's own spans off."""

    _wrapped: list[tuple[Any, str]]

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        get_telemetry = telemetry_from_kwargs(kwargs)
        self._wrapped = []
        for module, cls, method, kind in list(_targets()):
            is_async = cls.__name__.startswith("Async")
            try:
                wrapt.wrap_function_wrapper(module, f"{cls.__name__}.{method}", _wrapper(get_telemetry, kind, is_async))
                self._wrapped.append((cls, method))
            except Exception as exc:  # an SDK refactor must not break the application
                log_once(f"anthropic.instrument.{method}", exc)
        _sdk_tracing_off()

    def _uninstrument(self, **kwargs: Any) -> None:
        for cls, method in getattr(self, "_wrapped", []):
            unwrap(cls, method)
        self._wrapped = []
        _sdk_tracing_restore()


def wrap_client(client: Any, telemetry: Telemetry) -> Any:
    """Instrument one client instance (its ``messages`` and ``beta.messages``) and return it.

    Idempotent: a client already wrapped is returned as it is. Copies made with ``with_options``/``copy``
    are wrapped with the same telemetry.
    """
    if getattr(client, _MARK, None) is not None:
        return client
    try:
        get_telemetry = functools.partial(_same, telemetry)
        _sdk_tracing_off_for(client)
        for resource in _resources(client):
            is_async = _is_async_resource(resource)
            for method, kind in _METHODS:
                bound = getattr(resource, method, None)
                if callable(bound):
                    setattr(resource, method, wrapt.FunctionWrapper(bound, _wrapper(get_telemetry, kind, is_async)))
        for name in ("copy", "with_options"):
            bound = getattr(client, name, None)
            if callable(bound):
                setattr(client, name, wrapt.FunctionWrapper(bound, _copy_wrapper(telemetry)))
        setattr(client, _MARK, telemetry)
    except Exception as exc:
        log_once("anthropic.wrap_client", exc)
    return client


# ---------------------------------------------------------------------------------------------------------
# what a call is (metadata only: never messages, system prompts or tools)
# ---------------------------------------------------------------------------------------------------------


def describe(instance: Any, args: tuple, kwargs: dict) -> CallSpec:
    client = getattr(instance, "_client", None)
    raw_mode = _raw_mode(kwargs.get("extra_headers"))
    stream = kwargs.get("stream") is True
    request: dict[str, Any] = {}
    for key, attr in (
        ("max_tokens", sc.GEN_AI_REQUEST_MAX_TOKENS),
        ("temperature", sc.GEN_AI_REQUEST_TEMPERATURE),
        ("top_p", sc.GEN_AI_REQUEST_TOP_P),
        ("top_k", sc.GEN_AI_REQUEST_TOP_K),
    ):
        value = kwargs.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            request[attr] = value
    if raw_mode is not None and stream:  # a raw response: the SDK hands back the HTTP body, not a stream
        request[sc.GEN_AI_REQUEST_STREAM] = True
    model = kwargs.get("model")
    return CallSpec(
        provider=_provider(client),
        operation=sc.OPERATION_CHAT,
        model=model if isinstance(model, str) and model else None,
        server=_server(client),
        stream=stream and raw_mode is None,
        request=request,
        output_type=_output_type(kwargs),
        region=_region(client),
        context=raw_mode,
    )


def describe_stream_helper(instance: Any, args: tuple, kwargs: dict) -> CallSpec:
    spec = describe(instance, args, {**kwargs, "stream": True})
    spec.context = None
    return spec


def parse(result: Any, spec: CallSpec) -> CallInfo | None:
    if spec.context is None:
        return parse_response(result)
    # with_raw_response: the SDK returns an APIResponse whose body it has already read; with_streaming_response
    # and raw streams leave the body to the caller, so their usage cannot be read without consuming it.
    http = getattr(result, "http_response", None)
    if spec.context == "raw" and not spec.request.get(sc.GEN_AI_REQUEST_STREAM) and http is not None:
        return parse_response(http.json())
    return None


def _chunk_parser(spec: CallSpec) -> StreamParser:
    return StreamParser()


def _raw_mode(headers: Any) -> str | None:
    if not isinstance(headers, dict):
        return None
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == _RAW_HEADER.lower():
            return str(value)
    return None


def _provider(client: Any) -> str:
    name = getattr(type(client), "_gen_ai_provider_name", None)
    if isinstance(name, str) and name:
        return name
    cls_name = type(client).__name__
    if "Bedrock" in cls_name:
        return sc.PROVIDER_AWS_BEDROCK
    if "Vertex" in cls_name:
        return sc.PROVIDER_GCP_VERTEX_AI
    return sc.PROVIDER_ANTHROPIC


def _server(client: Any) -> tuple[str | None, int | None]:
    url = getattr(client, "base_url", None)
    host = getattr(url, "host", None)
    if not isinstance(host, str) or not host:
        return None, None
    port = getattr(url, "port", None)
    if not isinstance(port, int):
        port = 80 if getattr(url, "scheme", "") == "http" else 443
    return host, port


def _output_type(kwargs: dict) -> str:
    fmt = get(kwargs.get("output_config"), "format")
    given = kwargs.get("output_format")
    if get(fmt, "type") == "json_schema" or (given is not None and isinstance(given, type)):
        return sc.OUTPUT_TYPE_JSON
    return sc.OUTPUT_TYPE_TEXT


def _region(client: Any) -> str | None:
    """Where the model runs, when the client says: a Bedrock (or AWS) region, a Vertex AI region."""
    aws = getattr(client, "aws_region", None)
    if isinstance(aws, str) and aws:
        return known_region(f"aws:{aws}")
    if _provider(client) == sc.PROVIDER_GCP_VERTEX_AI:
        try:
            region = client.region  # BaseVertexClient.region raises when unset
        except Exception:
            return None
        if isinstance(region, str) and region:
            # Multi-region endpoints: "us" is a country; "global" and "eu" name no single grid.
            return known_region({"us": "country:US", "global": "", "eu": ""}.get(region, f"gcp:{region}"))
    return None


# ---------------------------------------------------------------------------------------------------------
# wrappers
# ---------------------------------------------------------------------------------------------------------


def _wrapper(get_telemetry, kind: str, is_async: bool):
    if kind == "manager":
        return _stream_helper_wrapper(get_telemetry, is_async)
    factory = async_wrapper if is_async else sync_wrapper
    return factory(get_telemetry, describe, parse, _chunk_parser)


def _stream_helper_wrapper(get_telemetry, is_async: bool):
    """``messages.stream(...)`` returns a manager and sends nothing; the call happens on ``__enter__``."""

    def wrapper(wrapped, instance, args, kwargs):
        manager = wrapped(*args, **kwargs)
        try:
            begin = functools.partial(begin_call, get_telemetry, describe_stream_helper, instance, args, kwargs)
            return (TracedAsyncStreamManager if is_async else TracedStreamManager)(manager, begin)
        except Exception as exc:
            log_once("anthropic.stream", exc)
            return manager

    return wrapper


def _trace_helper_stream(stream: Any, handle: Any, proxy: type) -> Any:
    """Swap the helper stream's raw event stream for a traced one; on failure end the span unread."""
    try:
        traced = proxy(stream._raw_stream, handle, StreamParser())
        stream._raw_stream = traced
        return traced
    except Exception as exc:
        log_once("anthropic.stream_helper", exc)
        handle.finish(None, flags=("usage_unreadable",))
        return None


class TracedStreamManager(wrapt.ObjectProxy):
    """A ``MessageStreamManager`` whose ``__enter__`` starts the call's span and traces the stream it returns."""

    def __init__(self, wrapped: Any, begin: Any) -> None:
        super().__init__(wrapped)
        self._self_begin = begin
        self._self_traced = None

    def __enter__(self):
        _spec, handle = self._self_begin()
        if handle is None:
            return self.__wrapped__.__enter__()
        token = enter_call()
        try:
            stream = self.__wrapped__.__enter__()
        except BaseException as exc:
            handle.finish(None, error=exc)
            raise
        finally:
            exit_call(token)
        self._self_traced = _trace_helper_stream(stream, handle, TracedStream)
        return stream

    def __exit__(self, exc_type, exc, tb):
        if self._self_traced is not None:
            try:  # ends the span (with the block's exception, if any) before the helper closes the stream
                self._self_traced.__exit__(exc_type, exc, tb)
            except Exception as err:
                log_once("anthropic.stream_helper.exit", err)
        return self.__wrapped__.__exit__(exc_type, exc, tb)


class TracedAsyncStreamManager(wrapt.ObjectProxy):
    """The async counterpart of `TracedStreamManager` (``AsyncMessageStreamManager``)."""

    def __init__(self, wrapped: Any, begin: Any) -> None:
        super().__init__(wrapped)
        self._self_begin = begin
        self._self_traced = None

    async def __aenter__(self):
        _spec, handle = self._self_begin()
        if handle is None:
            return await self.__wrapped__.__aenter__()
        token = enter_call()
        try:
            stream = await self.__wrapped__.__aenter__()
        except BaseException as exc:
            handle.finish(None, error=exc)
            raise
        finally:
            exit_call(token)
        self._self_traced = _trace_helper_stream(stream, handle, TracedAsyncStream)
        return stream

    async def __aexit__(self, exc_type, exc, tb):
        if self._self_traced is not None:
            try:
                await self._self_traced.__aexit__(exc_type, exc, tb)
            except Exception as err:
                log_once("anthropic.stream_helper.aexit", err)
        return await self.__wrapped__.__aexit__(exc_type, exc, tb)


def _copy_wrapper(telemetry: Telemetry):
    def wrapper(wrapped, instance, args, kwargs):
        return wrap_client(wrapped(*args, **kwargs), telemetry)

    return wrapper


def _same(telemetry: Telemetry) -> Telemetry:
    return telemetry


# ---------------------------------------------------------------------------------------------------------
# discovery and the SDK's own tracing
# ---------------------------------------------------------------------------------------------------------


def _targets() -> Iterator[tuple[str, type, str, str]]:
    """(module, class, method, kind) for every Messages method this SDK version has."""
    for name in _MODULES:
        try:
            module = importlib.import_module(name)
        except Exception:
            continue
        for cls_name in ("Messages", "AsyncMessages"):
            cls = getattr(module, cls_name, None)
            if cls is None:
                continue
            for method, kind in _METHODS:
                if method in vars(cls):
                    yield name, cls, method, kind


def _resources(client: Any) -> Iterator[Any]:
    for path in (("messages",), ("beta", "messages")):
        obj = client
        try:
            for part in path:
                obj = getattr(obj, part)
        except Exception:
            continue
        if obj is not None:
            yield obj


def _is_async_resource(resource: Any) -> bool:
    try:
        from anthropic._resource import AsyncAPIResource

        return isinstance(resource, AsyncAPIResource)
    except ImportError:  # pragma: no cover - layout of older SDKs
        return type(resource).__name__.startswith("Async")


def _no_tracer(self: Any) -> None:
    """The SDK's client tracer while we instrument: none, so the SDK starts no span of its own."""
    return None


def _sdk_tracing_off() -> None:
    try:
        from anthropic._base_client import BaseClient
    except ImportError:  # pragma: no cover
        return
    current = vars(BaseClient).get("_tracer")
    if isinstance(current, property) and current.fget is not _no_tracer:
        _saved_tracer_property["_tracer"] = current
        BaseClient._tracer = property(_no_tracer)  # type: ignore[assignment]


def _sdk_tracing_restore() -> None:
    saved = _saved_tracer_property.pop("_tracer", None)
    if saved is None:
        return
    from anthropic._base_client import BaseClient

    BaseClient._tracer = saved  # type: ignore[assignment]


def _sdk_tracing_off_for(client: Any) -> None:
    """Set this client's ``open_telemetry`` option to ``traces.enabled = False`` (kept by its copies)."""
    setter = getattr(client, "_set_open_telemetry", None)
    try:
        current = client.open_telemetry
    except Exception:
        return
    if callable(setter) and isinstance(current, dict):
        traces = current.get("traces")
        setter({**current, "traces": {**(traces if isinstance(traces, dict) else {}), "enabled": False}})
