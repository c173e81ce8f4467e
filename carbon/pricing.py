"""Cost of a usage in USD from genai-prices (a maintained, cache-aware price database).

Returns None when no price is known: a cost is never guessed.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from .resolve import clean_model_id
from .usage import Usage

log = logging.getLogger(__name__)

# Our provider names (GenAI semconv values) -> genai-prices provider ids.
_PROVIDERS = {
    "openai": "openai",
    "azure.ai.openai": "azure",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "google": "google",
    "aws.bedrock": "aws",
    "mistral_ai": "mistral",
    "mistral": "mistral",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "groq": "groq",
    "x_ai": "x-ai",
    "perplexity": "perplexity",
}


@lru_cache(maxsize=1)
def _lib():
    try:
        import genai_prices
    except ImportError:  # pragma: no cover - a declared dependency
        log.warning("genai-prices is not installed: costs are reported as null")
        return None
    return genai_prices


def cost_usd(usage: Usage, provider: str | None = None) -> float | None:
    """USD cost of `usage`, or None when the model (or the price library) is unknown."""
    lib = _lib()
    if lib is None or not usage.model:
        return None
    if usage.input_tokens is None and usage.output_tokens is None:
        return None  # prices differ per token kind: a bare total cannot be priced honestly
    provider_id = _PROVIDERS.get((provider or usage.provider or "").lower())
    counts = {
        "input_tokens": usage.input_tokens or 0,
        "output_tokens": usage.output_tokens or 0,
        "cache_read_tokens": usage.cache_read_tokens or 0,
        "cache_write_tokens": usage.cache_write_tokens or 0,
    }
    # The id as given, then without Bedrock/Vertex/ARN decorations; with the provider, then without it
    # (genai-prices may file a model under another provider id, e.g. Bedrock-hosted Claude).
    cleaned = clean_model_id(usage.model)
    attempts = [(usage.model, provider_id), (cleaned, provider_id), (usage.model, None), (cleaned, None)]
    seen = set()
    for model_ref, prov in attempts:
        if (model_ref, prov) in seen or (prov is None and provider_id is None and (model_ref, None) in seen):
            continue
        seen.add((model_ref, prov))
        try:
            result = lib.calc_price(lib.Usage(**counts), model_ref=model_ref, provider_id=prov)
        except LookupError:
            continue
        except Exception as exc:  # the price library must never break a caller
            log.debug("genai-prices failed for model %r: %s", usage.model, type(exc).__name__)
            return None
        return float(result.total_price)
    return None
