"""OpenAI SDK instrumentation: Chat Completions (create, parse, and the `.stream()` helper), Responses
(create, parse, and `.stream()`), legacy Completions, Embeddings, Images (generate, edit,
create_variation) and Videos (create, remix, edit, extend; `create_and_poll` goes through `create`),
sync and async, for `OpenAI`, `AzureOpenAI` and OpenAI-compatible endpoints.

What is wrapped and why:
- `create`/`parse`/`generate`/... on the resource classes (or, with `wrap_client`, on one client's
  resource objects). The `.stream()` helpers call `create` (no wrap of their own, so no double count);
  `parse` posts by itself, so it is wrapped too.
- `with_raw_response.*` and `with_streaming_response.*` re-bind the resource's bound `create`/`parse`
  when they are built, so they go through the same wrapper once; it sees the raw-response header they
  add. A `with_raw_response` result has its body read already and is parsed at once (the SDK caches the
  parsed object, so the caller's own `.parse()` costs nothing more). Streamed raw responses and
  `with_streaming_response` results are proxied: the call ends when the caller parses the body (a
  parsed stream is traced like any other), closes the response, or drops it.
- Streams of Chat Completions and Completions carry no usage unless `stream_options.include_usage` is
  set. When the caller did not set it, we set it and hide the extra usage-only chunk, so the caller sees
  exactly the chunks it would have seen. If the endpoint rejects `stream_options` (some OpenAI-compatible
  servers and old Azure API versions do), the request is sent again without it and that endpoint is not
  asked again. No injection in raw-response modes (the caller asked for the bytes as sent) or when the
  caller set `include_usage` itself (then nothing is hidden either); such streams are flagged estimated.
- Videos are asynchronous jobs: the call that creates one is counted, for the clip length and size the
  returned `Video` reports (for `extend`, the requested extension length), since the seed counts energy per
  second of video generated. Polling (`retrieve`, `poll`) and downloads are not model calls.
- `ChatCompletionStream.close()`/`ResponseStream.close()` (used by the `.stream()` helpers) close the
  HTTP response directly, bypassing the stream they wrap; a class-level hook (installed by both
  `instrument()` and `wrap_client`, acting only on streams we traced) ends our span there too.

Not covered: `responses.retrieve(stream=True)` (resuming a response already counted), `responses.compact`,
audio (speech, transcription), realtime, batches, fine-tuning; video characters.

Nothing here reads prompts, messages, tool payloads or output text: only model names, ids, numeric
request parameters, usage, status and timing.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.utils import unwrap

from tailpipe_ai.providers import openai as openai_parser
from tailpipe_ai.providers.base import get
from tailpipe_ai.semconv import attributes as sc

from ._context import enter_call, exit_call
from ._stream import TracedAsyncStream, TracedStream
from ._telemetry import Telemetry, default_telemetry, log_once, telemetry_from_kwargs
from ._wrap import CallSpec, async_wrapper, begin_call, known_region, sync_wrapper

_instruments = ("openai >= 1.40.0, < 4",)

__all__ = ["OpenAIInstrumentor", "wrap_client"]

_RAW_HEADER = "X-Stainless-Raw-Response"  # openai._constants.RAW_RESPONSE_HEADER: "true" | "stream"
_MISSING = object()


# --------------------------------------------------------------------------------------------------
# What a request is: provider, server, model and numeric parameters (never content)
# --------------------------------------------------------------------------------------------------


def _given(value: Any) -> Any:
    """None for the SDK's `omit`/`NOT_GIVEN` sentinels, else the value."""
    return None if value is None or type(value).__name__ in ("Omit", "NotGiven") else value


def _int(kwargs: Mapping[str, Any], name: str) -> int | None:
    value = kwargs.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num(kwargs: Mapping[str, Any], name: str) -> float | None:
    value = kwargs.get(name)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _sampling(kwargs: Mapping[str, Any], max_tokens: int | None) -> dict[str, Any]:
    n = _int(kwargs, "n")
    return {
        sc.GEN_AI_REQUEST_MAX_TOKENS: max_tokens,
        sc.GEN_AI_REQUEST_TEMPERATURE: _num(kwargs, "temperature"),
        sc.GEN_AI_REQUEST_TOP_P: _num(kwargs, "top_p"),
        sc.GEN_AI_REQUEST_FREQUENCY_PENALTY: _num(kwargs, "frequency_penalty"),
        sc.GEN_AI_REQUEST_PRESENCE_PENALTY: _num(kwargs, "presence_penalty"),
        sc.GEN_AI_REQUEST_SEED: _int(kwargs, "seed"),
        sc.GEN_AI_REQUEST_CHOICE_COUNT: n if n is not None and n != 1 else None,
    }


def _chat_request(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    max_tokens = _int(kwargs, "max_completion_tokens")
    return _sampling(kwargs, max_tokens if max_tokens is not None else _int(kwargs, "max_tokens"))


def _completion_request(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return _sampling(kwargs, _int(kwargs, "max_tokens"))


def _responses_request(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        sc.GEN_AI_REQUEST_MAX_TOKENS: _int(kwargs, "max_output_tokens"),
        sc.GEN_AI_REQUEST_TEMPERATURE: _num(kwargs, "temperature"),
        sc.GEN_AI_REQUEST_TOP_P: _num(kwargs, "top_p"),
    }


def _embeddings_request(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    fmt = kwargs.get("encoding_format")
    return {
        sc.GEN_AI_REQUEST_ENCODING_FORMATS: [fmt] if fmt in ("float", "base64") else None,
        sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: _int(kwargs, "dimensions"),
    }


def _no_request(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {}


def _is_json_format(fmt: Any) -> bool:
    return inspect.isclass(fmt) or get(fmt, "type") in ("json_object", "json_schema")


def _chat_output(kwargs: Mapping[str, Any]) -> str:
    return sc.OUTPUT_TYPE_JSON if _is_json_format(_given(kwargs.get("response_format"))) else sc.OUTPUT_TYPE_TEXT


def _responses_output(kwargs: Mapping[str, Any]) -> str:
    text_format = _given(kwargs.get("text_format"))  # responses.parse
    fmt = get(_given(kwargs.get("text")), "format")
    return sc.OUTPUT_TYPE_JSON if text_format is not None or _is_json_format(fmt) else sc.OUTPUT_TYPE_TEXT


@dataclass(frozen=True)
class _Kind:
    """One family of endpoints: its operation name and how to read its request parameters."""

    operation: str
    request: Callable[[Mapping[str, Any]], dict[str, Any]]
    output: Callable[[Mapping[str, Any]], str]
    injects: bool = False  # streams need stream_options.include_usage to carry usage
    deployment_endpoint: bool = True  # Azure routes it to /deployments/{deployment}
    media: str | None = None  # _IMAGE, _VIDEO or _VIDEO_EXTENSION: how to read the result


_CHAT = _Kind(sc.OPERATION_CHAT, _chat_request, _chat_output, injects=True)
_RESPONSES = _Kind(sc.OPERATION_CHAT, _responses_request, _responses_output, deployment_endpoint=False)
_COMPLETION = _Kind(sc.OPERATION_TEXT_COMPLETION, _completion_request, lambda _: sc.OUTPUT_TYPE_TEXT, injects=True)
_EMBEDDINGS = _Kind(sc.OPERATION_EMBEDDINGS, _embeddings_request, lambda _: sc.OUTPUT_TYPE_EMBEDDING)
_IMAGE, _VIDEO, _VIDEO_EXTENSION = "image", "video", "video_extension"
_IMAGES = _Kind(sc.OPERATION_IMAGE_GENERATION, _no_request, lambda _: sc.OUTPUT_TYPE_IMAGE, media=_IMAGE)
_VIDEOS = _Kind(
    sc.OPERATION_VIDEO_GENERATION, _no_request, lambda _: sc.OUTPUT_TYPE_VIDEO, deployment_endpoint=False, media=_VIDEO
)
_VIDEO_EXTENSIONS = _Kind(
    sc.OPERATION_VIDEO_GENERATION,
    _no_request,
    lambda _: sc.OUTPUT_TYPE_VIDEO,
    deployment_endpoint=False,
    media=_VIDEO_EXTENSION,
)

# (module, classes, kind, methods); the first importable module of a row wins (the chat module moved).
_CLASS_TARGETS: tuple[tuple[tuple[str, ...], tuple[str, str], _Kind, tuple[str, ...]], ...] = (
    (
        ("openai.resources.chat.completions.completions", "openai.resources.chat.completions"),
        ("Completions", "AsyncCompletions"),
        _CHAT,
        ("create", "parse"),
    ),
    (("openai.resources.responses.responses",), ("Responses", "AsyncResponses"), _RESPONSES, ("create", "parse")),
    (("openai.resources.completions",), ("Completions", "AsyncCompletions"), _COMPLETION, ("create",)),
    (("openai.resources.embeddings",), ("Embeddings", "AsyncEmbeddings"), _EMBEDDINGS, ("create",)),
    (("openai.resources.images",), ("Images", "AsyncImages"), _IMAGES, ("generate", "edit", "create_variation")),
    (("openai.resources.videos",), ("Videos", "AsyncVideos"), _VIDEOS, ("create", "remix", "edit")),
    (("openai.resources.videos",), ("Videos", "AsyncVideos"), _VIDEO_EXTENSIONS, ("extend",)),
)

# The same resources as reached from a client instance, for wrap_client.
_CLIENT_RESOURCES: tuple[tuple[str, _Kind, tuple[str, ...]], ...] = (
    ("chat.completions", _CHAT, ("create", "parse")),
    ("responses", _RESPONSES, ("create", "parse")),
    ("completions", _COMPLETION, ("create",)),
    ("embeddings", _EMBEDDINGS, ("create",)),
    ("images", _IMAGES, ("generate", "edit", "create_variation")),
    ("videos", _VIDEOS, ("create", "remix", "edit")),
    ("videos", _VIDEO_EXTENSIONS, ("extend",)),
)


@dataclass(frozen=True)
class _Target:
    """Where the client sends requests: provider name, server, region and Azure deployment."""

    provider: str
    host: str | None = None
    port: int | None = None
    region: str | None = None
    deployment: str | None = None
    key: str = ""  # the base URL, to remember endpoints that reject stream_options


_HOST_PROVIDERS = (  # host suffix -> gen_ai.provider.name of OpenAI-compatible endpoints
    (".openai.azure.com", sc.PROVIDER_AZURE_AI_OPENAI),
    (".cognitiveservices.azure.com", sc.PROVIDER_AZURE_AI_OPENAI),
    ("api.deepseek.com", sc.PROVIDER_DEEPSEEK),
    ("api.groq.com", sc.PROVIDER_GROQ),
    ("api.x.ai", sc.PROVIDER_X_AI),
    ("api.mistral.ai", sc.PROVIDER_MISTRAL_AI),
    ("api.perplexity.ai", sc.PROVIDER_PERPLEXITY),
    ("api.cohere.ai", sc.PROVIDER_COHERE),
    ("api.cohere.com", sc.PROVIDER_COHERE),
    ("generativelanguage.googleapis.com", sc.PROVIDER_GCP_GEMINI),
    ("aiplatform.googleapis.com", sc.PROVIDER_GCP_VERTEX_AI),
)
_RUNTIME_PROVIDERS = {"bedrock": sc.PROVIDER_AWS_BEDROCK, "vertex": sc.PROVIDER_GCP_VERTEX_AI}
_BEDROCK_HOST = re.compile(r"^bedrock(?:-[a-z]+)?\.([a-z]{2}(?:-gov)?-[a-z]+-\d+)\.")
_DEPLOYMENT = re.compile(r"/deployments/([^/]+)")


def _target(client: Any) -> _Target:
    try:
        from openai.lib.azure import BaseAzureClient

        runtime = getattr(getattr(client, "_provider_runtime", None), "name", None)
        return _target_for(
            str(client.base_url), isinstance(client, BaseAzureClient), runtime if isinstance(runtime, str) else None
        )
    except Exception:
        return _Target(sc.PROVIDER_OPENAI)


@lru_cache(maxsize=256)
def _target_for(url: str, is_azure: bool, runtime: str | None) -> _Target:
    parts = urlsplit(url)
    host = parts.hostname
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    provider = _RUNTIME_PROVIDERS.get(runtime or "") or (sc.PROVIDER_AZURE_AI_OPENAI if is_azure else None)
    region = None
    if provider is None and host:
        provider = next((p for suffix, p in _HOST_PROVIDERS if host == suffix or host.endswith(suffix)), None)
        if host.endswith(".services.ai.azure.com"):
            on_openai = parts.path.startswith("/openai")
            provider = sc.PROVIDER_AZURE_AI_OPENAI if on_openai else sc.PROVIDER_AZURE_AI_INFERENCE
    match = _BEDROCK_HOST.match(host or "")
    if match and (provider is None or provider == sc.PROVIDER_AWS_BEDROCK):
        provider = sc.PROVIDER_AWS_BEDROCK
        region = known_region(f"aws:{match.group(1)}")
    deployment = None
    if provider == sc.PROVIDER_AZURE_AI_OPENAI:
        found = _DEPLOYMENT.search(parts.path)
        deployment = found.group(1) if found else None
    return _Target(provider or sc.PROVIDER_OPENAI, host, port, region, deployment, url)


def _raw_mode(kwargs: Mapping[str, Any]) -> str | None:
    """'true' under with_raw_response, 'stream' under with_streaming_response, else None."""
    headers = kwargs.get("extra_headers")
    mode = headers.get(_RAW_HEADER) if isinstance(headers, Mapping) else None
    return mode if isinstance(mode, str) else None


def _image_request(kwargs: Mapping[str, Any], model: str | None) -> tuple[str | None, str | None]:
    """Requested size and quality; DALL-E's documented defaults when they were not given."""
    size, quality = _given(kwargs.get("size")), _given(kwargs.get("quality"))
    size = size if isinstance(size, str) else None
    quality = quality if isinstance(quality, str) else None
    if model is None or model.startswith("dall-e"):  # DALL-E 2 is the API default model
        size, quality = size or "1024x1024", quality or "standard"
    return size, quality


# --------------------------------------------------------------------------------------------------
# stream_options.include_usage injection
# --------------------------------------------------------------------------------------------------

_REJECTS_STREAM_OPTIONS: set[str] = set()  # base URLs that answered 400 to stream_options


class _InjectedStreamOptions(dict):
    """The `stream_options` we send when the caller did not ask for usage; remembers what they passed."""

    __slots__ = ("active", "key", "original")

    def hides(self, chunk: Any) -> bool:
        return self.active and openai_parser.is_usage_only_chunk(chunk)


def _inject(spec: CallSpec, kwargs: dict[str, Any], key: str) -> None:
    extra_body = kwargs.get("extra_body")
    if isinstance(extra_body, Mapping) and "stream_options" in extra_body:
        return  # the caller's extra_body wins over our kwargs: leave it alone
    current = _given(kwargs.get("stream_options"))
    if current is not None and (not isinstance(current, Mapping) or "include_usage" in current):
        return
    options = _InjectedStreamOptions({**(current or {}), "include_usage": True})
    options.active, options.key, options.original = True, key, kwargs.get("stream_options", _MISSING)
    spec.kwargs = {**kwargs, "stream_options": options}
    spec.hide = options.hides


def _rejected(exc: BaseException, kwargs: Mapping[str, Any]) -> _InjectedStreamOptions | None:
    """Our injected options, if `exc` is the endpoint refusing them (HTTP 400/422 naming stream_options)."""
    options = kwargs.get("stream_options")
    if not isinstance(options, _InjectedStreamOptions) or getattr(exc, "status_code", None) not in (400, 422):
        return None
    if "stream_options" not in str(getattr(exc, "message", "")):
        return None
    options.active = False
    if len(_REJECTS_STREAM_OPTIONS) < 1024:
        _REJECTS_STREAM_OPTIONS.add(options.key)
    return options


def _without(kwargs: Mapping[str, Any], options: _InjectedStreamOptions) -> dict[str, Any]:
    out = dict(kwargs)
    if options.original is _MISSING:
        out.pop("stream_options", None)
    else:
        out["stream_options"] = options.original
    return out


def _retrying(wrapped: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return wrapped(*args, **kwargs)
        except Exception as exc:
            options = _rejected(exc, kwargs)
            if options is None:
                raise
        return wrapped(*args, **_without(kwargs, options))  # outside `except`: no chained context

    return call


def _async_retrying(wrapped: Callable[..., Any]) -> Callable[..., Any]:
    async def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return await wrapped(*args, **kwargs)
        except Exception as exc:
            options = _rejected(exc, kwargs)
            if options is None:
                raise
        return await wrapped(*args, **_without(kwargs, options))

    return call


# --------------------------------------------------------------------------------------------------
# describe / parse hooks for the shared wrappers
# --------------------------------------------------------------------------------------------------


def _describer(kind: _Kind, inject: bool) -> Callable[[Any, tuple, dict], CallSpec]:
    def describe(instance: Any, args: tuple, kwargs: dict) -> CallSpec:
        target = _target(getattr(instance, "_client", None))
        model = _given(kwargs.get("model"))
        if target.deployment and kind.deployment_endpoint:
            model = target.deployment  # Azure: the URL's deployment decides, not the model argument
        model = model if isinstance(model, str) and model else None
        stream = _given(kwargs.get("stream")) is True
        spec = CallSpec(
            provider=target.provider,
            operation=kind.operation,
            model=model,
            server=(target.host, target.port),
            stream=stream,
            request=kind.request(kwargs),
            output_type=kind.output(kwargs),
            region=target.region,
        )
        if kind.media == _IMAGE:
            spec.context = (_IMAGE, *_image_request(kwargs, model))
        elif kind.media is not None:  # videos: requested length and size
            size = _given(kwargs.get("size"))
            spec.context = (kind.media, _given(kwargs.get("seconds")), size if isinstance(size, str) else None)
        if (
            stream
            and inject
            and kind.injects
            and _raw_mode(kwargs) is None
            and target.key not in _REJECTS_STREAM_OPTIONS
        ):
            _inject(spec, kwargs, target.key)
        return spec

    return describe


def _parse(result: Any, spec: CallSpec) -> Any:
    if spec.context is None:
        return openai_parser.parse_response(result)
    media, first, second = spec.context  # the requested values serve as fallbacks
    if media == _IMAGE:
        return openai_parser.parse_images(result, first, second)
    if media == _VIDEO_EXTENSION:
        return openai_parser.parse_video(result, size=second, generated_seconds=first)
    return openai_parser.parse_video(result, first, second)


def _chunk_parser(spec: CallSpec) -> Callable[[Any], Any]:
    return openai_parser.stream_parser()


# --------------------------------------------------------------------------------------------------
# with_raw_response / with_streaming_response results
# --------------------------------------------------------------------------------------------------


class _RawBase(wrapt.ObjectProxy):
    """A raw response whose body we have not seen yet: the call ends when the caller parses it (a
    parsed stream is traced), closes it, or drops it."""

    def __init__(self, wrapped: Any, spec: CallSpec, handle: Any) -> None:
        super().__init__(wrapped)
        self._self_spec = spec
        self._self_handle = handle
        self._self_stream = None
        self._self_done = False

    def _finish(self, info: Any, **kwargs: Any) -> None:
        self._self_done = True
        self._self_handle.finish(info, **kwargs)

    def _observe(self, parsed: Any) -> Any:
        spec, handle = self._self_spec, self._self_handle
        if self._self_done:
            return parsed
        try:
            if spec.stream:
                if self._self_stream is not None and self._self_stream.__wrapped__ is parsed:
                    return self._self_stream  # parse() is cached by the SDK: same stream, same proxy
                if hasattr(parsed, "__anext__"):
                    self._self_stream = TracedAsyncStream(parsed, handle, _chunk_parser(spec))
                elif hasattr(parsed, "__next__"):
                    self._self_stream = TracedStream(parsed, handle, _chunk_parser(spec))
                else:
                    return parsed
                return self._self_stream
            self._finish(_parse(parsed, spec))
        except Exception as exc:
            log_once("openai raw response", exc)
            self._finish(None, flags=("usage_unreadable",))
        return parsed

    def _end_unparsed(self) -> None:
        """The caller closed or dropped the response without parsing it through us."""
        if self._self_done or self._self_stream is not None:
            return  # finished already, or the traced stream ends itself
        if self._self_spec.stream:
            self._finish(None, token_accuracy="estimated", flags=("stream_incomplete",))
            return
        info = None
        with contextlib.suppress(Exception):  # the caller may have read the body; never read it ourselves
            info = _parse(self.__wrapped__.http_response.json(), self._self_spec)
        self._finish(info)

    def _after_close(self) -> None:
        try:
            if self._self_stream is not None:
                self._self_stream.close()
            self._end_unparsed()
        except Exception as exc:
            log_once("openai raw response close", exc)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._end_unparsed()


class _LegacyRawResponse(_RawBase):
    """`with_raw_response` of a stream: `LegacyAPIResponse.parse()` is synchronous, even on async clients."""

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        return self._observe(self.__wrapped__.parse(*args, **kwargs))


class _RawResponse(_RawBase):
    """`with_streaming_response` on a sync client (`APIResponse`)."""

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        return self._observe(self.__wrapped__.parse(*args, **kwargs))

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._after_close()


class _AsyncRawResponse(_RawBase):
    """`with_streaming_response` on an async client (`AsyncAPIResponse`)."""

    async def parse(self, *args: Any, **kwargs: Any) -> Any:
        return self._observe(await self.__wrapped__.parse(*args, **kwargs))

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            try:
                if self._self_stream is not None:
                    await self._self_stream.close()
                self._end_unparsed()
            except Exception as exc:
                log_once("openai raw response close", exc)


def _raw_result(result: Any, spec: CallSpec, handle: Any, mode: str) -> Any:
    try:
        if mode == "true" and not spec.stream:  # body already read: finish now
            try:
                parsed = result.parse()
            except Exception:  # e.g. chat.completions.parse's own checks; the caller will see them
                parsed = result.http_response.json()
            handle.finish(_parse(parsed, spec))
            return result
        if mode == "true":
            return _LegacyRawResponse(result, spec, handle)
        if inspect.iscoroutinefunction(getattr(type(result), "parse", None)):
            return _AsyncRawResponse(result, spec, handle)
        return _RawResponse(result, spec, handle)
    except Exception as exc:
        log_once("openai raw response", exc)
        handle.finish(None, flags=("usage_unreadable",))
        return result


def _raw_sync(get_telemetry, describe, wrapped, instance, args, kwargs, mode: str) -> Any:
    spec, handle = begin_call(get_telemetry, describe, instance, args, kwargs)
    if handle is None:
        return wrapped(*args, **kwargs)
    token = enter_call()
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        handle.finish(None, error=exc)
        raise
    finally:
        exit_call(token)
    return _raw_result(result, spec, handle, mode)


async def _raw_async(get_telemetry, describe, wrapped, instance, args, kwargs, mode: str) -> Any:
    spec, handle = begin_call(get_telemetry, describe, instance, args, kwargs)
    if handle is None:
        return await wrapped(*args, **kwargs)
    token = enter_call()
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        handle.finish(None, error=exc)
        raise
    finally:
        exit_call(token)
    return _raw_result(result, spec, handle, mode)


# --------------------------------------------------------------------------------------------------
# The wrapper, the stream-helper close hook, the instrumentor and wrap_client
# --------------------------------------------------------------------------------------------------


def _wrapper(get_telemetry: Callable[[], Telemetry | None], kind: _Kind, is_async: bool, inject: bool):
    """A wrapt wrapper for one SDK method: raw-response modes here, everything else via the shared one."""
    describe = _describer(kind, inject)
    shared = (async_wrapper if is_async else sync_wrapper)(get_telemetry, describe, _parse, _chunk_parser)
    retrying = _async_retrying if is_async else _retrying
    raw = _raw_async if is_async else _raw_sync

    def wrapper(wrapped, instance, args, kwargs):
        mode = _raw_mode(kwargs)
        if mode is not None:
            return raw(get_telemetry, describe, wrapped, instance, args, kwargs, mode)
        if inject and kind.injects and kwargs.get("stream") is True:
            wrapped = retrying(wrapped)
        return shared(wrapped, instance, args, kwargs)

    return wrapper


_HELPER_STREAMS = (  # the .stream() helpers' stream classes, whose close() bypasses the raw stream
    ("openai.lib.streaming.chat._completions", "ChatCompletionStream", "AsyncChatCompletionStream"),
    ("openai.lib.streaming.responses._responses", "ResponseStream", "AsyncResponseStream"),
)
_hooked: list[tuple[type, str]] = []


def _close_hook(wrapped, instance, args, kwargs):
    try:
        return wrapped(*args, **kwargs)
    finally:
        raw = getattr(instance, "_raw_stream", None)
        if type(raw) is TracedStream:
            try:
                raw.close()
            except Exception as exc:
                log_once("openai stream close", exc)


async def _async_close_hook(wrapped, instance, args, kwargs):
    try:
        return await wrapped(*args, **kwargs)
    finally:
        raw = getattr(instance, "_raw_stream", None)
        if type(raw) is TracedAsyncStream:
            try:
                await raw.close()
            except Exception as exc:
                log_once("openai stream close", exc)


def _install_close_hooks() -> None:
    """Idempotent. The hooks only act on streams we traced, so they are harmless to everyone else."""
    if _hooked:
        return
    for module_name, sync_name, async_name in _HELPER_STREAMS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name, hook in ((sync_name, _close_hook), (async_name, _async_close_hook)):
            cls = getattr(module, name, None)
            if cls is not None and hasattr(cls, "close"):
                wrapt.wrap_function_wrapper(cls, "close", hook)
                _hooked.append((cls, "close"))


def _remove_close_hooks() -> None:
    while _hooked:
        unwrap(*_hooked.pop())


def _classes():
    """(class, kind, methods, is_async) for every SDK class present in the installed version."""
    for modules, names, kind, methods in _CLASS_TARGETS:
        for module_name in modules:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            for name in names:
                cls = getattr(module, name, None)
                if inspect.isclass(cls):
                    yield cls, kind, methods, name.startswith("Async")
            break


class OpenAIInstrumentor(BaseInstrumentor):
    """Instruments the OpenAI SDK's classes. `instrument(telemetry=..., inject_stream_usage=True)`:
    `telemetry` (or `tracer_provider`/`meter_provider`) as in `telemetry_from_kwargs`, else the
    process-wide default; `inject_stream_usage=False` never adds `stream_options.include_usage` (such
    streams are then flagged estimated)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        get_telemetry = telemetry_from_kwargs(kwargs)
        inject = bool(kwargs.get("inject_stream_usage", True))
        self._wrapped = []
        for cls, kind, methods, is_async in _classes():
            for name in methods:
                if callable(getattr(cls, name, None)):
                    wrapt.wrap_function_wrapper(cls, name, _wrapper(get_telemetry, kind, is_async, inject))
                    self._wrapped.append((cls, name))
        _install_close_hooks()

    def _uninstrument(self, **kwargs: Any) -> None:
        wrapped = getattr(self, "_wrapped", [])
        while wrapped:
            unwrap(*wrapped.pop())
        _remove_close_hooks()


class _InstanceWrapper(wrapt.FunctionWrapper):
    """A method wrap_client put on one resource object (its type marks it, so wrapping is idempotent)."""


_CACHED_RAW = ("with_raw_response", "with_streaming_response")


def _forget_raw_views(obj: Any) -> None:
    """`with_raw_response`/`with_streaming_response` are cached properties that captured the bound
    methods when first built; drop them so they are rebuilt on our wrappers."""
    state = getattr(obj, "__dict__", None)
    if isinstance(state, dict):
        for name in _CACHED_RAW:
            state.pop(name, None)


def _resolve(obj: Any, path: str) -> Any:
    for name in path.split("."):
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return obj


def wrap_client(client: Any, telemetry: Telemetry | None = None, *, inject_stream_usage: bool = True) -> Any:
    """Instrument one `OpenAI`/`AsyncOpenAI`/`AzureOpenAI`/... client (its resource objects, not the
    classes) and return it. Wrapping twice is a no-op; copies made by `client.with_options()`/`.copy()`
    are wrapped too. With global instrumentation also active, a call is counted once (by this wrapper)."""
    try:
        from openai._resource import AsyncAPIResource

        get_telemetry = (lambda: telemetry) if telemetry is not None else default_telemetry
        for path, kind, methods in _CLIENT_RESOURCES:
            resource = _resolve(client, path)
            if resource is None:
                continue
            is_async = isinstance(resource, AsyncAPIResource)
            for name in methods:
                method = getattr(resource, name, None)
                if method is None or type(vars(resource).get(name)) is _InstanceWrapper:
                    continue
                wrapper = _wrapper(get_telemetry, kind, is_async, inject_stream_usage)
                setattr(resource, name, _InstanceWrapper(method, wrapper))
            _forget_raw_views(resource)
        _forget_raw_views(client)
        _forget_raw_views(_resolve(client, "chat"))
        for name in ("copy", "with_options"):
            method = getattr(client, name, None)
            if method is not None and type(vars(client).get(name)) is not _InstanceWrapper:
                setattr(client, name, _InstanceWrapper(method, _copy_wrapper(telemetry, inject_stream_usage)))
        _install_close_hooks()
    except Exception as exc:
        log_once("openai.wrap_client", exc)
    return client


def _copy_wrapper(telemetry: Telemetry | None, inject: bool):
    def wrapper(wrapped, instance, args, kwargs):
        return wrap_client(wrapped(*args, **kwargs), telemetry, inject_stream_usage=inject)

    return wrapper
