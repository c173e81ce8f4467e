"""`tailpipe billing ...` end to end: lake files by usage day, report, re-import, exit codes, privacy."""

from __future__ import annotations

import gzip
import json

from typer.testing import CliRunner

from tailpipe_ai.cli import app

from .expected import energy_wh


def invoke(*args):
    return CliRunner().invoke(app, [*map(str, args)])


def test_import_writes_usage_day_partitions_and_reimport_does_not_double_count(fixtures, tmp_path):
    lake = tmp_path / "lake"
    result = invoke("billing", "bedrock-cur", fixtures / "legacy_cur.csv", "--lake", lake)
    assert result.exit_code == 0, result.output
    raw = sorted(p.relative_to(lake).as_posix() for p in lake.rglob("*.gz"))
    assert [p.rsplit("/", 1)[0] for p in raw] == [
        "ai-telemetry-raw/year=2025/month=06/day=01",
        "ai-telemetry-raw/year=2025/month=06/day=02",
    ]
    records = [json.loads(line) for p in lake.rglob("*.gz") for line in gzip.decompress(p.read_bytes()).splitlines()]
    assert len(records) == 9 and {r["integration"] for r in records} == {"bedrock-cur"}
    report = invoke("report", "--lake", lake, "--by", "model,region", "--format", "json")
    rows = {(r["model"], r["region"]): r for r in json.loads(report.stdout)}
    sonnet = rows[("claude-sonnet-4", "aws:eu-central-1")]
    assert sonnet["kwh"] * 1000 == __import__("pytest").approx(energy_wh("claude-sonnet-4", 16e6, "aws:eu-central-1"))
    again = invoke("billing", "bedrock-cur", fixtures / "legacy_cur.csv", "--lake", lake)
    assert again.exit_code == 0
    report2 = invoke("report", "--lake", lake, "--by", "model,region", "--format", "json")
    assert json.loads(report2.stdout) == json.loads(report.stdout)  # dedup by record_id
    compact = invoke("compact", "--lake", lake, "--date", "2025-06-01")
    assert compact.exit_code == 0, compact.output
    assert json.loads(invoke("report", "--lake", lake, "--by", "model,region", "--format", "json").stdout) == (
        json.loads(report.stdout)
    )
    blob = b"".join(p.read_bytes() for p in lake.rglob("*.gz"))
    text = b"".join(gzip.decompress(p.read_bytes()) for p in lake.rglob("*.gz"))
    assert b"111122223333" not in text and b"999988887777" not in text and b"arn:aws" not in text
    assert blob


def test_dry_run_json_summary(fixtures, tmp_path):
    result = invoke("billing", "azure", fixtures / "azure_ea.csv", fixtures / "azure_mca.csv", "--dry-run",
                    "--format", "json", "--lake", tmp_path / "lake")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["written"] == 0 and not (tmp_path / "lake").exists()
    assert {r["model"] for r in doc["not_estimated"]} == {"gpt-5", "phi-4"}
    assert doc["files"] == 2 and doc["rows_used"] == 7


def test_nothing_usable_exits_2_with_one_clear_line(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = invoke("billing", "bedrock-cur", empty, "--dry-run")
    assert result.exit_code == 2
    assert "nothing usable found" in result.stderr and "Traceback" not in result.output
    only_noise = tmp_path / "noise.csv"
    only_noise.write_text("lineItem/UsageStartDate,lineItem/ProductCode,lineItem/UsageType,lineItem/UsageAmount\n"
                          "2025-06-01T00:00:00Z,AmazonEC2,USE1-BoxUsage,1\n")
    result = invoke("billing", "bedrock-cur", only_noise, "--dry-run")
    assert result.exit_code == 2 and "no Bedrock token line items among 1 rows" in result.stderr
    assert invoke("billing", "bedrock-cur", tmp_path / "missing.csv").exit_code == 2
    assert invoke("billing", "azure", empty, "--format", "xml").exit_code == 2
    assert invoke("billing", "azure", empty, "--region", "atlantis").exit_code == 2


def test_region_fallback_for_lines_without_region(tmp_path):
    cur = tmp_path / "cur.csv"
    cur.write_text("lineItem/UsageStartDate,lineItem/ProductCode,lineItem/UsageType,lineItem/UsageAmount,pricing/unit\n"
                   "2025-06-01T00:00:00Z,AmazonBedrock,Claude4Sonnet-input-tokens,1000,1K tokens\n")
    result = invoke("billing", "bedrock-cur", cur, "--dry-run", "--format", "json", "--region", "aws:eu-central-1")
    doc = json.loads(result.stdout)
    assert doc["estimated"][0]["region"] == "aws:eu-central-1"
    assert doc["estimated"][0]["energy_wh"] == __import__("pytest").approx(
        energy_wh("claude-sonnet-4", 1e6, "aws:eu-central-1"))
