"""`tailpipe` CLI: step-by-step output, JSON, and exit code 2 with a clear message on bad input."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tailpipe_ai.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


def test_estimate_prints_the_calculation_step_by_step():
    r = run("estimate", "--model", "claude-sonnet-4", "--tokens", "15000000", "--region", "aws:eu-central-1")
    assert r.exit_code == 0, r.output
    for text in ("15,000,000", "0.00245", "1.04", "1.08", "1.35", "344.1", "kgCO2e", "petrol"):
        assert text in r.output, text


def test_json_for_a_measured_model_names_dataset_version_and_derivation():
    r = run(
        "estimate",
        "--model",
        "gpt-4o-2024-08-06",
        "--input-tokens",
        "1200",
        "--output-tokens",
        "300",
        "--json",
    )
    doc = json.loads(r.output)
    model = doc["factors"]["model"]
    assert model["kind"] == "measured"
    assert "2505.09598v2" in model["source"]["url"]
    assert doc["factors"]["shape"]["derivation"].startswith("non-negative least squares")
    assert doc["dataset_version"] and doc["method"] == "shape"
    assert doc["cost_usd"] is None or doc["cost_usd"] > 0


def test_json_for_an_unmeasured_sized_model_names_the_class():
    r = run("estimate", "--model", "mistral.mistral-large-2407-v1:0", "--tokens", "1000", "--json")
    doc = json.loads(r.output)
    assert doc["factors"]["model"]["size_class"] == "large"
    assert doc["factors"]["model"]["class"]["members"]


def test_json_for_an_unknown_model_flags_it():
    r = run("estimate", "--model", "mystery-model", "--tokens", "1000", "--json")
    assert r.exit_code == 0
    assert "model_unknown" in json.loads(r.output)["flags"]


IT_ONLY = ("--pue", "1", "--pse", "1", "--tl", "1", "--json")


def test_image_and_video():
    r = run(
        "estimate",
        "--model",
        "dall-e-3",
        "--images",
        "4",
        "--image-size",
        "1792x1024",
        "--image-quality",
        "hd",
        *IT_ONLY,
    )
    assert json.loads(r.output)["energy_wh"] == 16.8
    r = run("estimate", "--model", "sora-2", "--video-seconds", "10", "--video-resolution", "720p", *IT_ONLY)
    assert json.loads(r.output)["energy_wh"] == 10071.2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tokens", "-5"], "--tokens must be a whole number"),
        (["--tokens", "lots"], "--tokens must be a whole number"),
        (["--tokens", "100", "--region", "mars-north-1"], "unknown region"),
        (["--tokens", "100", "--pue", "0.2"], "outside the plausible range"),
        (["--tokens", "100", "--grid", "abc"], "--grid must be a number"),
        (["--tokens", "100", "--method", "guess"], "method must be one of"),
        ([], "give a usage"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(args, message):
    r = run("estimate", "--model", "gpt-4o", *args)
    assert r.exit_code == 2
    assert message in r.output
    assert "Traceback" not in r.output


def test_malformed_config_file_exits_2(tmp_path):
    p = tmp_path / "tailpipe.toml"
    p.write_text("[defaults]\npue = 'very high'\n")
    r = run("estimate", "--model", "gpt-4o", "--tokens", "1", "--config", str(p))
    assert r.exit_code == 2
    assert "pue must be a number" in r.output


def test_real_process_has_no_traceback_on_bad_input():
    done = subprocess.run(
        [sys.executable, "-m", "tailpipe_ai", "estimate", "--model", "x", "--tokens", "-1"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "error:" in done.stderr


def test_models_and_regions_lists():
    r = run("models", "--json")
    doc = json.loads(r.output)
    ids = {m["id"] for m in doc["models"]}
    assert {"gpt-4o", "claude-sonnet-4"} <= ids
    assert set(doc["classes"]) == {"nano", "micro", "small", "medium", "large"}
    r = run("models", "llama")
    assert r.exit_code == 0 and "llama-3.1-70b" in r.output
    r = run("regions", "--provider", "aws", "--json")
    regions = {x["region"]: x for x in json.loads(r.output)["regions"]}
    assert regions["aws:eu-central-1"]["pue"] == 1.35
