"""Attribute names, metric names and the content denylist of tailpipe_ai.semconv.attributes."""

from __future__ import annotations

import pytest

from tailpipe_ai.semconv import attributes as a
from tailpipe_ai.semconv import is_content_attribute, is_content_event


def _module_constants() -> dict[str, str]:
    return {name: value for name, value in vars(a).items() if name.isupper() and isinstance(value, str)}


def test_pinned_semconv_version():
    assert a.GEN_AI_SEMCONV_VERSION == "1.41.0"


@pytest.mark.parametrize(
    ("constant", "expected"),
    [
        ("GEN_AI_OPERATION_NAME", "gen_ai.operation.name"),
        ("GEN_AI_PROVIDER_NAME", "gen_ai.provider.name"),
        ("GEN_AI_SYSTEM", "gen_ai.system"),
        ("GEN_AI_REQUEST_MODEL", "gen_ai.request.model"),
        ("GEN_AI_REQUEST_STREAM", "gen_ai.request.stream"),
        ("GEN_AI_REQUEST_CHOICE_COUNT", "gen_ai.request.choice.count"),
        ("GEN_AI_REQUEST_ENCODING_FORMATS", "gen_ai.request.encoding_formats"),
        ("GEN_AI_RESPONSE_MODEL", "gen_ai.response.model"),
        ("GEN_AI_RESPONSE_FINISH_REASONS", "gen_ai.response.finish_reasons"),
        ("GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK", "gen_ai.response.time_to_first_chunk"),
        ("GEN_AI_USAGE_INPUT_TOKENS", "gen_ai.usage.input_tokens"),
        ("GEN_AI_USAGE_OUTPUT_TOKENS", "gen_ai.usage.output_tokens"),
        ("GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS", "gen_ai.usage.cache_read.input_tokens"),
        ("GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS", "gen_ai.usage.cache_creation.input_tokens"),
        ("GEN_AI_USAGE_REASONING_OUTPUT_TOKENS", "gen_ai.usage.reasoning.output_tokens"),
        ("GEN_AI_OUTPUT_TYPE", "gen_ai.output.type"),
        ("GEN_AI_CONVERSATION_ID", "gen_ai.conversation.id"),
        ("GEN_AI_DATA_SOURCE_ID", "gen_ai.data_source.id"),
        ("GEN_AI_TOKEN_TYPE", "gen_ai.token.type"),
        ("SERVER_ADDRESS", "server.address"),
        ("SERVER_PORT", "server.port"),
        ("ERROR_TYPE", "error.type"),
        ("TAILPIPE_ENERGY_WH", "tailpipe.energy.wh"),
        ("TAILPIPE_CARBON_GCO2E_MAX", "tailpipe.carbon.gco2e_max"),
        ("TAILPIPE_FACTORS_GRID_GCO2E_PER_KWH", "tailpipe.factors.grid_gco2e_per_kwh"),
        ("TAILPIPE_ATTR_PREFIX", "tailpipe.attr."),
    ],
)
def test_attribute_names(constant, expected):
    assert getattr(a, constant) == expected


def test_metrics_names_units_and_buckets():
    assert a.METRIC_GEN_AI_CLIENT_TOKEN_USAGE == "gen_ai.client.token.usage"
    assert a.METRIC_GEN_AI_CLIENT_TOKEN_USAGE_UNIT == "{token}"
    assert a.METRIC_GEN_AI_CLIENT_OPERATION_DURATION == "gen_ai.client.operation.duration"
    assert a.METRIC_GEN_AI_CLIENT_OPERATION_DURATION_UNIT == "s"
    assert (a.TOKEN_TYPE_INPUT, a.TOKEN_TYPE_OUTPUT) == ("input", "output")
    assert tuple(4**i for i in range(14)) == a.TOKEN_USAGE_BUCKETS
    assert tuple(round(0.01 * 2**i, 2) for i in range(14)) == a.DURATION_BUCKETS
    assert a.METRIC_TAILPIPE_ENERGY == "tailpipe.energy"
    assert a.METRIC_TAILPIPE_ENERGY_UNIT == "Wh"
    assert a.METRIC_TAILPIPE_CARBON == "tailpipe.carbon"
    assert a.METRIC_TAILPIPE_CARBON_UNIT == "gCO2e"


def test_well_known_values():
    assert {
        "openai",
        "anthropic",
        "gcp.gemini",
        "gcp.vertex_ai",
        "gcp.gen_ai",
        "aws.bedrock",
        "azure.ai.openai",
        "azure.ai.inference",
        "mistral_ai",
        "cohere",
        "deepseek",
        "groq",
        "ibm.watsonx.ai",
        "perplexity",
        "x_ai",
    } == a.WELL_KNOWN_PROVIDERS
    assert {
        "chat",
        "text_completion",
        "embeddings",
        "generate_content",
        "create_agent",
        "invoke_agent",
        "execute_tool",
        "image_generation",
        "video_generation",
    } <= a.WELL_KNOWN_OPERATIONS
    assert {"text", "json", "image", "speech"} <= a.OUTPUT_TYPES
    assert {
        "sdk",
        "auto",
        "langchain",
        "proxy",
        "lambda",
        "gateway",
        "bedrock-cur",
        "azure-billing",
    } == a.INTEGRATIONS
    assert {"exact", "estimated"} == a.TOKEN_ACCURACIES
    assert {"flat", "shape", "class", "unknown"} == a.ESTIMATE_METHODS


def test_normalize_provider_name():
    assert a.normalize_provider_name("vertex_ai") == "gcp.vertex_ai"
    assert a.normalize_provider_name("gemini") == "gcp.gemini"
    assert a.normalize_provider_name("az.ai.openai") == "azure.ai.openai"
    assert a.normalize_provider_name("xai") == "x_ai"
    assert a.normalize_provider_name("openai") == "openai"
    assert a.normalize_provider_name("something-new") == "something-new"


def test_attribute_sets_cover_module_constants():
    constants = _module_constants()
    gen_ai_attr_constants = {
        v for k, v in constants.items() if k.startswith("GEN_AI_") and k != "GEN_AI_SEMCONV_VERSION"
    }
    assert gen_ai_attr_constants <= a.SEMCONV_ATTRIBUTES
    tailpipe_attr_constants = {
        v
        for k, v in constants.items()
        if k.startswith("TAILPIPE_") and k not in ("TAILPIPE_ATTR_PREFIX", "TAILPIPE_NAMESPACE")
    }
    assert tailpipe_attr_constants == a.TAILPIPE_ATTRIBUTES


def test_no_tailpipe_name_collides_with_a_semconv_name():
    assert not (a.TAILPIPE_ATTRIBUTES & a.SEMCONV_ATTRIBUTES)
    for name in a.TAILPIPE_ATTRIBUTES:
        assert name.startswith(a.TAILPIPE_NAMESPACE)
        assert not name.startswith(a.TAILPIPE_ATTR_PREFIX), name
    for name in a.SEMCONV_ATTRIBUTES:
        assert not name.startswith("tailpipe."), name
    # Each attribute name is spelled by exactly one constant (no accidental duplicates).
    names = [
        v
        for k, v in _module_constants().items()
        if (k.startswith(("GEN_AI_", "TAILPIPE_")) and k != "GEN_AI_SEMCONV_VERSION")
        or k in ("SERVER_ADDRESS", "SERVER_PORT", "ERROR_TYPE")
    ]
    assert len(names) == len(set(names))
    # Metric names are not attribute names.
    metrics = {v for k, v in _module_constants().items() if k.startswith("METRIC_") and "." in v and " " not in v}
    assert not (metrics & (a.SEMCONV_ATTRIBUTES | a.TAILPIPE_ATTRIBUTES))


@pytest.mark.parametrize("name", sorted(a.CONTENT_ATTRIBUTES))
def test_denylisted_names_are_content(name):
    assert is_content_attribute(name)


@pytest.mark.parametrize(
    "name",
    [
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.definitions",
        "gen_ai.prompt",
        "gen_ai.prompt.0.content",
        "gen_ai.prompt.1.role",
        "gen_ai.completion",
        "gen_ai.completion.0.content",
        "gen_ai.content.prompt",
        "gen_ai.content.completion",
        "gen_ai.content.reasoning",
        "llm.prompts",
        "llm.prompts.0.content",
        "llm.completions.0.content",
        "llm.input_messages.0.message.content",
        "llm.output_messages.0.message.content",
        "llm.prompt_template.template",
        "traceloop.entity.input",
        "traceloop.entity.output",
        "exception.message",
        "http.request.header.authorization",
    ],
)
def test_content_examples(name):
    assert is_content_attribute(name)


def test_every_prefix_matches():
    for prefix in a.CONTENT_ATTRIBUTE_PREFIXES:
        assert is_content_attribute(prefix + "x")


@pytest.mark.parametrize(
    "name",
    [
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.prompt_tokens",
        "gen_ai.usage.completion_tokens",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.operation.name",
        "gen_ai.tool.name",
        "exception.type",
        "tailpipe.attr.team",
        "llm.usage.total_tokens",
        "",
    ],
)
def test_metadata_is_not_content(name):
    assert not is_content_attribute(name)


def test_none_of_our_names_is_content():
    for name in a.SEMCONV_ATTRIBUTES | a.TAILPIPE_ATTRIBUTES:
        assert not is_content_attribute(name), name
    for name in (a.SERVICE_NAME, a.DEPLOYMENT_ENVIRONMENT_NAME, a.CLOUD_REGION, a.CLOUD_PROVIDER):
        assert not is_content_attribute(name), name


@pytest.mark.parametrize(
    "name",
    [
        "gen_ai.system.message",
        "gen_ai.user.message",
        "gen_ai.assistant.message",
        "gen_ai.tool.message",
        "gen_ai.choice",
        "gen_ai.client.inference.operation.details",
        "gen_ai.some_future.message",
    ],
)
def test_content_events(name):
    assert is_content_event(name)


@pytest.mark.parametrize(
    "name", ["gen_ai.client.operation.exception", "gen_ai.evaluation.result", "exception", "message"]
)
def test_non_content_events(name):
    assert not is_content_event(name)
