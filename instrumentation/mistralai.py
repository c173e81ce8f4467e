"""OpenTelemetry instrumentor for the Mistral AI SDK (`mistralai`, client `mistralai.client.Mistral`).

Wrapped, sync and async (`*_async`):
- `chat.complete` / `chat.stream` (also behind `chat.parse*`), operation `chat`;
- `agents.complete` / `agents.stream` (same response shapes; the request names an agent, not a model);
- `fim.complete` / `fim.stream` (fill-in-the-middle), operation `text_completion`;
- `embeddings.create`, operation `embeddings`.

Streams are `EventStream`s of `CompletionEvent`s; the span follows the stream (iteration, `with`, `close()`)
and takes usage from the final chunk. Only numeric sampling settings, model names, ids, usage and finish
reasons are read; messages, prompts, tools and outputs never are.

The SDK's own OpenTelemetry hook (`MISTRAL_SDK_TELEMETRY`) is opt-in and separate from this module.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from tailpipe_ai.providers import CallInfo, get
from tailpipe_ai.providers import mistralai as mp
from tailpipe_ai.semconv import attributes as sc

from ._telemetry import Telemetry, default_telemetry, telemetry_from_kwargs
from ._wrap import CallSpec, MethodPatches, async_wrapper, sync_wrapper

_instruments = ("mistralai >= 1.0.0, < 4",)

# method -> (is_async, stream)
_COMPLETIONS = {
    "complete": (False, False),
    "complete_async": (True, False),
    "stream": (False, True),
    "stream_async": (True, True),
}
# (module under mistralai.client or mistralai, class, client attribute, operation, methods)
_TARGETS = (
    ("chat", "Chat", "chat", sc.OPERATION_CHAT, _COMPLETIONS),
    ("agents", "Agents", "agents", sc.OPERATION_CHAT, _COMPLETIONS),
    ("fim", "Fim", "fim", sc.OPERATION_TEXT_COMPLETION, _COMPLETIONS),
    (
        "embeddings",
        "Embeddings",
        "embeddings",
        sc.OPERATION_EMBEDDINGS,
        {"create": (False, False), "create_async": (True, False)},
    ),
)
_MARK = "_tailpipe_ai_telemetry"  # set on a wrap_client'ed resource: a one-item list holding its Telemetry


def _number(value: Any) -> int | float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _server(instance: Any, kwargs: dict) -> tuple[str | None, int | None]:
    url = kwargs.get("server_url")
    if not isinstance(url, str) or not url:
        try:
            url = instance.sdk_configuration.get_server_details()[0]
        except Exception:
            return None, None
    try:
        parts = urlsplit(url)
        return parts.hostname, parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        return None, None


def _completion_request(kwargs: dict) -> dict[str, Any]:
    """Numeric sampling settings only (never messages, prompts, stop sequences or tools)."""
    out = {
        sc.GEN_AI_REQUEST_MAX_TOKENS: _number(kwargs.get("max_tokens")),
        sc.GEN_AI_REQUEST_TEMPERATURE: _number(kwargs.get("temperature")),
        sc.GEN_AI_REQUEST_TOP_P: _number(kwargs.get("top_p")),
        sc.GEN_AI_REQUEST_TOP_K: _number(kwargs.get("top_k")),
        sc.GEN_AI_REQUEST_SEED: _number(kwargs.get("random_seed")),
        sc.GEN_AI_REQUEST_FREQUENCY_PENALTY: _number(kwargs.get("frequency_penalty")),
        sc.GEN_AI_REQUEST_PRESENCE_PENALTY: _number(kwargs.get("presence_penalty")),
    }
    n = _number(kwargs.get("n"))
    if n is not None and n != 1:
        out[sc.GEN_AI_REQUEST_CHOICE_COUNT] = n
    return {k: v for k, v in out.items() if v is not None}


def _describer(operation: str, stream: bool):
    def describe(instance: Any, args: tuple, kwargs: dict) -> CallSpec | None:
        model = kwargs.get("model")
        spec = CallSpec(
            provider=sc.PROVIDER_MISTRAL_AI,
            operation=operation,
            model=model if isinstance(model, str) and model else None,
            server=_server(instance, kwargs),
            stream=stream,
        )
        if operation == sc.OPERATION_EMBEDDINGS:
            spec.output_type = sc.OUTPUT_TYPE_EMBEDDING
            dims = _number(kwargs.get("output_dimension"))
            fmt = getattr(kwargs.get("encoding_format"), "value", kwargs.get("encoding_format"))
            spec.request = {
                sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: dims,
                sc.GEN_AI_REQUEST_ENCODING_FORMATS: [fmt] if isinstance(fmt, str) and fmt else None,
            }
        else:
            kind = get(kwargs.get("response_format"), "type")
            kind = getattr(kind, "value", kind)
            json_out = isinstance(kind, str) and kind.startswith("json")
            spec.output_type = sc.OUTPUT_TYPE_JSON if json_out else sc.OUTPUT_TYPE_TEXT
            spec.request = _completion_request(kwargs)
        return spec

    return describe


def _parse(result: Any, spec: CallSpec) -> CallInfo:
    if spec.operation == sc.OPERATION_EMBEDDINGS:
        return mp.parse_embeddings(result)
    return mp.parse_response(result)


def _chunk_parser(spec: CallSpec):
    return mp.parse_chunk


def _wrapper(operation: str, is_async: bool, stream: bool, get_telemetry):
    factory = async_wrapper if is_async else sync_wrapper
    return factory(get_telemetry, _describer(operation, stream), _parse, _chunk_parser if stream else None)


def _classes():
    """(class, operation, methods) for each resource class this SDK version has."""
    for module_name, cls_name, _attr, operation, methods in _TARGETS:
        for prefix in ("mistralai.client.", "mistralai."):
            try:
                cls = getattr(importlib.import_module(prefix + module_name), cls_name)
            except (ImportError, AttributeError):
                continue
            yield cls, operation, methods
            break


def _methods(cls: type, methods: dict) -> list[tuple[str, bool, bool]]:
    return [(name, a, s) for name, (a, s) in methods.items() if callable(getattr(cls, name, None))]


class MistralAIInstrumentor(BaseInstrumentor):
    """Instruments the `mistralai` chat, agents, FIM and embeddings resources for every client."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        get_telemetry = telemetry_from_kwargs(kwargs)
        self._patches = MethodPatches()
        for cls, operation, methods in _classes():
            for name, is_async, stream in _methods(cls, methods):
                self._patches.wrap(cls, name, _wrapper(operation, is_async, stream, get_telemetry))

    def _uninstrument(self, **kwargs: Any) -> None:
        patches = getattr(self, "_patches", None)
        if patches is not None:
            patches.undo()


def wrap_client(client: Any, telemetry: Telemetry | None = None) -> Any:
    """Instrument one `Mistral` client (its chat, agents, fim and embeddings resources) and return it.
    Wrapping again only switches the telemetry."""
    for _module, _cls, attr, operation, methods in _TARGETS:
        try:
            resource = getattr(client, attr)  # created lazily by the SDK, then kept on the client
        except AttributeError:
            continue
        holder = resource.__dict__.get(_MARK)
        if holder is not None:
            holder[0] = telemetry
            continue
        holder = [telemetry]
        resource.__dict__[_MARK] = holder

        def get_telemetry(holder: list = holder) -> Telemetry:
            return holder[0] if holder[0] is not None else default_telemetry()

        for name, is_async, stream in _methods(type(resource), methods):
            wrapt.wrap_function_wrapper(resource, name, _wrapper(operation, is_async, stream, get_telemetry))
    return client
