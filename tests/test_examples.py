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
