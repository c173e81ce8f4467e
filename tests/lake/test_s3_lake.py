"""An s3:// lake end to end on a real S3-compatible server (SeaweedFS on loopback).

Raw objects are put the way Firehose writes them (gzip JSONL under the Hive prefix, Firehose object names),
then `tailpipe compact`, `tailpipe report` (DuckDB reading s3:// through the pinned httpfs wheel) and
`tailpipe verify` run against the bucket.
"""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from tailpipe_ai.cli import app
from tailpipe_ai.exporter.signing import Keyring, new_key_entry, sign
from tailpipe_ai.lake.compact import compact_day
from tailpipe_ai.lake.layout import compacted_name, companion_name, raw_partition
from tailpipe_ai.lake.report import report
from tailpipe_ai.lake.storage import S3Lake
from tailpipe_ai.lake.verify import verify_path
from tailpipe_ai.semconv.record import Record

pytest.importorskip("duckdb")
pytest.importorskip("duckdb_extension_httpfs")

DAY = date(2026, 11, 22)
PREFIX = "lake"
runner = CliRunner()


def record(ts: str, model: str, team: str, n: int) -> Record:
    return Record(
        record_id=str(uuid.uuid4()), timestamp=ts, integration="proxy", provider="openai", request_model=model,
        token_accuracy="exact", input_tokens=100 * n, output_tokens=10 * n, energy_wh=0.5 * n,
        carbon_gco2e=0.25 * n, cost_usd=0.01 * n, attributes={"team": team},
    )


def firehose_key(partition: date, second: int) -> str:
    """<prefix>/ai-telemetry-raw/year=/month=/day=/<stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid>.gz"""
    t = datetime(partition.year, partition.month, partition.day, tzinfo=timezone.utc) + timedelta(seconds=second)
    return f"{PREFIX}/{raw_partition(partition)}ai-telemetry-1-{t:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}.gz"


def put_raw(s3, bucket: str, partition: date, second: int, lines: list[bytes], *, data: bytes | None = None) -> str:
    key = firehose_key(partition, second)
    body = data if data is not None else gzip.compress(b"".join(x + b"\n" for x in lines))
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return key


@pytest.fixture
def lake(s3_server, monkeypatch):
    """A bucket holding three days of Firehose-shaped raw objects, duplicates, another day and one corrupt object."""
    for name, value in s3_server.env_vars().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    spec = new_key_entry("k1")
    monkeypatch.setenv("TAILPIPE_SIGNING_KEYS", spec)
    ring = Keyring.from_spec(spec)
    s3 = s3_server.client()
    bucket = s3_server.create_bucket()

    def signed(rec: Record) -> bytes:
        return json.dumps(sign(rec.to_dict(), ring), separators=(",", ":")).encode()

    day_records = [
        record("2026-11-22T00:00:01Z", "gpt-4o", "search", 1),  # arrives in the day before's partition
        record("2026-11-22T08:00:00Z", "gpt-4o", "search", 2),
        record("2026-11-22T09:30:00.123456Z", "gpt-4o-mini", "ads", 3),
        record("2026-11-22T12:00:00Z", "gpt-4o-mini", "search", 4),
        record("2026-11-22T23:59:59.9Z", "gpt-4o", "ads", 5),  # arrives after midnight
    ]
    other_day = record("2026-11-21T23:59:00Z", "gpt-4o", "ads", 7)
    put_raw(s3, bucket, DAY - timedelta(days=1), 60, [signed(other_day), signed(day_records[0])])
    put_raw(s3, bucket, DAY, 3600, [signed(r) for r in day_records[1:3]])
    put_raw(s3, bucket, DAY, 7200, [signed(day_records[3]), signed(day_records[1])])  # a redelivered duplicate
    put_raw(s3, bucket, DAY + timedelta(days=1), 30, [signed(day_records[4])])
    corrupt = put_raw(s3, bucket, DAY, 9000, [], data=gzip.compress(signed(day_records[2]) + b"\n")[:-12])
    s3.put_object(Bucket=bucket, Key=f"{PREFIX}/{raw_partition(DAY)}.half-written.gz", Body=b"not yet")

    class Lake:
        pass

    out = Lake()
    out.s3, out.bucket, out.url = s3, bucket, f"s3://{bucket}/{PREFIX}"
    out.day_records, out.other_day, out.corrupt = day_records, other_day, corrupt
    return out


def expected_by_model(records: list[Record]) -> dict[str, tuple[int, int, int, float, float, float]]:
    """Hand-summed report figures: requests, input and output tokens, kWh (Wh/1000), kgCO2e (g/1000), cost."""
    out: dict[str, list[float]] = {}
    for r in records:
        acc = out.setdefault(r.request_model, [0, 0, 0, 0.0, 0.0, 0.0])
        acc[0] += 1
        acc[1] += r.input_tokens
        acc[2] += r.output_tokens
        acc[3] += r.energy_wh / 1000
        acc[4] += r.carbon_gco2e / 1000
        acc[5] += r.cost_usd
    return {k: tuple(v) for k, v in out.items()}


def as_tuple(row: dict) -> tuple:
    return (row["requests"], row["input_tokens"], row["output_tokens"], row["kwh"], row["kgco2e"], row["cost_usd"])


@pytest.mark.slow
def test_compact_report_verify_on_s3(lake):
    day_only = {"start": DAY, "end": DAY}
    expected = expected_by_model(lake.day_records)

    # Before compaction, report reads the raw objects (deduplicated) straight from S3.
    before = {r["model"]: as_tuple(r) for r in report(lake.url, by="model", **day_only)}
    assert before.keys() == expected.keys()
    for model, figures in expected.items():
        assert before[model] == pytest.approx(figures)

    result = runner.invoke(app, ["compact", "--date", DAY.isoformat(), "--lake", lake.url, "--verify"])
    assert result.exit_code == 0, result.output
    output = "".join(result.output.split())  # the console wraps long lines, even inside words
    assert "5records" in output and "dropped1duplicates" in output and "1badfiles" in output
    assert f"s3://{lake.bucket}/{lake.corrupt}:gzipstreamendsearly" in output
    assert "Parquetcompanionnotwritten" not in output

    key = f"{PREFIX}/{compacted_name(DAY)}"
    first = lake.s3.get_object(Bucket=lake.bucket, Key=key)
    body = first["Body"].read()
    records = [json.loads(x) for x in gzip.decompress(body).splitlines()]
    ordered = sorted(lake.day_records, key=lambda r: r.timestamp)
    assert [r["record_id"] for r in records] == [r.record_id for r in ordered]
    assert all(r["signature"] for r in records)  # written exactly as read: signatures survive
    assert lake.s3.head_object(Bucket=lake.bucket, Key=f"{PREFIX}/{companion_name(DAY)}")["ContentLength"] > 0

    # A rerun (with worker processes this time) finds the same bytes and leaves the object alone.
    again = compact_day(lake.url, DAY, progress=False, workers=2)
    assert not again.changed and again.records == 5
    second = lake.s3.get_object(Bucket=lake.bucket, Key=key)
    assert second["ETag"] == first["ETag"] and second["Body"].read() == body

    # After compaction the same report comes from the Parquet companion; JSON output through the CLI.
    result = runner.invoke(app, ["report", "--lake", lake.url, "--from", "2026-11-22", "--to", "2026-11-22",
                                 "--by", "model", "--format", "json"])
    assert result.exit_code == 0, result.output
    after = {r["model"]: as_tuple(r) for r in json.loads(result.output)}
    assert after.keys() == expected.keys()
    for model, figures in expected.items():
        assert after[model] == pytest.approx(figures)
    by_team = {r["team"]: r["requests"] for r in report(lake.url, by="team", **day_only)}
    assert by_team == {"search": 3, "ads": 2}
    # The other day is still counted from its raw partition.
    assert [as_tuple(r)[0] for r in report(lake.url, by="day", start="2026-11-21", end="2026-11-21")] == [1]

    # verify walks the bucket: every record signed; the corrupt object is one malformed entry.
    checked = verify_path(lake.url, Keyring.from_env())
    counts = {v.value: n for v, n in checked.counts.items()}
    assert counts == {"ok": 7 + 5, "unsigned": 0, "unknown_key": 0, "bad_signature": 0, "malformed": 1}
    assert checked.files_checked == 6  # 5 raw objects + the compacted file; hidden objects skipped
    result = runner.invoke(app, ["verify", f"{lake.url}/{compacted_name(DAY)}"])
    assert result.exit_code == 0 and "1file(s)checked:5ok" in "".join(result.output.split())


def test_compacted_object_is_published_whole_via_multipart(lake, monkeypatch):
    """A day bigger than one part goes up as a multipart upload and reads back byte for byte."""
    from tailpipe_ai.lake import storage

    monkeypatch.setattr(storage, "MULTIPART_BYTES", 5 * 1024 * 1024)  # S3's minimum part size
    lines = []
    for i in range(6000):
        rec = record(f"2026-11-22T10:{i // 100 % 60:02d}:{i % 60:02d}Z", "gpt-4o", "bulk", 1)
        lines.append(json.dumps(rec.to_dict() | {"pad": uuid.uuid4().hex * 30}).encode())
    put_raw(lake.s3, lake.bucket, DAY, 10_000, lines, data=gzip.compress(b"\n".join(lines) + b"\n", 1))
    monkeypatch.setattr("tailpipe_ai.lake.compact.GZIP_LEVEL", 0)  # stored, so the object passes one part
    result = compact_day(lake.url, DAY, progress=False, companion=False)
    head = lake.s3.head_object(Bucket=lake.bucket, Key=f"{PREFIX}/{compacted_name(DAY)}")
    assert "-" in head["ETag"]  # a multipart ETag: "<md5 of part md5s>-<parts>"
    assert head["ContentLength"] == result.bytes_written > 5 * 1024 * 1024
    body = lake.s3.get_object(Bucket=lake.bucket, Key=f"{PREFIX}/{compacted_name(DAY)}")["Body"].read()
    assert len(gzip.decompress(body).splitlines()) == result.records == 6000 + 5


def test_bad_credentials_and_missing_bucket_give_one_clear_line(lake, s3_server, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-CANARY")
    result = runner.invoke(app, ["compact", "--date", DAY.isoformat(), "--lake", lake.url])
    assert result.exit_code == 2
    assert "access denied" in result.output and "CANARY" not in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["report", "--lake", lake.url])
    assert result.exit_code == 2 and "access denied" in result.output and "CANARY" not in result.output
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    with pytest.raises(Exception, match="does not exist"):
        S3Lake(f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/x").list("")
