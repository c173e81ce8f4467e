"""Cost from genai-prices: cache-aware, and null (never a guess) when no price is known."""

import pytest

from tailpipe_ai.carbon import Usage, cost_usd


def test_known_model_is_priced_cache_aware():
    plain = cost_usd(Usage(model="gpt-4o", input_tokens=1_000_000, output_tokens=0), "openai")
    cached = cost_usd(
        Usage(model="gpt-4o", input_tokens=1_000_000, output_tokens=0, cache_read_tokens=1_000_000), "openai"
    )
    assert plain is not None and cached is not None
    assert cached < plain  # cached input is cheaper


def test_anthropic_dated_id():
    assert cost_usd(Usage(model="claude-sonnet-4-20250514", input_tokens=1000, output_tokens=1000), "anthropic") > 0


@pytest.mark.parametrize(
    "usage",
    [
        Usage(model="no-such-model-xyz", input_tokens=10, output_tokens=10),
        Usage(model=None, input_tokens=10),
        Usage(model="gpt-4o", total_tokens=1000),  # no split: cannot be priced honestly
    ],
)
def test_unknown_is_none(usage):
    assert cost_usd(usage) is None


def test_bedrock_id_is_priced_through_its_cleaned_form():
    usage = Usage(model="us.anthropic.claude-3-7-sonnet-20250219-v1:0", input_tokens=12_000, output_tokens=800)
    assert cost_usd(usage, "aws.bedrock") == pytest.approx(12_000 * 3e-6 + 800 * 15e-6)


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-20250514", "gemini-2.5-flash"])
def test_fast_rates_match_genai_prices_exactly(model):
    import genai_prices

    for i, o, cr, cw in [(1000, 200, 0, 0), (50_000, 10, 40_000, 0), (3000, 3000, 0, 2000), (7, 0, 0, 0)]:
        usage = Usage(model=model, input_tokens=i, output_tokens=o, cache_read_tokens=cr, cache_write_tokens=cw)
        ours = cost_usd(usage)
        try:
            ref = genai_prices.calc_price(
                genai_prices.Usage(input_tokens=i, output_tokens=o, cache_read_tokens=cr, cache_write_tokens=cw),
                model_ref=model,
            )
        except LookupError:
            assert ours is None
            continue
        assert ours == pytest.approx(float(ref.total_price), rel=1e-9, abs=1e-12)


def test_tiered_prices_are_priced_by_the_library_in_full():
    import genai_prices

    for tokens in (10_000, 300_000):  # under and over gemini-2.5-pro's 200k-token tier
        usage = Usage(model="gemini-2.5-pro", input_tokens=tokens, output_tokens=1000)
        counts = genai_prices.Usage(input_tokens=tokens, output_tokens=1000)
        ref = genai_prices.calc_price(counts, model_ref="gemini-2.5-pro", provider_id="google")
        assert cost_usd(usage, "gcp.gemini") == pytest.approx(float(ref.total_price), rel=1e-12)


def test_a_failing_price_library_gives_no_cost(monkeypatch):
    import genai_prices

    def broken(*args, **kwargs):
        raise RuntimeError("price data unreadable")

    monkeypatch.setattr(genai_prices, "calc_price", broken)
    usage = Usage(model="gemini-1.5-pro-002", input_tokens=10, output_tokens=10)  # not yet looked up
    assert cost_usd(usage, "gcp.gemini") is None
