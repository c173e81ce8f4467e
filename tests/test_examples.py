"""The examples run against the fake OpenAI server, and `opentelemetry-instrument` works with no tailpipe
import in the app."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes import openai as fake_openai

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture
def env(fake_server, tmp_path):
    fake_openai.install(fake_server)
    e = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TAILPIPE_", "OPENAI_"))}
    e.update(
        {
            "OPENAI_BASE_URL": fake_server.url + "/v1",
            "OPENAI_API_KEY": "sk-test-key",
            "TAILPIPE_LAKE": str(tmp_path / "lake"),
            "PYTHONPATH": str(ROOT),
        }
    )
    return e


def _records(lake: Path) -> list[dict]:
    from tailpipe_ai.lake.reader import ReadStats, iter_records

    stats = ReadStats()
    files = sorted(p for p in (lake / "ai-telemetry-raw").rglob("*.gz") if not p.name.startswith("."))
    records = list(iter_records(files, stats=stats, validate=True))
    assert stats.total_skipped == 0, stats.summary()
    return records


def test_openai_wrap_example(env, tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "openai_wrap.py")], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    records = _records(tmp_path / "lake")
    assert len(records) == 1
    r = records[0]
    assert r["integration"] == "sdk" and r["provider"] == "openai"
    assert r["attributes"] == {"team": "search", "feature": "answer"}
    assert r["energy_wh"] > 0 and r["carbon_gco2e"] > 0 and r["token_accuracy"] == "exact"


def test_auto_instrument_example_prints_spans_with_carbon(env):
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "auto_instrument.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert '"tailpipe.energy.wh"' in done.stdout and '"tailpipe.carbon.gco2e"' in done.stdout


def test_opentelemetry_instrument_plain_app(env, tmp_path):
    env = {**env, "OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "plain-app"}
    cmd = [str(BIN / "opentelemetry-instrument"), sys.executable, str(ROOT / "examples" / "plain_openai_app.py")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count('"tailpipe.energy.wh"') == 2, done.stdout[-3000:]
    assert '"gen_ai.usage.output_tokens"' in done.stdout
    records = _records(tmp_path / "lake")
    assert len(records) == 2
    assert {r["integration"] for r in records} == {"auto"}
    streamed = [r for r in records if r["streamed"]]
    assert streamed and streamed[0]["token_accuracy"] == "exact"  # include_usage was injected


@pytest.mark.parametrize("backend", ["stub", "fake_server"])
def test_bedrock_converse_example(env, tmp_path, fake_server, backend):
    """Without AWS credentials the example answers from botocore's Stubber; with BEDROCK_ENDPOINT_URL it
    talks to the fake Bedrock over HTTP. Either way one Bedrock record with the client's region."""
    from tests.fakes import bedrock as fake_bedrock

    env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    env.update(
        {
            "AWS_CONFIG_FILE": str(tmp_path / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_REGION": "eu-north-1",
        }
    )
    if backend == "fake_server":
        fake_bedrock.install(fake_server)
        env.update(BEDROCK_ENDPOINT_URL=fake_server.url, AWS_ACCESS_KEY_ID="AKIAFAKE", AWS_SECRET_ACCESS_KEY="x")
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "bedrock_converse.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "region eu-north-1" in done.stdout
    (record,) = _records(tmp_path / "lake")
    assert record["provider"] == "aws.bedrock" and record["region"] == "aws:eu-north-1"
    assert record["attributes"] == {"team": "support", "feature": "triage"}
    assert record["input_tokens"] > 0 and record["carbon_gco2e"] > 0 and record["token_accuracy"] == "exact"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["fake_server", "mock_transport"])
def test_langchain_chain_example(env, tmp_path, backend):
    """Against the fake OpenAI server (OPENAI_API_KEY set), or with no key on its mock transport: one
    langchain record per model call of the chain, with the tags of the block it ran in."""
    if backend == "mock_transport":
        env = {k: v for k, v in env.items() if not k.startswith("OPENAI_")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "langchain_chain.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    records = _records(tmp_path / "lake")
    assert len(records) == 3
    assert {r["integration"] for r in records} == {"langchain"} and {r["provider"] for r in records} == {"openai"}
    assert sorted(r["attributes"].get("team") for r in records) == ["search", "support", "support"]
    expected_input = 1200 if backend == "fake_server" else 70  # the fake's usage; the mock's 30 + 20 x 2 messages
    assert all(r["input_tokens"] == expected_input and r["token_accuracy"] == "exact" for r in records)
    assert all(r["energy_wh"] > 0 and r["carbon_gco2e"] > 0 for r in records)
