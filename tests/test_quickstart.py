"""The default path end to end: quickstart into the local lake, report, compact, report again, verify."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tailpipe_ai.exporter.signing import new_key_entry

ROOT = Path(__file__).resolve().parents[1]


def _run(args, env, cwd):
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_quickstart_report_compact_verify(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAILPIPE_", "OPENAI_", "OTEL_"))}
    env["TAILPIPE_SIGNING_KEYS"] = new_key_entry("k1")
    tailpipe = [sys.executable, "-m", "tailpipe_ai"]
    done = _run([sys.executable, str(ROOT / "examples" / "quickstart.py")], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "tailpipe-lake" / "ai-telemetry-raw").is_dir()

    done = _run([*tailpipe, "report", "--by", "model,team", "--format", "json"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    rows = {(r["model"], r["team"]): r for r in json.loads(done.stdout)}
    assert rows[("gpt-4o-mini", "search")]["requests"] == 5
    assert rows[("gpt-4o", "support")]["requests"] == 3
    assert all(r["kgco2e"] > 0 and r["kwh"] > 0 for r in rows.values())

    day = next((tmp_path / "tailpipe-lake" / "ai-telemetry-raw").rglob("day=*")).parts[-3:]
    date = "-".join(p.split("=")[1] for p in day)
    done = _run([*tailpipe, "compact", "--date", date, "--verify"], env, tmp_path)
    assert done.returncode == 0, done.stderr + done.stdout
    assert (tmp_path / "tailpipe-lake" / "ai-telemetry" / f"telemetry-{date.replace('-', '')}.jsonl.gz").is_file()

    done = _run([*tailpipe, "report", "--by", "model", "--format", "json"], env, tmp_path)
    totals = {r["model"]: r["requests"] for r in json.loads(done.stdout)}
    assert totals == {"gpt-4o": 3, "gpt-4o-mini": 5}  # compacted and raw never counted twice

    done = _run([*tailpipe, "verify", "tailpipe-lake"], env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr

    done = _run([*tailpipe, "report", "--by", "colour"], env, tmp_path)
    assert done.returncode == 2 and "colour" in done.stderr and "Traceback" not in done.stderr
