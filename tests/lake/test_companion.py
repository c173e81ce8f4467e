"""The Parquet companion of a compacted day: written by compaction, read by report, never stale."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

duckdb = pytest.importorskip("duckdb")

from tailpipe_ai.lake.compact import compact_day  # noqa: E402
from tailpipe_ai.lake.layout import compacted_name, companion_name  # noqa: E402
from tailpipe_ai.lake.report import report  # noqa: E402
from tests.lake.test_report import DAYS, fill_lake, make_records, write_raw  # noqa: E402

BY = "model,team,day"


def totals(records, day):
    """Hand-summed requests / tokens / Wh / g / cost of one day's records (the report's figures x 1000)."""
    mine = [r for r in records if r.timestamp.startswith(day.isoformat())]
    return (
        len(mine),
        sum(r.input_tokens for r in mine),
        sum(r.energy_wh for r in mine),
        sum(r.carbon_gco2e for r in mine),
        sum(r.cost_usd for r in mine if r.cost_usd is not None),
    )


def report_totals(lake: Path, day):
    rows = report(lake, start=day, end=day, by=BY)
    return (
        sum(r["requests"] for r in rows),
        sum(r["input_tokens"] for r in rows),
        sum(r["kwh"] for r in rows) * 1000,
        sum(r["kgco2e"] for r in rows) * 1000,
        sum(r["cost_usd"] or 0 for r in rows),
    )


def test_compaction_writes_a_companion_that_report_reads(tmp_path: Path) -> None:
    records = make_records()
    fill_lake(tmp_path, records)
    day = DAYS[1]
    raw_rows = report(tmp_path, start=day, end=day, by=BY)

    result = compact_day(tmp_path, day, progress=False)

    parquet = tmp_path / companion_name(day)
    assert result.companion == str(parquet) and parquet.is_file()
    con = duckdb.connect()
    sql = "SELECT count(*), count(DISTINCT record_id) FROM read_parquet(?)"
    count, ids = con.execute(sql, [str(parquet)]).fetchone()
    assert count == ids == result.records == totals(records, day)[0]
    after = report(tmp_path, start=day, end=day, by=BY)
    assert [(r["model"], r["team"], r["day"]) for r in after] == [(r["model"], r["team"], r["day"]) for r in raw_rows]
    for a, b in zip(after, raw_rows, strict=True):
        assert (a["requests"], a["input_tokens"], a["output_tokens"]) == (b["requests"], b["input_tokens"],
                                                                         b["output_tokens"])
        assert (a["kwh"], a["kgco2e"]) == pytest.approx((b["kwh"], b["kgco2e"]))
    assert report_totals(tmp_path, day) == pytest.approx(totals(records, day))
    # A rerun with the same output keeps both files.
    before = parquet.stat().st_mtime_ns
    again = compact_day(tmp_path, day, progress=False)
    assert not again.changed and again.companion is None and parquet.stat().st_mtime_ns == before


def test_companion_follows_the_day_file(tmp_path: Path) -> None:
    records = make_records()
    fill_lake(tmp_path, records)
    day = DAYS[1]
    compact_day(tmp_path, day, progress=False)
    parquet = tmp_path / companion_name(day)

    # Without a companion, report reads the JSONL: same figures; the next compaction puts it back.
    parquet.unlink()
    assert report_totals(tmp_path, day) == pytest.approx(totals(records, day))
    assert compact_day(tmp_path, day, progress=False).companion == str(parquet)

    # New raw data changes the day file: the companion is replaced with the new figures.
    extra = make_records(30, seed=99)
    write_raw(tmp_path, day, [r.encode() for r in extra if r.timestamp.startswith(day.isoformat())])
    result = compact_day(tmp_path, day, progress=False)
    assert result.changed and result.companion == str(parquet)
    assert report_totals(tmp_path, day) == pytest.approx(totals(records + extra, day))

    # A companion left without its day file is never read.
    (tmp_path / compacted_name(day)).unlink()
    rows = report(tmp_path, start=day, end=day, by=BY)
    assert sum(r["requests"] for r in rows) == totals(records + extra, day)[0]  # from the raw partitions


def test_without_duckdb_the_day_file_is_still_published(tmp_path: Path, monkeypatch) -> None:
    import sys

    records = make_records(60)
    fill_lake(tmp_path, records)
    monkeypatch.setitem(sys.modules, "duckdb", None)  # import duckdb now raises ImportError
    result = compact_day(tmp_path, DAYS[1], progress=False)
    assert result.companion is None and not (tmp_path / companion_name(DAYS[1])).exists()
    lines = gzip.decompress((tmp_path / compacted_name(DAYS[1])).read_bytes()).splitlines()
    assert len(lines) == result.records == totals(records, DAYS[1])[0]


@pytest.mark.slow
def test_a_large_day_gets_its_companion_within_the_memory_limit(tmp_path: Path) -> None:
    """300,000 realistic records: more than DuckDB's defaults fit in COMPANION_MEMORY_MB (two threads or
    122,880-row groups ran out of memory here, and compaction then silently left the day without one)."""
    import uuid

    from tailpipe_ai.lake.report import write_companion
    from tailpipe_ai.semconv import Record
    from tests.lake.test_signing import make_record

    template = Record.from_dict(make_record(record_id="00000000-0000-4000-8000-000000000000")).encode()
    n = 300_000
    day_file = tmp_path / "telemetry-20261122.jsonl.gz"
    with gzip.open(day_file, "wb", compresslevel=1) as f:
        for _ in range(n):
            f.write(template.replace(b"00000000-0000-4000-8000-000000000000", str(uuid.uuid4()).encode()) + b"\n")
    out = tmp_path / "telemetry-20261122.parquet"
    assert write_companion(day_file, out)
    assert duckdb.connect().execute("SELECT count(*) FROM read_parquet(?)", [str(out)]).fetchone()[0] == n
