"""The google-genai instrumentation against the real SDK and the loopback fake Gemini / Vertex AI API."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging

import pytest

genai = pytest.importorskip("google.genai")
pytest.importorskip("opentelemetry.instrumentation")

from google.genai import errors, types  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

from tailpipe_ai.carbon import Usage, estimate  # noqa: E402
from tailpipe_ai.instrumentation.google_genai import GoogleGenAIInstrumentor, wrap_client  # noqa: E402
from tailpipe_ai.providers import google_genai as gp  # noqa: E402
from tailpipe_ai.semconv import attributes as sc  # noqa: E402
from tests.fakes import google_genai as fake  # noqa: E402
from tests.fakes.server import FakeServer  # noqa: E402
from tests.instrumentation._shared import instrument_mode, metric_sum, only_record, only_span  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The generate_images method is deprecated")

MODEL = "gemini-2.5-flash"
FULL = dict(
    input_tokens=fake.PROMPT,
    output_tokens=fake.CANDIDATES + fake.THOUGHTS,
    cache_read_tokens=fake.CACHED,
    reasoning_tokens=fake.THOUGHTS,
)


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def base():
    """One fake server for the module (stopping a FakeServer takes ~0.5 s; the tests never read its log)."""
    with FakeServer() as server:
        yield fake.install(server)


@pytest.fixture(params=["instrumentor", "wrap_client"])
def mode(request, otel):
    """Instrument either globally or one client at a time; returns `client -> client`."""
    yield from instrument_mode(request.param, GoogleGenAIInstrumentor, wrap_client, otel)


def _client(base, vertex=False, key="test-key"):
    return genai.Client(vertexai=vertex or None, api_key=key, http_options=types.HttpOptions(base_url=base))


@pytest.fixture(scope="module")
def cached(base):
    """Clients reused across tests (building one takes ~0.1 s), one set per mode: a wrap_client'ed client is
    only ever re-wrapped, which switches it to the current test's telemetry."""
    cache = {}

    def get(mode_name, vertex):
        if (mode_name, vertex) not in cache:
            cache[mode_name, vertex] = _client(base, vertex)
        return cache[mode_name, vertex]

    return get


@pytest.fixture
def client(mode, cached):
    return mode(cached(mode.name, False))


@pytest.fixture
def vertex(mode, cached):
    return mode(cached(mode.name, True))


def _assert_full_usage(otel, provider=sc.PROVIDER_GCP_GEMINI, model=MODEL, stream=False, region=None):
    span, record = only_span(otel), only_record(otel)
    a = span.attributes
    assert span.name == f"generate_content {model}"
    assert span.kind is SpanKind.CLIENT
    assert a[sc.GEN_AI_OPERATION_NAME] == sc.OPERATION_GENERATE_CONTENT
    assert a[sc.GEN_AI_PROVIDER_NAME] == provider
    assert a[sc.GEN_AI_REQUEST_MODEL] == model
    assert a[sc.GEN_AI_RESPONSE_MODEL] == model
    assert a[sc.GEN_AI_RESPONSE_ID] == f"resp-{model}"
    assert list(a[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ["stop"]
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == fake.PROMPT  # cache-inclusive, as Gemini reports it
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == fake.CANDIDATES + fake.THOUGHTS  # thinking included
    assert a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == fake.CACHED
    assert a[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == fake.THOUGHTS
    assert a[sc.SERVER_ADDRESS] == "127.0.0.1"
    assert isinstance(a[sc.SERVER_PORT], int)
    assert a.get(sc.GEN_AI_REQUEST_STREAM, False) is stream
    assert a[sc.TAILPIPE_TOKEN_ACCURACY] == "exact"
    assert span.status.status_code is not StatusCode.ERROR

    expected = estimate(Usage(model=model, provider=provider, **FULL), region=region)
    assert a[sc.TAILPIPE_ENERGY_WH] == pytest.approx(expected.energy_wh)
    assert a[sc.TAILPIPE_CARBON_GCO2E] == pytest.approx(expected.carbon_gco2e)
    assert record.provider == provider and record.operation == "generate_content"
    assert (record.input_tokens, record.output_tokens) == (fake.PROMPT, fake.CANDIDATES + fake.THOUGHTS)
    assert (record.cache_read_tokens, record.reasoning_tokens) == (fake.CACHED, fake.THOUGHTS)
    assert record.streamed is stream and record.status == "ok" and record.token_accuracy == "exact"
    assert record.energy_wh == pytest.approx(expected.energy_wh)
    assert record.carbon_gco2e == pytest.approx(expected.carbon_gco2e)
    assert record.region == region
    assert record.trace_id == format(span.context.trace_id, "032x")
    if stream:
        assert record.ttft_ms is not None and a[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] >= 0

    usage = "gen_ai.client.token.usage"
    assert metric_sum(otel, usage, **{sc.GEN_AI_TOKEN_TYPE: "input"}) == fake.PROMPT
    assert metric_sum(otel, usage, **{sc.GEN_AI_TOKEN_TYPE: "output"}) == fake.CANDIDATES + fake.THOUGHTS
    assert len(otel.metric_points("gen_ai.client.operation.duration")) == 1
    assert metric_sum(otel, "tailpipe.energy") == pytest.approx(expected.energy_wh)
    assert metric_sum(otel, "tailpipe.carbon") == pytest.approx(expected.carbon_gco2e)
    return span, record


# ------------------------------------------------------------------------------------------- generate_content


def test_generate_content(client, otel):
    config = types.GenerateContentConfig(temperature=0.3, top_p=0.9, top_k=20, max_output_tokens=256, seed=7)
    response = client.models.generate_content(model=MODEL, contents="hello", config=config)
    assert response.usage_metadata.prompt_token_count == fake.PROMPT  # the caller's object is untouched
    span, _ = _assert_full_usage(otel)
    a = span.attributes
    assert a[sc.GEN_AI_REQUEST_TEMPERATURE] == 0.3 and a[sc.GEN_AI_REQUEST_TOP_P] == 0.9
    assert a[sc.GEN_AI_REQUEST_TOP_K] == 20 and a[sc.GEN_AI_REQUEST_MAX_TOKENS] == 256
    assert a[sc.GEN_AI_REQUEST_SEED] == 7
    assert a[sc.GEN_AI_OUTPUT_TYPE] == "text"


def test_generate_content_json_output_and_models_prefix(client, otel):
    client.models.generate_content(
        model="models/" + MODEL, contents="x", config={"response_mime_type": "application/json"}
    )
    span = only_span(otel)
    assert span.name == f"generate_content models/{MODEL}"
    assert span.attributes[sc.GEN_AI_OUTPUT_TYPE] == "json"
    assert only_record(otel).energy_wh > 0


def test_raw_http_response_is_still_counted(client, otel):
    config = types.GenerateContentConfig(should_return_http_response=True)
    response = client.models.generate_content(model=MODEL, contents="x", config=config)
    assert response.usage_metadata is None and isinstance(response.sdk_http_response.body, str)
    _assert_full_usage(otel)


def test_chat_session_is_counted(client, otel):
    chat = client.chats.create(model=MODEL)
    chat.send_message("hi")
    _assert_full_usage(otel)


def test_automatic_function_calling_counts_every_request(client, otel):
    """AFC sends a second request with the function's result: both are model calls, both are counted."""

    def lookup(secret: str) -> str:
        """Look a secret up."""
        return "found"

    config = types.GenerateContentConfig(tools=[lookup])
    response = client.models.generate_content(model="fake-tool", contents="x", config=config)
    assert response.text.startswith("Hello.")
    chunks = list(client.models.generate_content_stream(model="fake-tool", contents="x", config=config))
    assert chunks[-1].text == fake.RESPONSE_CANARY
    spans = otel.spans.get_finished_spans()
    assert [s.attributes[sc.GEN_AI_RESPONSE_MODEL] for s in spans] == ["fake-tool", "fake-tool-answered"] * 2
    assert all(s.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == fake.PROMPT for s in spans)
    assert len(otel.sink.records) == 4


def test_vertex_provider_and_region(vertex, otel, monkeypatch):
    monkeypatch.setattr(vertex._api_client, "location", "europe-west4")  # as `location=` sets on real Vertex
    vertex.models.generate_content(model=MODEL, contents="hello")
    _assert_full_usage(otel, provider=sc.PROVIDER_GCP_VERTEX_AI, region="gcp:europe-west4")


def test_async_generate_content(client, otel):
    response = asyncio.run(client.aio.models.generate_content(model=MODEL, contents="hello"))
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    _assert_full_usage(otel)


def test_blocked_prompt(client, otel):
    response = client.models.generate_content(model="fake-blocked", contents="x")
    assert response.candidates is None
    a = only_span(otel).attributes
    assert list(a[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ["safety"]
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == fake.PROMPT and sc.GEN_AI_USAGE_OUTPUT_TOKENS not in a


# ------------------------------------------------------------------------------------------------- streaming


def test_stream_takes_last_cumulative_usage(client, otel):
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="hello"))
    assert len(chunks) == 3 and chunks[-1].usage_metadata.total_token_count == fake.TOTAL
    _assert_full_usage(otel, stream=True)  # not the sum of the three cumulative usages


def test_async_stream(client, otel):
    async def run():
        stream = await client.aio.models.generate_content_stream(model=MODEL, contents="hello")
        return [chunk async for chunk in stream]

    assert len(asyncio.run(run())) == 3
    _assert_full_usage(otel, stream=True)


def test_stream_abandoned_after_break(client, otel):
    stream = client.models.generate_content_stream(model=MODEL, contents="hello")
    for _ in stream:
        break
    assert otel.spans.get_finished_spans() == ()  # still open while the caller holds the stream
    del stream
    gc.collect()
    a = only_span(otel).attributes
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == fake.PROMPT  # what the first cumulative chunk said
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == fake.THOUGHTS
    assert len(otel.sink.records) == 1


def test_stream_abandoned_before_usage_is_flagged(client, otel):
    stream = client.models.generate_content_stream(model="fake-no-usage", contents="hello")
    next(stream)
    del stream
    gc.collect()
    a = only_span(otel).attributes
    assert a[sc.TAILPIPE_TOKEN_ACCURACY] == "estimated"
    assert "stream_incomplete" in a[sc.TAILPIPE_FLAGS]


def test_stream_close_and_closing_context(client, otel):
    stream = client.models.generate_content_stream(model=MODEL, contents="hello")
    next(stream)
    stream.close()
    assert len(otel.spans.get_finished_spans()) == 1
    with contextlib.closing(client.models.generate_content_stream(model=MODEL, contents="x")) as stream:
        next(stream)
    assert len(otel.spans.get_finished_spans()) == 2
    assert len(otel.sink.records) == 2


def test_async_stream_early_exit(client, otel):
    async def run():
        stream = await client.aio.models.generate_content_stream(model=MODEL, contents="hello")
        async for _ in stream:
            break
        await stream.aclose()
        stream2 = await client.aio.models.generate_content_stream(model=MODEL, contents="hello")
        async for _ in stream2:
            break
        del stream2  # abandoned: finalised by the event loop / GC
        gc.collect()

    asyncio.run(run())
    gc.collect()
    spans = otel.spans.get_finished_spans()
    assert len(spans) == 2 and len(otel.sink.records) == 2
    assert all(s.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == fake.PROMPT for s in spans)


def test_slow_stream_time_to_first_chunk(client, otel):
    chunks = list(client.models.generate_content_stream(model="fake-slow", contents="x"))
    assert len(chunks) == 3
    record = only_record(otel)
    assert record.ttft_ms >= fake.SLOW_DELAY * 1000 * 0.8
    assert record.latency_ms >= record.ttft_ms


# ---------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("model", "exc", "code"), [("fake-error-429", errors.ClientError, 429), ("fake-error-500", errors.ServerError, 500)]
)
def test_error_response_propagates(client, otel, model, exc, code):
    with pytest.raises(exc) as info:
        client.models.generate_content(model=model, contents="x")
    assert info.value.code == code
    span, record = only_span(otel), only_record(otel)
    assert span.attributes[sc.ERROR_TYPE] == exc.__name__
    assert span.status.status_code is StatusCode.ERROR
    assert (record.status, record.error_type) == ("error", exc.__name__)


def test_stream_error_status_and_in_stream_error(client, otel):
    with pytest.raises(errors.ClientError):
        list(client.models.generate_content_stream(model="fake-error-400", contents="x"))
    seen = []
    with pytest.raises(errors.ServerError):
        for chunk in client.models.generate_content_stream(model="fake-stream-error", contents="x"):
            seen.append(chunk)
    assert len(seen) == 1
    spans = otel.spans.get_finished_spans()
    assert [s.attributes[sc.ERROR_TYPE] for s in spans] == ["ClientError", "ServerError"]
    assert spans[1].attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == fake.PROMPT  # partial usage is kept


def test_async_error_propagates(client, otel):
    async def run():
        await client.aio.models.generate_content(model="fake-error-503", contents="x")

    with pytest.raises(errors.ServerError):
        asyncio.run(run())
    assert only_span(otel).attributes[sc.ERROR_TYPE] == "ServerError"


# ------------------------------------------------------------------------------------------ bad or no usage


@pytest.mark.parametrize("model", ["fake-malformed", "fake-no-usage"])
def test_bad_usage_is_flagged_not_raised(client, otel, model):
    response = client.models.generate_content(model=model, contents="x")
    assert response.candidates[0].content.parts[0].text.startswith("Hello.")
    chunks = list(client.models.generate_content_stream(model=model, contents="x"))
    assert len(chunks) == 3
    for span in otel.spans.get_finished_spans():
        a = span.attributes
        assert sc.GEN_AI_USAGE_INPUT_TOKENS not in a and sc.GEN_AI_USAGE_OUTPUT_TOKENS not in a
        assert a[sc.TAILPIPE_TOKEN_ACCURACY] == "estimated"
        assert "usage_missing" in a[sc.TAILPIPE_FLAGS]
    assert all(r.token_accuracy == "estimated" for r in otel.sink.records)


def test_parser_failure_never_reaches_the_caller(client, otel, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("parser bug")

    monkeypatch.setattr(gp, "parse_response", boom)
    monkeypatch.setattr(gp, "parse_chunk", boom)
    response = client.models.generate_content(model=MODEL, contents="x")
    assert response.usage_metadata.prompt_token_count == fake.PROMPT
    assert len(list(client.models.generate_content_stream(model=MODEL, contents="x"))) == 3
    assert len(otel.spans.get_finished_spans()) == 2


@pytest.mark.parametrize(
    "body",
    [
        {"usageMetadata": [1, 2]},
        {"usageMetadata": "lots"},
        {"usageMetadata": {"promptTokenCount": "12", "candidatesTokenCount": True, "thoughtsTokenCount": 1.5}},
        {"usageMetadata": {"promptTokenCount": {"n": 1}}, "candidates": "nope", "modelVersion": 3},
        {"candidates": [None, {"finishReason": 7}], "promptFeedback": []},
        {"generatedImages": "x", "predictions": {"a": 1}, "embeddings": 5},
        None,
        [],
    ],
)
def test_parsers_tolerate_malformed_json(body):
    for parse in (gp.parse_response, gp.parse_chunk, gp.parse_embeddings, gp.parse_images):
        info = parse(body)
        assert info is None or not info.has_usage


def test_parsers_read_wire_json():
    """The same parsers read raw REST JSON (camelCase), for the proxy."""
    info = gp.parse_response(
        {
            "usageMetadata": fake._usage(),
            "modelVersion": MODEL,
            "responseId": "r",
            "candidates": [{"finishReason": "MAX_TOKENS"}],
        }
    )
    assert (info.input_tokens, info.output_tokens, info.cache_read_tokens, info.reasoning_tokens) == (
        fake.PROMPT,
        fake.CANDIDATES + fake.THOUGHTS,
        fake.CACHED,
        fake.THOUGHTS,
    )
    assert info.finish_reasons == ("max_tokens",) and info.response_model == MODEL
    tool = gp.parse_response(
        {"usageMetadata": {"promptTokenCount": 10, "toolUsePromptTokenCount": 5, "candidatesTokenCount": 2}}
    )
    assert (tool.input_tokens, tool.output_tokens) == (15, 2)
    vertex = {"predictions": [{"embeddings": {"statistics": {"token_count": 4.0}}}] * 2}
    assert gp.parse_embeddings(vertex).input_tokens == 8
    images = {"predictions": [{"bytesBase64Encoded": "x"}, {"raiFilteredReason": "y"}, {"gcsUri": "gs://b/o"}]}
    assert gp.parse_images(images).images == 2
    assert gp.image_size("9:16", "2K") == "1536x2816" and gp.image_size() == "1024x1024"
    assert gp.image_size("21:9") == "21:9"


# -------------------------------------------------------------------------------------- embeddings, images


def test_embeddings(client, otel):
    client.models.embed_content(model="gemini-embedding-001", contents=["a", "b"], config={"output_dimensionality": 64})
    span, record = only_span(otel), only_record(otel)
    tokens = 2 * fake.EMBED_TOKENS_PER_INPUT
    assert span.name == "embeddings gemini-embedding-001"
    assert span.attributes[sc.GEN_AI_OPERATION_NAME] == sc.OPERATION_EMBEDDINGS
    assert span.attributes[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == 64
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == tokens
    assert sc.GEN_AI_USAGE_OUTPUT_TOKENS not in span.attributes
    expected = estimate(Usage(model="gemini-embedding-001", provider=sc.PROVIDER_GCP_GEMINI, input_tokens=tokens))
    assert record.energy_wh == pytest.approx(expected.energy_wh)
    assert record.output_type == "embedding" and record.token_accuracy == "exact"


def test_vertex_embeddings_sync_and_async(vertex, otel):
    vertex.models.embed_content(model="text-embedding-005", contents=["a", "b", "c"])
    asyncio.run(vertex.aio.models.embed_content(model="text-embedding-005", contents=["a"]))
    spans = otel.spans.get_finished_spans()
    assert [s.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] for s in spans] == [
        3 * fake.EMBED_TOKENS_PER_INPUT,
        fake.EMBED_TOKENS_PER_INPUT,
    ]
    assert all(s.attributes[sc.GEN_AI_PROVIDER_NAME] == sc.PROVIDER_GCP_VERTEX_AI for s in spans)


@pytest.mark.parametrize(("model", "count"), [("imagen-4.0-generate-001", 3), ("imagen-4.0-filtered", 2)])
def test_generate_images(vertex, otel, model, count):
    config = types.GenerateImagesConfig(number_of_images=3, aspect_ratio="16:9")
    response = vertex.models.generate_images(model=model, prompt="a lighthouse", config=config)
    assert len(response.generated_images) == 3
    span, record = only_span(otel), only_record(otel)
    assert span.name == f"image_generation {model}"
    assert span.attributes[sc.TAILPIPE_IMAGES_COUNT] == count
    assert span.attributes[sc.TAILPIPE_IMAGE_SIZE] == "1408x768"
    expected = estimate(Usage(model=model, provider=sc.PROVIDER_GCP_VERTEX_AI, images=count, image_size="1408x768"))
    assert (record.images, record.image_size, record.output_type) == (count, "1408x768", "image")
    assert record.energy_wh == pytest.approx(expected.energy_wh) and record.energy_wh > 0
    assert "usage_missing" not in record.flags


def test_async_generate_images_default_size(vertex, otel):
    asyncio.run(vertex.aio.models.generate_images(model="imagen-4.0-generate-001", prompt="x"))
    assert only_record(otel).image_size == "1024x1024"


def test_images_on_gemini_api_client_raise_unchanged(client, otel):
    with pytest.raises(ValueError, match="only supported"):
        client.models.generate_images(model="imagen-4.0-generate-001", prompt="x")
    assert only_span(otel).attributes[sc.ERROR_TYPE] == "ValueError"


# ------------------------------------------------------------------------------- videos (Veo)
# google-genai 3.x sends generate_videos only in Vertex mode (it raises ValueError on Gemini API clients).


def _video_wh(seconds, resolution):
    """The seed's per-second video figure x PSE x TL x PUE, read from the bundled tables (hand formula)."""
    from tailpipe_ai.carbon.datasets import load

    ds = load()
    f = ds.factors
    return seconds * ds.video[resolution].wh * f["pse"].value * f["transmission"].value * f["pue"].value


def test_generate_videos_counts_requested_seconds(vertex, otel):
    config = types.GenerateVideosConfig(duration_seconds=6, number_of_videos=2, resolution="1080p")
    operation = vertex.models.generate_videos(
        model="veo-3.0-generate-001", source=types.GenerateVideosSource(prompt="a lighthouse"), config=config
    )
    assert operation.name == "models/veo-3.0-generate-001/operations/fakeop123" and not operation.done
    span, record = only_span(otel), only_record(otel)
    assert span.name == "video_generation veo-3.0-generate-001"
    assert span.attributes[sc.GEN_AI_OUTPUT_TYPE] == sc.OUTPUT_TYPE_VIDEO
    assert (record.video_seconds, record.video_resolution, record.operation) == (12.0, "1080p", "video_generation")
    assert record.energy_wh == pytest.approx(_video_wh(12, "1080p"))


def test_generate_videos_defaults_and_async(vertex, otel):
    asyncio.run(vertex.aio.models.generate_videos(model="veo-3.0-fast-generate-001", source={"prompt": "x"}))
    record = only_record(otel)
    assert (record.video_seconds, record.video_resolution) == (8.0, "720p")  # Veo's defaults
    assert record.energy_wh == pytest.approx(_video_wh(8, "720p"))


def test_generate_videos_already_failed_generated_nothing(vertex, otel):
    vertex.models.generate_videos(model="fake-video-failed", source={"prompt": "x"})
    assert (only_record(otel).video_seconds, only_record(otel).energy_wh) == (0.0, 0.0)


# ------------------------------------------------------------------------------- wrapping, double counting


def test_global_and_client_wrapping_count_once(otel, base):
    inst = GoogleGenAIInstrumentor()
    inst.instrument(telemetry=otel.telemetry)
    try:
        c = wrap_client(wrap_client(_client(base), otel.telemetry), otel.telemetry)
        c.models.generate_content(model=MODEL, contents="x")
        list(c.models.generate_content_stream(model=MODEL, contents="x"))
        asyncio.run(c.aio.models.generate_content(model=MODEL, contents="x"))
    finally:
        inst.uninstrument()
    assert len(otel.spans.get_finished_spans()) == 3
    assert len(otel.sink.records) == 3


def test_uninstrument_restores_the_sdk(otel, base):
    from google.genai import models

    original = models.Models._generate_content
    inst = GoogleGenAIInstrumentor()
    inst.instrument(telemetry=otel.telemetry)
    assert models.Models._generate_content is not original
    inst.uninstrument()
    assert models.Models._generate_content is original
    c = _client(base)  # keep a reference: a collected Client closes its HTTP client
    c.models.generate_content(model=MODEL, contents="x")
    assert otel.spans.get_finished_spans() == ()
    assert GoogleGenAIInstrumentor().instrumentation_dependencies() == ("google-genai >= 1.0.0, < 4",)


def test_wrap_client_leaves_other_clients_alone(otel, base):
    kept, other = wrap_client(_client(base), otel.telemetry), _client(base)
    assert kept is not other
    other.models.generate_content(model=MODEL, contents="x")
    assert otel.spans.get_finished_spans() == ()


# ---------------------------------------------------------------------------------------------------- privacy


def test_no_content_or_secret_leaves(otel, base, mode, caplog):
    caplog.set_level(logging.DEBUG)
    canaries = {
        "key": "CANARY-gemini-api-key-91c2",
        "prompt": "CANARY-gemini-prompt-44d1",
        "system": "CANARY-gemini-system-0b7e",
        "tool": "CANARY-gemini-tool-args-5e90",
        "response": fake.RESPONSE_CANARY,
    }
    c = mode(_client(base, key=canaries["key"]))
    contents = [
        types.Content(
            role="model",
            parts=[types.Part(function_call=types.FunctionCall(name="lookup", args={"q": canaries["tool"]}))],
        ),
        types.Content(
            role="user",
            parts=[
                types.Part(
                    function_response=types.FunctionResponse(name="lookup", response={"result": canaries["tool"]})
                )
            ],
        ),
        types.Content(role="user", parts=[types.Part(text=canaries["prompt"])]),
    ]
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(name="lookup", description=canaries["tool"])])
    config = types.GenerateContentConfig(
        system_instruction=canaries["system"], tools=[tool], stop_sequences=[canaries["prompt"]]
    )
    c.models.generate_content(model=MODEL, contents=contents, config=config)
    c.models.generate_content(model="fake-tool", contents=contents, config=config)
    list(c.models.generate_content_stream(model=MODEL, contents=contents, config=config))
    asyncio.run(c.aio.models.generate_content(model=MODEL, contents=canaries["prompt"], config=config))
    c.models.embed_content(model="gemini-embedding-001", contents=[canaries["prompt"]])
    with pytest.raises(errors.ClientError):
        c.models.generate_content(model="fake-error-400", contents=canaries["prompt"], config=config)
    v = mode(_client(base, vertex=True, key=canaries["key"]))
    v.models.generate_images(model="imagen-4.0-generate-001", prompt=canaries["prompt"])

    spans = otel.spans.get_finished_spans()
    assert len(spans) == 7
    exported = [s.to_json() for s in spans]
    exported.append(otel.metrics.get_metrics_data().to_json())
    exported += [r.encode().decode() for r in otel.sink.records]
    exported.append(caplog.text)
    blob = "\n".join(exported)
    for name, canary in canaries.items():
        assert canary not in blob, name
    assert json.loads(otel.sink.records[0].encode())["provider"] == sc.PROVIDER_GCP_GEMINI
