"""The bundled data: every figure sourced, derived figures computed, version pinned to the data."""

import pytest

from tailpipe_ai.carbon import load_datasets
from tailpipe_ai.carbon.datasets import _read

# Changing any data file changes this digest. Then bump `dataset_version` in models.toml and record the
# new pair here: every estimate carries the version, so two different datasets must never share one.
PINNED = {"2026.11.1": "f330511074e42a25628cba5bac3264c8e816b42bf3f0c2c6a5fecc23ffb053bd"}


def test_dataset_version_matches_the_data():
    ds = load_datasets()
    assert ds.version in PINNED, f"unknown dataset_version {ds.version}: add it to PINNED"
    assert ds.digest == PINNED[ds.version], (
        "the bundled data changed: bump dataset_version in carbon/data/models.toml and pin "
        f"{ds.digest} for it in this test"
    )


def test_all_models_of_the_paper_are_present():
    ds = load_datasets()
    paper = {m for m, e in ds.models.items() if e.kind == "measured"}
    assert len(paper) == 28
    assert {"gpt-4o", "claude-3-7-sonnet", "deepseek-r1", "llama-3.2-1b", "o3"} <= paper


def test_every_model_has_a_source_and_positive_figures():
    ds = load_datasets()
    for entry in ds.models.values():
        if entry.kind in ("measured", "published", "sized"):
            assert entry.source is not None and entry.source.url, entry.id
        f = entry.figure
        if f is not None:
            assert 0 < f.flat_min <= f.flat <= f.flat_max, entry.id
            if f.shape:
                assert all(v >= 0 for v in f.shape.values()), entry.id


def test_flat_figure_divides_out_the_papers_pue():
    ds = load_datasets()
    doc, _ = _read("models.toml")
    for mid, entry in ds.models.items():
        if entry.kind == "measured":
            assert entry.figure.flat == pytest.approx(doc["models"][mid]["medium"][0] / entry.host_pue / 1000)
    assert ds.models["claude-3-7-sonnet"].host_pue == 1.14
    assert ds.models["gpt-4o"].host_pue == 1.12
    assert ds.models["deepseek-v3"].host_pue == 1.27


def test_class_averages_are_means_of_their_members():
    ds = load_datasets()
    for cls in ds.classes.values():
        members = [ds.models[m].figure for m in cls.members]
        assert cls.figure.flat == pytest.approx(sum(f.flat for f in members) / len(members))
    assert set(ds.classes) == {"nano", "micro", "small", "medium", "large"}


def test_sized_models_are_in_the_right_class():
    ds = load_datasets()
    from tailpipe_ai.carbon.datasets import size_class_for

    for entry in ds.models.values():
        if entry.kind == "sized":
            assert entry.size_class == size_class_for(entry.params_b)
    assert size_class_for(6.9) == "nano" and size_class_for(7) == "micro" and size_class_for(70) == "medium"
    assert size_class_for(70.5) == "large"


def test_media_figures_are_the_seeds():
    ds = load_datasets()
    assert {k: v.wh for k, v in ds.images.items()} == {
        "1024x1024:standard": 1.2,
        "1792x1024:standard": 2.1,
        "1024x1024:hd": 2.4,
        "1792x1024:hd": 4.2,
        "average": 2.48,
    }
    assert {k: v.wh for k, v in ds.video.items()} == {
        "480p": 251.78,
        "540p": 566.51,
        "720p": 1007.12,
        "1080p": 4028.48,
    }


def test_factors_and_grid():
    ds = load_datasets()
    assert ds.factors["pse"].value == 1.04
    assert ds.factors["transmission"].value == 1.08
    assert ds.factors["pue"].value == 1.54
    assert ds.factors["grid"].value == 473.0
    assert ds.countries["DE"].grid == 344.1
    assert ds.countries["FR"].grid == 44.2
    assert ds.regions["aws:eu-central-1"].pue == 1.35
    assert ds.regions["aws:eu-central-1"].country == "DE"


def test_every_source_has_licence_and_date():
    for s in load_datasets().sources.values():
        assert s.licence and (s.year or s.retrieved), s.key
