"""OpenTelemetry instrumentor for the Google Gen AI SDK (`google-genai`): Gemini API and Vertex AI.

Wrapped (sync `Models` and async `AsyncModels`, i.e. `client.models` and `client.aio.models`):

- `_generate_content` / `_generate_content_stream`: the SDK's one-HTTP-request methods behind
  `generate_content(_stream)`. Wrapping them instead of the public methods gives one span per model
  request, so the extra requests of automatic function calling and automatic continuation are each
  counted (the public methods return only the last or a merged response). When an SDK version lacks
  them, the public methods are wrapped instead.
- `embed_content` and `generate_images` (one request each; the public `generate_images` drops the
  "Positive Prompt" safety entry, so images are counted from what the caller receives).
- `generate_videos` (Veo): a long-running operation, counted when it is accepted for the seconds of
  video requested (`duration_seconds` x `number_of_videos`, Veo's 8 s / 720p defaults when not set).
  Polling the operation (`client.operations.get`) is not a model call.

Chats (`client.chats`) go through `client.models`, so they are covered too. Nothing here reads
contents, system instructions, tools or outputs: only config numbers, model names, usage and ids.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from tailpipe_ai.providers import CallInfo, get
from tailpipe_ai.providers import google_genai as gp
from tailpipe_ai.semconv import attributes as sc

from ._telemetry import Telemetry, default_telemetry, telemetry_from_kwargs
from ._wrap import CallSpec, MethodPatches, async_wrapper, known_region, sync_wrapper

_instruments = ("google-genai >= 1.0.0, < 4",)

_GENERATE, _STREAM, _EMBED, _IMAGES, _VIDEOS = "generate", "stream", "embed", "images", "videos"

# kind -> method names, preferred first (the first one the class has is wrapped)
_METHODS: dict[str, tuple[str, ...]] = {
    _GENERATE: ("_generate_content", "generate_content"),
    _STREAM: ("_generate_content_stream", "generate_content_stream"),
    _EMBED: ("embed_content",),
    _IMAGES: ("generate_images",),
    _VIDEOS: ("generate_videos",),
}
_CLASSES = (("Models", False), ("AsyncModels", True))
_MARK = "_tailpipe_ai_telemetry"  # set on a wrap_client'ed resource: a one-item list holding its Telemetry


def _field(obj: Any, snake: str, camel: str) -> Any:
    value = get(obj, snake)
    return value if value is not None else get(obj, camel)


def _number(value: Any) -> int | float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _server(api: Any, config: Any) -> tuple[str | None, int | None]:
    base = _field(_field(config, "http_options", "httpOptions"), "base_url", "baseUrl")
    if not isinstance(base, str) or not base:
        base = get(getattr(api, "_http_options", None), "base_url")
    if not isinstance(base, str) or not base:
        return None, None
    try:
        parts = urlsplit(base)
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        return None, None
    return parts.hostname, port


def _region(location: str | None) -> str | None:
    """`gcp:<location>` when the carbon engine knows it (a Vertex AI data-centre region), else None.

    An unknown region would make the estimate fail, so it is dropped here."""
    if not location or location == "global":
        return None
    return known_region(f"gcp:{location}")


def _output_type(config: Any) -> str:
    mime = _field(config, "response_mime_type", "responseMimeType")
    if isinstance(mime, str) and mime.endswith("json"):
        return sc.OUTPUT_TYPE_JSON
    modalities = _field(config, "response_modalities", "responseModalities")
    if isinstance(modalities, list):
        names = {str(getattr(m, "value", m)).upper() for m in modalities}
        if "AUDIO" in names:
            return sc.OUTPUT_TYPE_SPEECH
        if names == {"IMAGE"}:
            return sc.OUTPUT_TYPE_IMAGE
    return sc.OUTPUT_TYPE_TEXT


def _generate_request(config: Any) -> dict[str, Any]:
    """Numeric sampling settings only (never stop sequences, instructions or tools)."""
    out = {
        sc.GEN_AI_REQUEST_MAX_TOKENS: _number(_field(config, "max_output_tokens", "maxOutputTokens")),
        sc.GEN_AI_REQUEST_TEMPERATURE: _number(get(config, "temperature")),
        sc.GEN_AI_REQUEST_TOP_P: _number(_field(config, "top_p", "topP")),
        sc.GEN_AI_REQUEST_TOP_K: _number(_field(config, "top_k", "topK")),
        sc.GEN_AI_REQUEST_SEED: _number(get(config, "seed")),
        sc.GEN_AI_REQUEST_FREQUENCY_PENALTY: _number(_field(config, "frequency_penalty", "frequencyPenalty")),
        sc.GEN_AI_REQUEST_PRESENCE_PENALTY: _number(_field(config, "presence_penalty", "presencePenalty")),
    }
    count = _number(_field(config, "candidate_count", "candidateCount"))
    if count is not None and count != 1:
        out[sc.GEN_AI_REQUEST_CHOICE_COUNT] = count
    return {k: v for k, v in out.items() if v is not None}


def _describer(kind: str, resource: Any = None):
    """A `describe(instance, args, kwargs)` for one kind of call."""

    def describe(instance: Any, args: tuple, kwargs: dict) -> CallSpec | None:
        api = getattr(instance if instance is not None else resource, "_api_client", None)
        model = kwargs.get("model", args[0] if args else None)
        model = model if isinstance(model, str) and model else None
        config = kwargs.get("config")
        vertex = bool(getattr(api, "vertexai", False))
        spec = CallSpec(
            provider=sc.PROVIDER_GCP_VERTEX_AI if vertex else sc.PROVIDER_GCP_GEMINI,
            operation=sc.OPERATION_GENERATE_CONTENT,
            model=model,
            server=_server(api, config),
            region=_region(getattr(api, "location", None)) if vertex else None,
        )
        if kind in (_GENERATE, _STREAM):
            spec.stream = kind == _STREAM
            spec.request = _generate_request(config)
            spec.output_type = _output_type(config)
        elif kind == _EMBED:
            spec.operation = sc.OPERATION_EMBEDDINGS
            spec.output_type = sc.OUTPUT_TYPE_EMBEDDING
            dims = _number(_field(config, "output_dimensionality", "outputDimensionality"))
            spec.request = {sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: dims} if dims is not None else {}
        elif kind == _VIDEOS:
            spec.operation = sc.OPERATION_VIDEO_GENERATION
            spec.output_type = sc.OUTPUT_TYPE_VIDEO
            spec.context = (
                _number(_field(config, "duration_seconds", "durationSeconds")),
                _number(_field(config, "number_of_videos", "numberOfVideos")),
                _field(config, "resolution", "resolution"),
            )
        else:
            spec.operation = sc.OPERATION_IMAGE_GENERATION
            spec.output_type = sc.OUTPUT_TYPE_IMAGE
            size = gp.image_size(
                _field(config, "aspect_ratio", "aspectRatio"), _field(config, "image_size", "imageSize")
            )
            spec.context = (size, None)
        return spec

    return describe


def _parse_generate(result: Any, spec: CallSpec) -> CallInfo:
    info = gp.parse_response(result)
    if not info.has_usage:  # config.should_return_http_response: only the raw body is returned
        body = get(get(result, "sdk_http_response"), "body")
        if isinstance(body, str) and "usageMetadata" in body:
            info = gp.parse_response(json.loads(body))
    return info


def _parse_embed(result: Any, spec: CallSpec) -> CallInfo:
    return gp.parse_embeddings(result)


def _parse_images(result: Any, spec: CallSpec) -> CallInfo:
    size, quality = spec.context or (None, None)
    return gp.parse_images(result, size, quality)


def _parse_videos(result: Any, spec: CallSpec) -> CallInfo:
    return gp.parse_video_operation(result, *(spec.context or ()))


def _chunk_parser(spec: CallSpec):
    return gp.parse_chunk


_PARSERS = {
    _GENERATE: _parse_generate,
    _STREAM: _parse_generate,
    _EMBED: _parse_embed,
    _IMAGES: _parse_images,
    _VIDEOS: _parse_videos,
}


def _wrapper(kind: str, is_async: bool, get_telemetry, resource: Any = None):
    factory = async_wrapper if is_async else sync_wrapper
    chunks = _chunk_parser if kind == _STREAM else None
    return factory(get_telemetry, _describer(kind, resource), _PARSERS[kind], chunks)


def _targets(cls: type) -> list[tuple[str, str]]:
    """(kind, method name) pairs to wrap on `cls`: for each kind, the first method name it defines."""
    out = []
    for kind, names in _METHODS.items():
        name = next((n for n in names if callable(getattr(cls, n, None))), None)
        if name is not None:
            out.append((kind, name))
    return out


class GoogleGenAIInstrumentor(BaseInstrumentor):
    """Instruments `google.genai` Models/AsyncModels for every client in the process."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        from google.genai import models

        get_telemetry = telemetry_from_kwargs(kwargs)
        self._patches = MethodPatches()
        for cls_name, is_async in _CLASSES:
            cls = getattr(models, cls_name, None)
            if cls is None:
                continue
            for kind, name in _targets(cls):
                self._patches.wrap(cls, name, _wrapper(kind, is_async, get_telemetry))

    def _uninstrument(self, **kwargs: Any) -> None:
        patches = getattr(self, "_patches", None)
        if patches is not None:
            patches.undo()


def wrap_client(client: Any, telemetry: Telemetry | None = None) -> Any:
    """Instrument one `genai.Client` (both `client.models` and `client.aio.models`) or one
    `client.aio` AsyncClient, and return it. Wrapping again only switches the telemetry."""
    from google.genai import models

    resources = [getattr(client, "models", None)]
    aio = getattr(client, "aio", None)
    if aio is not None:
        resources.append(getattr(aio, "models", None))
    for resource in resources:
        if resource is None:
            continue
        holder = resource.__dict__.get(_MARK)
        if holder is not None:
            holder[0] = telemetry
            continue
        holder = [telemetry]
        resource.__dict__[_MARK] = holder

        def get_telemetry(holder: list = holder) -> Telemetry:
            return holder[0] if holder[0] is not None else default_telemetry()

        is_async = isinstance(resource, models.AsyncModels)
        for kind, name in _targets(type(resource)):
            wrapt.wrap_function_wrapper(resource, name, _wrapper(kind, is_async, get_telemetry, resource))
    return client
