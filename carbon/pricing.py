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


def load() -> None:
    """Load the price data now rather than at the first call priced (genai-prices builds ~27,000 objects
    then): for a long-running process that sets its startup objects aside (`proxy.app.settle_process`)."""
    lib = _lib()
    if lib is not None:
        lib.data_snapshot.get_snapshot()


@lru_cache(maxsize=4096)
def _rates(model_ref: str, provider_id: str | None) -> tuple[float, float, float, float] | bool | None:
    """Per-token USD rates (input, output, cache read, cache write) for linear (untiered) prices.

    genai-prices takes hundreds of microseconds per calculation, too slow for every call, so the rates
    are read once per model by pricing one million tokens of each kind with the library itself. Returns
    None when the model is unknown, False when its prices are tiered (then every call is priced in full).
    """
    lib = _lib()
    try:
        base = lib.calc_price(lib.Usage(input_tokens=1_000_000), model_ref=model_ref, provider_id=provider_id)
    except LookupError:
        return None
    mp = base.model_price
    if any(
        type(getattr(mp, name, None)).__name__ == "TieredPrices"
        for name in ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
    ):
        return False

    def per_token(**counts: int) -> float:
        return (
            float(lib.calc_price(lib.Usage(**counts), model_ref=model_ref, provider_id=provider_id).total_price) / 1e6
        )

    m = 1_000_000
    return (
        float(base.total_price) / 1e6,
        per_token(output_tokens=m),
        per_token(input_tokens=m, cache_read_tokens=m),
        per_token(input_tokens=m, cache_write_tokens=m),
    )


@lru_cache(maxsize=4096)
def _price_plan(model: str, provider_id: str | None) -> tuple[str, str | None, tuple[float, ...] | bool] | None:
    """Under which id (and provider) genai-prices knows `model`, with its rates; worked out once per model.

    The id as given, then without Bedrock/Vertex/ARN decorations; with the provider, then without it
    (genai-prices may file a model under another provider id, e.g. Bedrock-hosted Claude)."""
    cleaned = clean_model_id(model)
    tries = [(model, provider_id), (cleaned, provider_id), (model, None), (cleaned, None)]
    for model_ref, prov in dict.fromkeys(tries):
        rates = _rates(model_ref, prov)
        if rates is not None:
            return model_ref, prov, rates
    return None


def cost_usd(usage: Usage, provider: str | None = None) -> float | None:
    """USD cost of `usage`, or None when the model (or the price library) is unknown."""
    return cost_of(
        usage.model,
        provider or usage.provider,
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
    )


def cost_of(
    model: str | None,
    provider: str | None,
    input_tokens: int | None,
    output_tokens: int | None,
    cache_read_tokens: int | None = None,
    cache_write_tokens: int | None = None,
) -> float | None:
    """`cost_usd` from the counts (checked, as a `Usage` holds them): for callers that have no `Usage`."""
    lib = _lib()
    if lib is None or not model:
        return None
    if input_tokens is None and output_tokens is None:
        return None  # prices differ per token kind: a bare total cannot be priced honestly
    provider_id = _PROVIDERS.get(provider.lower()) if provider else None
    inp, out = input_tokens or 0, output_tokens or 0
    cr, cw = cache_read_tokens or 0, cache_write_tokens or 0
    try:
        plan = _price_plan(model, provider_id)
        if plan is None:
            return None
        model_ref, prov, rates = plan
        if rates is False:  # tiered prices: the library prices the whole call
            counts = lib.Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=cr, cache_write_tokens=cw)
            return float(lib.calc_price(counts, model_ref=model_ref, provider_id=prov).total_price)
    except Exception as exc:  # the price library must never break a caller
        log.debug("genai-prices failed for model %r: %s", model, type(exc).__name__)
        return None
    p_in, p_out, p_read, p_write = rates
    return max(inp - cr - cw, 0) * p_in + cr * p_read + cw * p_write + out * p_out
