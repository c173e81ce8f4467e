"""The carbon engine: methods, ranges, PUE correction, media, regions, bad input."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailpipe_ai.carbon import UnknownRegionError, Usage, UsageError, estimate, load_datasets

IT_ONLY = {"pse": 1, "transmission": 1, "pue": 1}


def test_pue_is_never_counted_twice():
    """Paper figures include Azure's PUE 1.12: applying PUE 1.12 again must give back the paper's figure."""
    e = estimate(
        Usage(model="gpt-4o", total_tokens=1000),
        method="flat",
        overrides={"pse": 1, "transmission": 1, "pue": 1.12},
    )
    assert e.energy_wh == pytest.approx(1.214)  # GPT-4o medium query, Wh incl. PUE 1.12
    assert e.factors["model"]["source_pue_divided_out"]["value"] == 1.12


def test_flat_is_tokens_times_wh_per_token_times_factors():
    e = estimate(
        Usage(model="llama-3.1-70b", input_tokens=700, output_tokens=300),
        method="flat",
        region="aws:eu-central-1",
    )
    wh_per_token = 3.558 / 1.14 / 1000
    assert e.energy_wh == pytest.approx(1000 * wh_per_token * 1.04 * 1.08 * 1.35)
    assert e.carbon_gco2e == pytest.approx(e.energy_wh / 1000 * 344.1)
    assert e.method == "flat"


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4.1", "claude-3-7-sonnet", "llama-3.1-405b", "deepseek-v3"])
def test_shape_reproduces_the_paper_on_its_own_shapes(model):
    entry = load_datasets().models[model]
    shapes = load_datasets().shapes
    raw = {"short": None, "medium": None, "long": None}
    from tailpipe_ai.carbon.datasets import _read

    doc, _ = _read("models.toml")
    for name in raw:
        i, o = shapes[name]
        measured = doc["models"][model][name][0]
        e = estimate(Usage(model=model, input_tokens=i, output_tokens=o), method="shape", overrides=IT_ONLY)
        assert e.energy_wh == pytest.approx(measured / entry.host_pue, rel=0.2), name


def test_shape_beats_flat_on_the_papers_measurements():
    """The evidence for the default method: over every measured model and shape, shape errs less."""
    ds = load_datasets()
    from tailpipe_ai.carbon.datasets import _read

    doc, _ = _read("models.toml")
    err = {"flat": [], "shape": []}
    for mid, entry in ds.models.items():
        if entry.kind != "measured":
            continue
        for name, (i, o) in ds.shapes.items():
            if name not in doc["models"][mid]:
                continue
            truth = doc["models"][mid][name][0] / entry.host_pue
            for method in err:
                e = estimate(Usage(model=mid, input_tokens=i, output_tokens=o), method=method, overrides=IT_ONLY)
                err[method].append(abs(e.energy_wh - truth) / truth)
    mape = {m: sum(v) / len(v) for m, v in err.items()}
    assert mape["shape"] < mape["flat"] / 3, mape


def test_default_method_is_shape_when_split_known():
    e = estimate(Usage(model="gpt-4o", input_tokens=20_000, output_tokens=300))
    assert e.method == "shape"
    flat = estimate(Usage(model="gpt-4o", input_tokens=20_000, output_tokens=300), method="flat")
    assert e.energy_wh < flat.energy_wh / 3  # input-heavy work is far cheaper per token than flat says


def test_seed_figure_borrows_its_siblings_split_and_keeps_the_medium_query():
    medium = estimate(Usage(model="claude-sonnet-4", input_tokens=1000, output_tokens=1000), overrides=IT_ONLY)
    assert medium.method == "shape"
    assert medium.energy_wh == pytest.approx(1000 * 0.00245)
    assert "claude-3-7-sonnet" in medium.factors["shape"]["derivation"]
    rag = estimate(Usage(model="claude-sonnet-4", input_tokens=20_000, output_tokens=300), overrides=IT_ONLY)
    assert rag.energy_wh < 20_300 * 0.00245 / 3


def test_figure_without_shapes_falls_back_to_flat_with_a_note():
    from tailpipe_ai.carbon.config import parse_config

    cfg = parse_config({"models": {"acme-llm": {"wh_per_token": 0.001}}}, "test")
    e = estimate(Usage(model="acme-llm", input_tokens=1000, output_tokens=1000), config=cfg)
    assert e.method == "flat"
    assert "no prompt-shape" in e.factors["method_note"]


@pytest.mark.parametrize("model", ["gpt-4o", "llama-3.1-8b", "mistral-large-2407", "unknown-xyz", "claude-sonnet-4"])
def test_ranges_are_ordered(model):
    for method in ("flat", "shape"):
        e = estimate(Usage(model=model, input_tokens=3000, output_tokens=500), method=method)
        assert e.energy_wh_min <= e.energy_wh <= e.energy_wh_max
        assert e.carbon_gco2e_min <= e.carbon_gco2e <= e.carbon_gco2e_max


def test_class_range_spans_members():
    e = estimate(Usage(model="mistral-large-2407", total_tokens=1000), method="flat", overrides=IT_ONLY)
    members = [load_datasets().models[m].figure for m in load_datasets().classes["large"].members]
    assert e.energy_wh_min == pytest.approx(min(f.flat_min for f in members) * 1000)
    assert e.energy_wh_max == pytest.approx(max(f.flat_max for f in members) * 1000)
    assert e.factors["model"]["size_class"] == "large"


def test_images_from_the_seed_table():
    e = estimate(Usage(model="dall-e-3", images=4, image_size="1792x1024", image_quality="hd"), overrides=IT_ONLY)
    assert e.energy_wh == pytest.approx(16.8)
    assert e.method == "media"
    assert e.factors["image"]["source"]["id"] == "scope3-2025"
    with_factors = estimate(Usage(model="dall-e-3", images=4, image_size="1792x1024", image_quality="hd"))
    assert with_factors.energy_wh == pytest.approx(16.8 * 1.04 * 1.08 * 1.54)


def test_unknown_image_size_uses_the_average_flagged():
    e = estimate(Usage(model="some-image-model", images=2, image_size="640x480"), overrides=IT_ONLY)
    assert e.energy_wh == pytest.approx(2 * 2.48)
    assert "image_size_unknown" in e.flags


@pytest.mark.parametrize(
    ("resolution", "wh", "flag"),
    [
        ("720p", 10_071.2, None),
        ("1280x720", 10_071.2, None),
        ("1080p", 40_284.8, None),
        ("2160p", 40_284.8, "video_resolution_above_table"),
        (None, 10_071.2, "video_resolution_unknown"),
    ],
)
def test_video_from_the_seed_table(resolution, wh, flag):
    e = estimate(Usage(model="sora-2", video_seconds=10, video_resolution=resolution), overrides=IT_ONLY)
    assert e.energy_wh == pytest.approx(wh)
    if flag:
        assert flag in e.flags


def test_region_sets_pue_and_grid():
    e = estimate(Usage(model="gpt-4o", total_tokens=1000), region="aws:eu-north-1")
    assert e.factors["pue"]["scope"] == "regional"
    assert e.factors["grid"]["area"] == "SE"
    assert e.factors["grid"]["value"] < 100
    fleet = estimate(Usage(model="gpt-4o", total_tokens=1000), region="azure:westus")
    assert fleet.factors["pue"]["scope"] in ("fleet", "regional")


@pytest.mark.parametrize(
    "spec",
    [
        "aws:eu-central-1",
        "eu-central-1",
        "EUC1",
        "DE",
        "country:DE",
        "DEU",
        "Germany",
        "gcp:europe-west3",
        "google:europe-west3",
        "azure:germanywestcentral",
    ],
)
def test_region_forms(spec):
    e = estimate(Usage(model="gpt-4o", total_tokens=1000), region=spec)
    assert e.factors["grid"]["area"] == "DE"


def test_no_region_uses_global_defaults_flagged():
    e = estimate(Usage(model="gpt-4o", total_tokens=1000))
    assert e.factors["pue"]["value"] == 1.54
    assert e.factors["grid"]["value"] == 473.0
    assert "location_unknown" in e.flags


def test_unknown_region_is_a_clear_error():
    with pytest.raises(UnknownRegionError, match=r"eu-centrall-1.*Did you mean"):
        estimate(Usage(model="gpt-4o", total_tokens=1), region="aws:eu-centrall-1")


@pytest.mark.parametrize(
    "bad",
    [
        {"input_tokens": -1},
        {"output_tokens": "12"},
        {"total_tokens": 1.5},
        {"images": True},
        {"video_seconds": float("nan")},
        {"requests": -3},
        {"requests": True},
        {"cache_read_tokens": -5},
        {"reasoning_tokens": 2**70 * -1},
    ],
)
def test_bad_usage_is_a_clear_error(bad):
    with pytest.raises(UsageError, match=next(iter(bad))):
        Usage(model="gpt-4o", **bad)


def test_whole_float_counts_become_ints_and_good_usage_is_kept_as_given():
    u = Usage(model="gpt-4o", input_tokens=5.0, output_tokens=2, cache_read_tokens=0, requests=None, video_seconds=3)
    assert (u.input_tokens, type(u.input_tokens), u.output_tokens, u.requests, u.video_seconds) == (5, int, 2, None, 3)
    assert Usage(input_tokens=1, output_tokens=2, reasoning_tokens=1, images=0).requests == 1


def test_unknown_model_is_flagged_not_raised():
    e = estimate(Usage(model="no-such-model-anywhere", input_tokens=10, output_tokens=10))
    assert "model_unknown" in e.flags
    assert e.energy_wh > 0


def test_no_usage_is_zero_and_flagged():
    e = estimate(Usage(model="gpt-4o"))
    assert e.energy_wh == 0 and "no_usage" in e.flags


def test_wh_per_token_override():
    e = estimate(Usage(model="gpt-4o", total_tokens=100), overrides={"wh_per_token": 0.01, **IT_ONLY})
    assert e.energy_wh == pytest.approx(1.0)
    assert e.method == "flat"


def test_every_factor_has_a_source():
    e = estimate(Usage(model="gpt-4o", input_tokens=10, output_tokens=10), region="aws:us-east-1")
    for key in ("pse", "transmission", "pue", "grid"):
        assert e.factors[key]["source"]["title"], key
    assert e.factors["model"]["source"]["url"].startswith("https://arxiv.org/abs/2505.09598v2")
    assert e.factors["dataset_version"] == load_datasets().version


@given(
    model=st.one_of(st.none(), st.text(max_size=40), st.sampled_from(["gpt-4o", "claude-sonnet-4", "llama-3.1-8b"])),
    i=st.integers(0, 10**9),
    o=st.integers(0, 10**9),
    method=st.sampled_from(["flat", "shape"]),
)
@settings(max_examples=200, deadline=None)
def test_estimate_is_finite_and_non_negative_for_any_model(model, i, o, method):
    e = estimate(Usage(model=model, input_tokens=i, output_tokens=o), method=method)
    for v in (e.energy_wh, e.energy_wh_min, e.energy_wh_max, e.carbon_gco2e):
        assert math.isfinite(v) and v >= 0


def test_to_dict_is_json_ready():
    import json

    e = estimate(Usage(model="gpt-4o", input_tokens=10, output_tokens=10), region="DE")
    doc = json.loads(json.dumps(e.to_dict()))
    assert doc["method"] == "shape"
    assert doc["factors"]["grid"]["area"] == "DE"


def test_known_model_without_public_size_gets_an_assumed_class():
    e = estimate(Usage(model="us.amazon.nova-pro-v1:0", input_tokens=100, output_tokens=100))
    assert {"model_size_unknown", "size_class_assumed"} <= set(e.flags)
    assert e.factors["model"]["size_class"] == "large"


def test_billing_line_without_request_count_is_flagged():
    e = estimate(Usage(model="gpt-4o", input_tokens=10**6, output_tokens=10**5, requests=None))
    assert "requests_unknown" in e.flags
    assert e.method == "shape"


def test_zero_tokens_cost_nothing_even_with_a_request_term():
    e = estimate(Usage(model="gpt-4o", input_tokens=0, output_tokens=0))
    assert e.energy_wh == 0 and "no_usage" in e.flags


def test_image_only_usage_carries_no_text_model_flags():
    e = estimate(Usage(model="dall-e-3", images=1, image_size="1024x1024", image_quality="standard"))
    assert "model_unknown" not in e.flags and "size_class_assumed" not in e.flags
    assert "location_unknown" in e.flags


def test_overriding_only_pue_still_flags_the_unknown_location():
    e = estimate(Usage(model="gpt-4o", total_tokens=10), overrides={"pue": 1.2})
    assert "location_unknown" in e.flags
    assert (
        "location_unknown"
        not in estimate(Usage(model="gpt-4o", total_tokens=10), overrides={"pue": 1.2, "grid": 300}).flags
    )


def test_shape_range_is_symmetric_and_never_collapses():
    e = estimate(Usage(model="gpt-4o", input_tokens=20_000, output_tokens=300))
    assert e.energy_wh_min < e.energy_wh < e.energy_wh_max
    assert e.energy_wh - e.energy_wh_min == pytest.approx(e.energy_wh_max - e.energy_wh)
