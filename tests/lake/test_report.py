"""`tailpipe report`: totals per group from compacted and raw data, each day counted once."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

pytest.importorskip("duckdb")

from tailpipe_ai.lake.compact import compact_day
from tailpipe_ai.lake.layout import raw_object_name, raw_partition
from tailpipe_ai.lake.report import ReportError, format_report, parse_by, report
from tailpipe_ai.semconv.record import Record

DAYS = [date(2026, 11, 21), date(2026, 11, 22), date(2026, 11, 23)]
MODELS = [("openai", "gpt-4o", "gpt-4o-2024-08-06"), ("anthropic", "claude-sonnet-4", None), ("openai", "o3", "o3")]
TEAMS = ["search", "support", None]
_files = 0


def write_raw(lake: Path, partition: date, lines: list[bytes]) -> Path:
    global _files
    _files += 1
    when = datetime(partition.year, partition.month, partition.day, tzinfo=timezone.utc) + timedelta(seconds=_files)
    folder = lake / raw_partition(partition)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / raw_object_name(when)
    path.write_bytes(gzip.compress(b"".join(x + b"\n" for x in lines)))
    return path


def make_records(n: int = 240, seed: int = 7) -> list[Record]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        provider, request_model, response_model = MODELS[i % 3]
        team = TEAMS[i % len(TEAMS) if i % 7 else 2]
        day = DAYS[i % 3]
        # Records near midnight make the arrival partition differ from the record's day.
        second = rnd.choice([5, 43_200, 86_395]) + rnd.random()
        ts = datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(seconds=second)
        out.append(
            Record(
                timestamp=ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                integration="proxy" if i % 2 else "sdk",
                provider=provider,
                request_model=request_model,
                response_model=response_model,
                operation="chat",
                region="eu-west-1" if i % 4 == 0 else None,
                token_accuracy="exact",
                input_tokens=rnd.randrange(1, 5000),
                output_tokens=rnd.randrange(0, 900) if i % 5 else None,
                energy_wh=rnd.random() * 3,
                carbon_gco2e=rnd.random(),
                cost_usd=rnd.random() / 10 if i % 3 else None,
                attributes={"team": team, "project": f"p{i % 2}"} if team else {"project": f"p{i % 2}"},
            )
        )
    return out


def arrival(rec: Record) -> date:
    """The partition a record lands in: its day, or the next one when it is written just before midnight."""
    ts = datetime.fromisoformat(rec.timestamp.replace("Z", "+00:00"))
    return (ts + timedelta(seconds=30)).date()


def fill_lake(lake: Path, records: list[Record]) -> None:
    by_partition = defaultdict(list)
    for rec in records:
        by_partition[arrival(rec)].append(rec.encode())
    for partition, lines in sorted(by_partition.items()):
        write_raw(lake, partition, lines[: len(lines) // 2])
        write_raw(lake, partition, lines[len(lines) // 2 :] + lines[:3])  # at-least-once: redelivered copies


def expected(records: list[Record], key) -> dict:
    """The report computed in Python: sums per group over unique records."""
    out: dict = defaultdict(lambda: {"requests": 0, "input_tokens": 0, "output_tokens": 0, "wh": 0.0, "g": 0.0})
    costs: dict = defaultdict(list)
    for rec in records:
        k = key(rec)
        g = out[k]
        g["requests"] += 1
        g["input_tokens"] += rec.input_tokens or 0
        g["output_tokens"] += rec.output_tokens or 0
        g["wh"] += rec.energy_wh or 0
        g["g"] += rec.carbon_gco2e or 0
        if rec.cost_usd is not None:
            costs[k].append(rec.cost_usd)
    return {k: {**v, "cost": sum(costs[k]) if costs[k] else None} for k, v in out.items()}


def assert_matches(rows: list[dict], want: dict, keys: tuple[str, ...]) -> None:
    got = {tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]: r for r in rows}
    assert set(got) == set(want)
    for k, w in want.items():
        r = got[k]
        assert (r["requests"], r["input_tokens"], r["output_tokens"]) == (
            w["requests"],
            w["input_tokens"],
            w["output_tokens"],
        )
        assert r["kwh"] == pytest.approx(w["wh"] / 1000, rel=1e-9)
        assert r["kgco2e"] == pytest.approx(w["g"] / 1000, rel=1e-9)
        assert r["cost_usd"] == (pytest.approx(w["cost"], rel=1e-9) if w["cost"] is not None else None)


def model(rec: Record) -> str:
    return rec.response_model or rec.request_model


@pytest.fixture
def lake(tmp_path: Path) -> tuple[Path, list[Record]]:
    records = make_records()
    fill_lake(tmp_path, records)
    return tmp_path, records


def test_totals_per_model_equal_the_sums_of_the_records(lake) -> None:
    root, records = lake
    rows = report(root)
    assert list(rows[0]) == ["model", "requests", "input_tokens", "output_tokens", "kwh", "kgco2e", "cost_usd"]
    assert_matches(rows, expected(records, model), ("model",))
    assert [r["model"] for r in rows] == sorted(r["model"] for r in rows)


def test_grouping_by_team_and_day_in_a_date_range(lake) -> None:
    root, records = lake
    rows = report(root, start="2026-11-22", end=date(2026, 11, 23), by="team,day")
    in_range = [r for r in records if r.timestamp[:10] in ("2026-11-22", "2026-11-23")]
    assert_matches(rows, expected(in_range, lambda r: (r.attributes.get("team"), r.timestamp[:10])), ("team", "day"))
    assert {r["day"] for r in rows} == {"2026-11-22", "2026-11-23"}


@pytest.mark.parametrize(
    ("by", "key"),
    [
        (("provider", "month"), lambda r: (r.provider, r.timestamp[:7])),
        (("integration", "region"), lambda r: (r.integration, r.region)),
        (("operation", "project"), lambda r: (r.operation, r.attributes["project"])),
    ],
)
def test_other_groups(lake, by, key) -> None:
    root, records = lake
    assert_matches(report(root, by=by), expected(records, key), by)


def test_compacted_and_raw_days_mix_without_double_counting(lake) -> None:
    root, records = lake
    before = report(root, by=["day"])
    compact_day(root, date(2026, 11, 22), progress=False)
    # After compaction: a late copy of a compacted day's record, and a new record of that day, arrive raw.
    late = next(r for r in records if r.timestamp.startswith("2026-11-22"))
    straggler = make_records(1, seed=99)[0]
    straggler.timestamp = "2026-11-22T23:59:59.000000Z"
    write_raw(root, date(2026, 11, 23), [late.encode(), straggler.encode()])

    after = report(root, by=["day"])

    assert [r["day"] for r in after] == [r["day"] for r in before]
    for a, b in zip(after, before, strict=True):
        assert {k: pytest.approx(v) if isinstance(v, float) else v for k, v in a.items()} == b
    assert_matches(after, expected(records, lambda r: r.timestamp[:10]), ("day",))
    only_22 = report(root, start="2026-11-22", end="2026-11-22", by="model")
    assert sum(r["requests"] for r in only_22) == sum(r.timestamp.startswith("2026-11-22") for r in records)


def test_a_day_counted_from_its_compacted_file_only(tmp_path: Path) -> None:
    records = make_records(30)
    fill_lake(tmp_path, records)
    for day in DAYS:
        compact_day(tmp_path, day, progress=False)
    rows = report(tmp_path, by="model")
    assert_matches(rows, expected(records, model), ("model",))


def test_bad_by_names_are_clear_errors(lake) -> None:
    root, _ = lake
    with pytest.raises(ReportError, match="cannot group by 'cost_usd'"):
        report(root, by="model,cost_usd")
    with pytest.raises(ReportError, match=r"cannot group by 'te am': use model, provider, day, month"):
        report(root, by=["te am"])
    with pytest.raises(ReportError, match="names a group twice: model"):
        parse_by("model,model")
    with pytest.raises(ReportError, match="needs group names"):
        parse_by("model,")
    with pytest.raises(ReportError, match="has the attribute tag 'teem'; tags present: project, team"):
        report(root, by="teem")
    assert parse_by(" model , team ") == ["model", "team"]


def test_bad_dates_are_clear_errors(lake) -> None:
    root, _ = lake
    with pytest.raises(ReportError, match="'2026-13-01' is not a date: use YYYY-MM-DD"):
        report(root, start="2026-13-01")
    with pytest.raises(ReportError, match=r"starts \(2026-11-23\) after it ends \(2026-11-21\)"):
        report(root, start="2026-11-23", end="2026-11-21")


def test_empty_lake_and_unreadable_raw_files(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"no lake at .*missing: pass --lake"):
        report(tmp_path / "missing")
    assert report(tmp_path) == []
    assert "no records" in format_report([], "table")
    rec = make_records(1)[0]
    write_raw(tmp_path, arrival(rec), [rec.encode()])
    bad = tmp_path / raw_partition(arrival(rec)) / "tailpipe-local-1-2026-11-21-00-00-00-x.gz"
    bad.write_bytes(b"not gzip")
    problems: list[str] = []
    rows = report(tmp_path, on_problem=problems.append)
    assert [r["requests"] for r in rows] == [1]
    assert problems == [f"{bad}: not a gzip file; left out of the report"]


def test_formats(lake) -> None:
    root, _ = lake
    rows = report(root, by="model,team")
    parsed = list(csv.DictReader(io.StringIO(format_report(rows, "csv"))))
    assert len(parsed) == len(rows) and int(parsed[0]["requests"]) == rows[0]["requests"]
    assert json.loads(format_report(rows, "json")) == rows
    table = format_report(rows, "table")
    assert "gpt-4o-2024-08-06" in table and "total" in table and f"{sum(r['requests'] for r in rows):,}" in table
    with pytest.raises(ReportError, match="unknown report format 'xml'"):
        format_report(rows, "xml")


def _bill_line(day: date, provider: str, wh: float, integration: str = "bedrock-cur") -> Record:
    return Record(
        timestamp=f"{day.isoformat()}T12:00:00.000000Z",
        integration=integration,
        provider=provider,
        request_model="claude-sonnet-4",
        response_model=None,
        operation="chat",
        token_accuracy="exact",
        input_tokens=1000,
        output_tokens=100,
        energy_wh=wh,
        carbon_gco2e=wh / 2,
    )


def test_sources_reconcile_billing_and_telemetry(lake) -> None:
    root, records = lake
    billed_day = DAYS[1]
    live = [_bill_line(day, "aws.bedrock", 7.0, integration="sdk") for day in DAYS]  # one live call a day
    bills = [_bill_line(billed_day, "aws.bedrock", 100.0), _bill_line(billed_day, "aws.bedrock", 50.0)]
    write_raw(root, billed_day, [r.encode() for r in live + bills])
    records = records + live

    def wh(rows):
        return sum(r["kwh"] for r in rows) * 1000

    everything = report(root, source="all")
    telemetry = report(root, source="telemetry")
    billing = report(root, source="billing")
    auto = report(root, source="auto")
    assert wh(billing) == pytest.approx(150.0)
    assert wh(telemetry) == pytest.approx(sum(r.energy_wh for r in records))
    assert wh(everything) == pytest.approx(wh(telemetry) + 150.0)
    # auto: the billed day's live Bedrock calls are replaced by the bill; every other call stays
    replaced = sum(r.energy_wh for r in live if r.timestamp.startswith(billed_day.isoformat()))
    assert replaced > 0
    assert wh(auto) == pytest.approx(wh(telemetry) - replaced + 150.0)
    with pytest.raises(ReportError, match="unknown source"):
        report(root, source="bills")
