"""Attribute, value and metric names that tailpipe-ai emits or reads.

GenAI names follow the OpenTelemetry GenAI semantic conventions pinned in ``GEN_AI_SEMCONV_VERSION``
(v1.41.0, the last core release that still holds the GenAI docs). They are our own string constants: the
``gen_ai.*`` constants of ``opentelemetry-semantic-conventions`` are deprecated since 0.65b0, and this module
must not import OpenTelemetry at all.

Our own extension lives under ``tailpipe.`` (energy, carbon, cost and the factors behind them). There is no
semantic convention for energy or carbon; nothing here uses the ``gen_ai.`` namespace for our additions.

The module also holds the content denylist: attribute and event names that carry prompts, responses,
tool payloads or credentials, which the ContentGuard strips from third-party spans before any export
(see ``is_content_attribute`` and ``is_content_event``).
"""

from __future__ import annotations

GEN_AI_SEMCONV_VERSION = "1.41.0"
"""Version of the OpenTelemetry GenAI semantic conventions the ``gen_ai.*`` names below are pinned to."""

# ---------------------------------------------------------------------------------------------------------
# GenAI semconv v1.41.0: operation
# ---------------------------------------------------------------------------------------------------------

GEN_AI_OPERATION_NAME = "gen_ai.operation.name"

# Well-known values of gen_ai.operation.name (v1.41.0).
OPERATION_CHAT = "chat"
OPERATION_GENERATE_CONTENT = "generate_content"
OPERATION_TEXT_COMPLETION = "text_completion"
OPERATION_EMBEDDINGS = "embeddings"
OPERATION_RETRIEVAL = "retrieval"
OPERATION_CREATE_AGENT = "create_agent"
OPERATION_INVOKE_AGENT = "invoke_agent"
OPERATION_INVOKE_WORKFLOW = "invoke_workflow"
OPERATION_EXECUTE_TOOL = "execute_tool"
# tailpipe-ai extensions (not in semconv v1.41.0; semconv lets instrumentations use other names when no
# predefined value applies). Used for image and video generation endpoints.
OPERATION_IMAGE_GENERATION = "image_generation"
OPERATION_VIDEO_GENERATION = "video_generation"

WELL_KNOWN_OPERATIONS = frozenset(
    {
        OPERATION_CHAT,
        OPERATION_GENERATE_CONTENT,
        OPERATION_TEXT_COMPLETION,
        OPERATION_EMBEDDINGS,
        OPERATION_RETRIEVAL,
        OPERATION_CREATE_AGENT,
        OPERATION_INVOKE_AGENT,
        OPERATION_INVOKE_WORKFLOW,
        OPERATION_EXECUTE_TOOL,
        OPERATION_IMAGE_GENERATION,
        OPERATION_VIDEO_GENERATION,
    }
)
"""Semconv v1.41.0 operation values plus our two extensions (image_generation, video_generation)."""

# ---------------------------------------------------------------------------------------------------------
# GenAI semconv v1.41.0: provider
# ---------------------------------------------------------------------------------------------------------

GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"

# Well-known values of gen_ai.provider.name (v1.41.0).
PROVIDER_OPENAI = "openai"
PROVIDER_ANTHROPIC = "anthropic"
PROVIDER_GCP_GEMINI = "gcp.gemini"  # generativelanguage.googleapis.com (AI Studio)
PROVIDER_GCP_VERTEX_AI = "gcp.vertex_ai"  # aiplatform.googleapis.com
PROVIDER_GCP_GEN_AI = "gcp.gen_ai"  # a Google backend that cannot be told apart
PROVIDER_AWS_BEDROCK = "aws.bedrock"
PROVIDER_AZURE_AI_OPENAI = "azure.ai.openai"
PROVIDER_AZURE_AI_INFERENCE = "azure.ai.inference"
PROVIDER_MISTRAL_AI = "mistral_ai"
PROVIDER_COHERE = "cohere"
PROVIDER_DEEPSEEK = "deepseek"
PROVIDER_GROQ = "groq"
PROVIDER_IBM_WATSONX_AI = "ibm.watsonx.ai"
PROVIDER_PERPLEXITY = "perplexity"
PROVIDER_X_AI = "x_ai"

WELL_KNOWN_PROVIDERS = frozenset(
    {
        PROVIDER_OPENAI,
        PROVIDER_ANTHROPIC,
        PROVIDER_GCP_GEMINI,
        PROVIDER_GCP_VERTEX_AI,
        PROVIDER_GCP_GEN_AI,
        PROVIDER_AWS_BEDROCK,
        PROVIDER_AZURE_AI_OPENAI,
        PROVIDER_AZURE_AI_INFERENCE,
        PROVIDER_MISTRAL_AI,
        PROVIDER_COHERE,
        PROVIDER_DEEPSEEK,
        PROVIDER_GROQ,
        PROVIDER_IBM_WATSONX_AI,
        PROVIDER_PERPLEXITY,
        PROVIDER_X_AI,
    }
)

# Legacy attribute (renamed to gen_ai.provider.name in v1.37.0). We never emit it; we still read it from
# third-party spans (e.g. the botocore Bedrock extension still sets it).
GEN_AI_SYSTEM = "gen_ai.system"

LEGACY_SYSTEM_TO_PROVIDER = {
    "vertex_ai": PROVIDER_GCP_VERTEX_AI,
    "gemini": PROVIDER_GCP_GEMINI,
    "az.ai.inference": PROVIDER_AZURE_AI_INFERENCE,
    "az.ai.openai": PROVIDER_AZURE_AI_OPENAI,
    "xai": PROVIDER_X_AI,
}
"""Deprecated ``gen_ai.system`` values that differ from their ``gen_ai.provider.name`` replacement."""


def normalize_provider_name(value: str) -> str:
    """Map a legacy ``gen_ai.system`` value to its ``gen_ai.provider.name`` form; other values unchanged."""
    return LEGACY_SYSTEM_TO_PROVIDER.get(value, value)


# ---------------------------------------------------------------------------------------------------------
# GenAI semconv v1.41.0: request
# ---------------------------------------------------------------------------------------------------------

GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K = "gen_ai.request.top_k"
GEN_AI_REQUEST_FREQUENCY_PENALTY = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"  # boolean, added in v1.41.0
GEN_AI_REQUEST_CHOICE_COUNT = "gen_ai.request.choice.count"
GEN_AI_REQUEST_SEED = "gen_ai.request.seed"
GEN_AI_REQUEST_ENCODING_FORMATS = "gen_ai.request.encoding_formats"  # string[], embeddings
GEN_AI_EMBEDDINGS_DIMENSION_COUNT = "gen_ai.embeddings.dimension.count"
# Not defined: gen_ai.request.stop_sequences can hold user text; it is on the content denylist.

# ---------------------------------------------------------------------------------------------------------
# GenAI semconv v1.41.0: response
# ---------------------------------------------------------------------------------------------------------

GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"  # string[]
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"  # double, seconds (v1.41.0)

# ---------------------------------------------------------------------------------------------------------
# GenAI semconv v1.41.0: usage
# ---------------------------------------------------------------------------------------------------------

GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"  # SHOULD include cached tokens
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"  # SHOULD include reasoning tokens
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"  # v1.40.0
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"  # v1.40.0
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"  # v1.41.0

# Read-only names found on third-party spans; we never emit them.
# Unreleased rename of cache_creation on the semantic-conventions-genai main branch (watch list).
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS = "gen_ai.usage.cache_write.input_tokens"
# Deprecated before v1.41.0 (replaced by input_tokens / output_tokens).
GEN_AI_USAGE_PROMPT_TOKENS = "gen_ai.usage.prompt_tokens"
GEN_AI_USAGE_COMPLETION_TOKENS = "gen_ai.usage.completion_tokens"

# ---------------------------------------------------------------------------------------------------------
# GenAI semconv v1.41.0: output type, identifiers
# ---------------------------------------------------------------------------------------------------------

GEN_AI_OUTPUT_TYPE = "gen_ai.output.type"

# Well-known values of gen_ai.output.type (v1.41.0).
OUTPUT_TYPE_TEXT = "text"
OUTPUT_TYPE_JSON = "json"
OUTPUT_TYPE_IMAGE = "image"
OUTPUT_TYPE_SPEECH = "speech"
# tailpipe-ai extensions used in the record's output_type (not semconv v1.41.0 values).
OUTPUT_TYPE_VIDEO = "video"
OUTPUT_TYPE_EMBEDDING = "embedding"
OUTPUT_TYPE_AUDIO = "audio"

OUTPUT_TYPES = frozenset(
    {
        OUTPUT_TYPE_TEXT,
        OUTPUT_TYPE_JSON,
        OUTPUT_TYPE_IMAGE,
        OUTPUT_TYPE_SPEECH,
        OUTPUT_TYPE_VIDEO,
        OUTPUT_TYPE_EMBEDDING,
        OUTPUT_TYPE_AUDIO,
    }
)
"""Values allowed in the record's ``output_type`` (semconv values plus our extensions)."""

GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_DATA_SOURCE_ID = "gen_ai.data_source.id"

# ---------------------------------------------------------------------------------------------------------
# General semconv attributes used on GenAI spans
# ---------------------------------------------------------------------------------------------------------

SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
ERROR_TYPE_OTHER = "_OTHER"  # fallback value of error.type when no better one is known

# Resource attributes copied into the record's ``environment`` object (keys are these names).
SERVICE_NAME = "service.name"
DEPLOYMENT_ENVIRONMENT_NAME = "deployment.environment.name"  # current semconv name
DEPLOYMENT_ENVIRONMENT = "deployment.environment"  # deprecated name, still common; read only
CLOUD_PROVIDER = "cloud.provider"
CLOUD_REGION = "cloud.region"

# ---------------------------------------------------------------------------------------------------------
# GenAI semconv v1.41.0: metrics
# ---------------------------------------------------------------------------------------------------------

GEN_AI_TOKEN_TYPE = "gen_ai.token.type"
TOKEN_TYPE_INPUT = "input"
TOKEN_TYPE_OUTPUT = "output"

METRIC_GEN_AI_CLIENT_TOKEN_USAGE = "gen_ai.client.token.usage"  # histogram
METRIC_GEN_AI_CLIENT_TOKEN_USAGE_UNIT = "{token}"
METRIC_GEN_AI_CLIENT_TOKEN_USAGE_DESCRIPTION = "Number of input and output tokens used."

METRIC_GEN_AI_CLIENT_OPERATION_DURATION = "gen_ai.client.operation.duration"  # histogram
METRIC_GEN_AI_CLIENT_OPERATION_DURATION_UNIT = "s"
METRIC_GEN_AI_CLIENT_OPERATION_DURATION_DESCRIPTION = "GenAI operation duration."

# Streaming only (v1.41.0): "SHOULD NOT be reported otherwise".
METRIC_GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
METRIC_GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK = "gen_ai.client.operation.time_per_output_chunk"
METRIC_GEN_AI_CLIENT_OPERATION_CHUNK_UNIT = "s"

# Explicit bucket boundaries advised by semconv v1.41.0 (gen-ai-metrics.md).
TOKEN_USAGE_BUCKETS: tuple[float, ...] = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)
DURATION_BUCKETS: tuple[float, ...] = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
"""Also advised for the time_to_first_chunk and time_per_output_chunk histograms."""

# ---------------------------------------------------------------------------------------------------------
# tailpipe-ai extension: span attributes (namespace "tailpipe.")
# ---------------------------------------------------------------------------------------------------------

TAILPIPE_NAMESPACE = "tailpipe."

# Energy (watt-hours) and carbon (grams CO2-equivalent), central estimate and range.
TAILPIPE_ENERGY_WH = "tailpipe.energy.wh"
TAILPIPE_ENERGY_WH_MIN = "tailpipe.energy.wh_min"
TAILPIPE_ENERGY_WH_MAX = "tailpipe.energy.wh_max"
TAILPIPE_CARBON_GCO2E = "tailpipe.carbon.gco2e"
TAILPIPE_CARBON_GCO2E_MIN = "tailpipe.carbon.gco2e_min"
TAILPIPE_CARBON_GCO2E_MAX = "tailpipe.carbon.gco2e_max"
TAILPIPE_COST_USD = "tailpipe.cost.usd"

# How the figures were obtained.
TAILPIPE_TOKEN_ACCURACY = "tailpipe.token_accuracy"
TAILPIPE_ESTIMATE_METHOD = "tailpipe.estimate.method"
TAILPIPE_MODEL_RESOLVED = "tailpipe.model.resolved"  # dataset entry id the model resolved to
TAILPIPE_MODEL_SIZE_CLASS = "tailpipe.model.size_class"
TAILPIPE_DATASET_VERSION = "tailpipe.dataset.version"
TAILPIPE_REGION = "tailpipe.region"
TAILPIPE_FLAGS = "tailpipe.flags"  # string[]

# Factors applied (numbers).
TAILPIPE_FACTORS_PUE = "tailpipe.factors.pue"
TAILPIPE_FACTORS_GRID_GCO2E_PER_KWH = "tailpipe.factors.grid_gco2e_per_kwh"
TAILPIPE_FACTORS_PSE = "tailpipe.factors.pse"
TAILPIPE_FACTORS_TRANSMISSION = "tailpipe.factors.transmission"

# Image and video usage (no semconv exists for these).
TAILPIPE_IMAGES_COUNT = "tailpipe.images.count"
TAILPIPE_IMAGE_SIZE = "tailpipe.image.size"  # e.g. "1024x1024"
TAILPIPE_IMAGE_QUALITY = "tailpipe.image.quality"  # e.g. "standard", "hd", "low", "high"
TAILPIPE_VIDEO_SECONDS = "tailpipe.video.seconds"
TAILPIPE_VIDEO_RESOLUTION = "tailpipe.video.resolution"  # e.g. "1280x720"

# Which integration produced the span or record (values: INTEGRATIONS below).
TAILPIPE_INTEGRATION = "tailpipe.integration"
TAILPIPE_LANGCHAIN_RUN_TYPE = "tailpipe.langchain.run_type"  # chain | tool | retriever, on LangChain run spans

# Prefix of user cost-attribution tags: tailpipe.attr.team, tailpipe.attr.project, ...
TAILPIPE_ATTR_PREFIX = "tailpipe.attr."

# Values of tailpipe.token_accuracy (and the record's token_accuracy).
TOKEN_ACCURACY_EXACT = "exact"
TOKEN_ACCURACY_ESTIMATED = "estimated"
TOKEN_ACCURACIES = frozenset({TOKEN_ACCURACY_EXACT, TOKEN_ACCURACY_ESTIMATED})

# Values of tailpipe.estimate.method.
ESTIMATE_METHOD_FLAT = "flat"  # tokens x Wh per token
ESTIMATE_METHOD_SHAPE = "shape"  # per-input-token, per-output-token and per-request energy
ESTIMATE_METHOD_CLASS = "class"  # model not in the dataset: its size class average
ESTIMATE_METHOD_UNKNOWN = "unknown"  # no estimate could be made
ESTIMATE_METHODS = frozenset(
    {ESTIMATE_METHOD_FLAT, ESTIMATE_METHOD_SHAPE, ESTIMATE_METHOD_CLASS, ESTIMATE_METHOD_UNKNOWN}
)

# Values of tailpipe.model.size_class (parameter count).
SIZE_CLASS_NANO = "nano"  # < 7B
SIZE_CLASS_MICRO = "micro"  # 7-20B
SIZE_CLASS_SMALL = "small"  # 20-40B
SIZE_CLASS_MEDIUM = "medium"  # 40-70B
SIZE_CLASS_LARGE = "large"  # > 70B
SIZE_CLASSES = frozenset({SIZE_CLASS_NANO, SIZE_CLASS_MICRO, SIZE_CLASS_SMALL, SIZE_CLASS_MEDIUM, SIZE_CLASS_LARGE})

# Well-known entries of tailpipe.flags (the list is open; components may add their own).
FLAG_MODEL_UNKNOWN = "model_unknown"  # model not resolved to a dataset entry nor a size class
FLAG_USAGE_MISSING = "usage_missing"  # the provider reported no usage
FLAG_STREAM_INCOMPLETE = "stream_incomplete"  # stream closed or abandoned before its end

# Values of tailpipe.integration (and the record's integration).
INTEGRATION_SDK = "sdk"
INTEGRATION_AUTO = "auto"
INTEGRATION_LANGCHAIN = "langchain"
INTEGRATION_PROXY = "proxy"
INTEGRATION_LAMBDA = "lambda"
INTEGRATION_GATEWAY = "gateway"
INTEGRATION_BEDROCK_CUR = "bedrock-cur"
INTEGRATION_AZURE_BILLING = "azure-billing"
INTEGRATIONS = frozenset(
    {
        INTEGRATION_SDK,
        INTEGRATION_AUTO,
        INTEGRATION_LANGCHAIN,
        INTEGRATION_PROXY,
        INTEGRATION_LAMBDA,
        INTEGRATION_GATEWAY,
        INTEGRATION_BEDROCK_CUR,
        INTEGRATION_AZURE_BILLING,
    }
)

# ---------------------------------------------------------------------------------------------------------
# tailpipe-ai extension: metrics
# ---------------------------------------------------------------------------------------------------------

METRIC_TAILPIPE_ENERGY = "tailpipe.energy"  # counter
METRIC_TAILPIPE_ENERGY_UNIT = "Wh"
METRIC_TAILPIPE_ENERGY_DESCRIPTION = "Estimated energy used by GenAI operations, in watt-hours."

METRIC_TAILPIPE_CARBON = "tailpipe.carbon"  # counter
METRIC_TAILPIPE_CARBON_UNIT = "gCO2e"
METRIC_TAILPIPE_CARBON_DESCRIPTION = (
    "Estimated location-based emissions of GenAI operations, in grams of CO2-equivalent."
)

# ---------------------------------------------------------------------------------------------------------
# Attribute name sets
# ---------------------------------------------------------------------------------------------------------

SEMCONV_ATTRIBUTES = frozenset(
    {
        GEN_AI_OPERATION_NAME,
        GEN_AI_PROVIDER_NAME,
        GEN_AI_SYSTEM,
        GEN_AI_REQUEST_MODEL,
        GEN_AI_REQUEST_MAX_TOKENS,
        GEN_AI_REQUEST_TEMPERATURE,
        GEN_AI_REQUEST_TOP_P,
        GEN_AI_REQUEST_TOP_K,
        GEN_AI_REQUEST_FREQUENCY_PENALTY,
        GEN_AI_REQUEST_PRESENCE_PENALTY,
        GEN_AI_REQUEST_STREAM,
        GEN_AI_REQUEST_CHOICE_COUNT,
        GEN_AI_REQUEST_SEED,
        GEN_AI_REQUEST_ENCODING_FORMATS,
        GEN_AI_EMBEDDINGS_DIMENSION_COUNT,
        GEN_AI_RESPONSE_MODEL,
        GEN_AI_RESPONSE_ID,
        GEN_AI_RESPONSE_FINISH_REASONS,
        GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
        GEN_AI_USAGE_INPUT_TOKENS,
        GEN_AI_USAGE_OUTPUT_TOKENS,
        GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
        GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
        GEN_AI_USAGE_PROMPT_TOKENS,
        GEN_AI_USAGE_COMPLETION_TOKENS,
        GEN_AI_OUTPUT_TYPE,
        GEN_AI_CONVERSATION_ID,
        GEN_AI_DATA_SOURCE_ID,
        GEN_AI_TOKEN_TYPE,
        SERVER_ADDRESS,
        SERVER_PORT,
        ERROR_TYPE,
    }
)
"""Every semconv span/metric attribute name defined above (emitted or read), resource attributes excluded."""

TAILPIPE_ATTRIBUTES = frozenset(
    {
        TAILPIPE_ENERGY_WH,
        TAILPIPE_ENERGY_WH_MIN,
        TAILPIPE_ENERGY_WH_MAX,
        TAILPIPE_CARBON_GCO2E,
        TAILPIPE_CARBON_GCO2E_MIN,
        TAILPIPE_CARBON_GCO2E_MAX,
        TAILPIPE_COST_USD,
        TAILPIPE_TOKEN_ACCURACY,
        TAILPIPE_ESTIMATE_METHOD,
        TAILPIPE_MODEL_RESOLVED,
        TAILPIPE_MODEL_SIZE_CLASS,
        TAILPIPE_DATASET_VERSION,
        TAILPIPE_REGION,
        TAILPIPE_FLAGS,
        TAILPIPE_FACTORS_PUE,
        TAILPIPE_FACTORS_GRID_GCO2E_PER_KWH,
        TAILPIPE_FACTORS_PSE,
        TAILPIPE_FACTORS_TRANSMISSION,
        TAILPIPE_IMAGES_COUNT,
        TAILPIPE_IMAGE_SIZE,
        TAILPIPE_IMAGE_QUALITY,
        TAILPIPE_VIDEO_SECONDS,
        TAILPIPE_VIDEO_RESOLUTION,
        TAILPIPE_INTEGRATION,
        TAILPIPE_LANGCHAIN_RUN_TYPE,
    }
)
"""Every ``tailpipe.*`` span attribute name (the ``tailpipe.attr.`` tag prefix aside)."""

# ---------------------------------------------------------------------------------------------------------
# Content denylist: names that carry prompts, responses, tool payloads or secrets. Never emitted by us;
# stripped from third-party spans and span events by the ContentGuard. Exact names first, then prefixes.
# ---------------------------------------------------------------------------------------------------------

CONTENT_ATTRIBUTES = frozenset(
    {
        # semconv v1.41.0 opt-in content attributes
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.definitions",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "gen_ai.retrieval.query.text",
        "gen_ai.retrieval.documents",
        "gen_ai.evaluation.explanation",  # free text
        "gen_ai.agent.description",  # free text
        "gen_ai.request.stop_sequences",  # may contain user text
        # semantic-conventions-genai main (unreleased) content attributes
        "gen_ai.memory.query.text",
        "gen_ai.memory.records",
        "gen_ai.tool_definitions.raw",
        # util-genai upload hook: references to uploaded content
        "gen_ai.input.messages.ref",
        "gen_ai.output.messages.ref",
        "gen_ai.system_instructions.ref",
        # OpenLLMetry (traceloop) vendor attributes
        "traceloop.entity.input",
        "traceloop.entity.output",
        "traceloop.prompt.template",
        "traceloop.prompt.template_variables",
        "llm.request.functions",
        "llm.content.completion.chunk",
        "mcp.request.argument",
        "mcp.response.value",
        # OpenLIT vendor attributes
        "gen_ai.tool.input",
        "gen_ai.tool.output",
        "gen_ai.tool.args",
        "gen_ai.workflow.input",
        "gen_ai.workflow.output",
        "gen_ai.agent.instructions",
        "gen_ai.agent.expected_output",
        "gen_ai.agent.actual_output",
        "gen_ai.agent.human_input",
        "gen_ai.agent.action.tool_input",
        "gen_ai.agent.finish.output",
        "gen_ai.request.speech.prompt",
        # OpenInference (Arize) attributes
        "input.value",
        "output.value",
        # Exception details: provider errors can echo prompt fragments (keep exception.type)
        "exception.message",
        "exception.stacktrace",
        # Credentials captured by HTTP instrumentations when header capture is configured
        "http.request.header.authorization",
        "http.request.header.proxy-authorization",
        "http.request.header.cookie",
        "http.request.header.x-api-key",
        "http.request.header.api-key",
        "http.request.header.x-goog-api-key",
        "http.request.header.x-amz-security-token",
        "http.response.header.set-cookie",
    }
)
"""Exact attribute names that must never leave the process."""

CONTENT_ATTRIBUTE_PREFIXES: tuple[str, ...] = (
    "gen_ai.prompt",  # gen_ai.prompt, gen_ai.prompt.0.content, ... (deprecated semconv, OpenLLMetry)
    "gen_ai.completion",  # gen_ai.completion, gen_ai.completion.0.content, ...
    "gen_ai.content.",  # OpenLIT gen_ai.content.prompt / completion / reasoning / revised_prompt
    "llm.prompts",  # OpenLLMetry legacy
    "llm.completions",
    "llm.input_messages",  # OpenInference
    "llm.output_messages",
    "llm.prompt_template.",
)
"""Attribute name prefixes that must never leave the process (matched with ``str.startswith``)."""

CONTENT_EVENTS = frozenset(
    {
        # deprecated per-message events (v1.37.0)
        "gen_ai.system.message",
        "gen_ai.user.message",
        "gen_ai.assistant.message",
        "gen_ai.tool.message",
        "gen_ai.choice",
        # v1.41.0 event that carries the opt-in content attributes
        "gen_ai.client.inference.operation.details",
        # OpenLIT events
        "gen_ai.content.prompt",
        "gen_ai.content.completion",
    }
)
"""Exact span/log event names whose payload is content; drop the whole event."""


def is_content_attribute(name: str) -> bool:
    """True if an attribute of this name may carry content or a secret and must be stripped."""
    return name in CONTENT_ATTRIBUTES or name.startswith(CONTENT_ATTRIBUTE_PREFIXES)


def is_content_event(name: str) -> bool:
    """True if a span or log event of this name carries content (``gen_ai.*.message`` included)."""
    return name in CONTENT_EVENTS or (name.startswith("gen_ai.") and name.endswith(".message"))
