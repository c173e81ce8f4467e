"""Cost of a usage in USD from genai-prices (a maintained, cache-aware price database).

Returns None when no price is known: a cost is never guessed.
"""

from __future__ import annotations

import logging
from functools import lru_cache

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
    try:
        result = lib.calc_price(lib.Usage(**counts), model_ref=usage.model, provider_id=provider_id)
    except LookupError:
        if provider_id is None:
            return None
        try:  # the provider id may be one genai-prices files differently: try by model alone
            result = lib.calc_price(lib.Usage(**counts), model_ref=usage.model)
        except LookupError:
            return None
    except Exception as exc:  # the price library must never break a caller
        log.debug("genai-prices failed for model %r: %s", usage.model, type(exc).__name__)
        return None
    return float(result.total_price)
