"""Daily compaction keeps the day's records, once each, sorted, byte-identical on a rerun, published atomically."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tailpipe_ai.lake import compact
from tailpipe_ai.lake.compact import CompactError, check_record, compact_day
from tailpipe_ai.lake.layout import compacted_name, raw_object_name, raw_partition
from tailpipe_ai.semconv.record import Record, RecordError, new_record_id

DAY = date(2026, 11, 22)
_files = 0


def record(ts: str, **fields) -> Record:
    base = dict(integration="sdk", provider="openai", request_model="gpt-4o", token_accuracy="exact", timestamp=ts)
    base.update(fields)
    return Record(**base)


def line(rec: Record) -> bytes:
    return rec.encode()


def write_raw(lake: Path, partition: date, lines: list[bytes], *, data: bytes | None = None) -> Path:
    """A Firehose-shaped raw object in ``partition``; names sort in creation order (arrival order)."""
    global _files
    _files += 1
    when = datetime(partition.year, partition.month, partition.day, tzinfo=timezone.utc) + timedelta(seconds=_files)
    folder = lake / raw_partition(partition)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / raw_object_name(when)
    path.write_bytes(data if data is not None else gzip.compress(b"".join(x + b"\n" for x in lines)))
    return path


def published(lake: Path, day: date = DAY) -> list[dict]:
    return [json.loads(x) for x in gzip.decompress((lake / compacted_name(day)).read_bytes()).splitlines()]


def test_keeps_only_the_days_records_from_the_neighbouring_partitions(tmp_path: Path) -> None:
    early = record("2026-11-22T00:00:00.5+00:00")  # producer clock ahead: landed in the day before's partition
    late = record("2026-11-22T23:59:59.999999Z")  # arrived after midnight
    middle = record("2026-11-22T12:00:00Z")
    before = record("2026-11-21T23:59:59.999Z")  # arrived after midnight, belongs to the 21st
    after = record("2026-11-23T00:00:00.000001Z")  # belongs to the 23rd
    # The same record in another key order takes the slow path (no fixed offsets to read the day from).
    after_sorted = json.dumps(record("2026-11-23T00:00:01Z").to_dict(), sort_keys=True).encode()
    middle_sorted = record("2026-11-22T12:00:00Z")
    write_raw(tmp_path, DAY - timedelta(days=1), [line(record("2026-11-21T10:00:00Z")), line(early)])
    write_raw(tmp_path, DAY, [line(before), line(middle), line(after), after_sorted])
    write_raw(tmp_path, DAY, [json.dumps(middle_sorted.to_dict(), sort_keys=True).encode()])
    write_raw(tmp_path, DAY + timedelta(days=1), [line(late), line(record("2026-11-23T01:00:00Z"))])
    write_raw(tmp_path, DAY + timedelta(days=2), [line(record("2026-11-22T13:00:00Z"))])  # outside the window

    result = compact_day(tmp_path, DAY, progress=False)

    ids = [r["record_id"] for r in published(tmp_path)]
    same_second = sorted([middle.record_id, middle_sorted.record_id])
    assert ids == [early.record_id, *same_second, late.record_id]  # by (timestamp, record_id)
    assert (result.records, result.other_days, result.duplicates, result.skipped) == (4, 5, 0, 0)
    assert (result.files, result.lines) == (4, 9)
    assert result.path == tmp_path / compacted_name(DAY) and result.changed


def test_removes_duplicates_keeping_the_first_copy_seen(tmp_path: Path) -> None:
    rid = new_record_id()
    first = record("2026-11-22T08:00:00Z", record_id=rid, cost_usd=1.0)
    other = record("2026-11-22T09:00:00Z")
    write_raw(tmp_path, DAY - timedelta(days=1), [line(record("2026-11-21T08:00:00Z", record_id=rid))])  # other day
    write_raw(tmp_path, DAY, [line(first), line(other), line(first)])
    write_raw(tmp_path, DAY, [line(other)])
    write_raw(tmp_path, DAY + timedelta(days=1), [line(record("2026-11-22T07:00:00Z", record_id=rid, cost_usd=2.0))])

    result = compact_day(tmp_path, DAY, progress=False)

    out = published(tmp_path)
    assert [r["record_id"] for r in out] == [rid, other.record_id]
    assert out[0]["cost_usd"] == 1.0 and out[0]["timestamp"] == "2026-11-22T08:00:00Z"
    assert (result.records, result.duplicates, result.other_days) == (2, 3, 1)


def _busy_lake(lake: Path, per_file: int = 34) -> tuple[int, int]:
    """Day records in three files per partition, each file redelivering 5 of its lines, plus other days.

    Returns (records of DAY, duplicate copies).
    """
    n = 0
    for part in (DAY - timedelta(days=1), DAY, DAY + timedelta(days=1)):
        for _ in range(3):
            lines = []
            for _ in range(per_file):
                n += 1
                ts = datetime(2026, 11, 22, tzinfo=timezone.utc) + timedelta(seconds=n * 97 % 86400, microseconds=n)
                lines.append(line(record(ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), input_tokens=n)))
            lines += [line(record(f"{part}T12:00:00Z")) for _ in range(2) if part != DAY]
            write_raw(lake, part, lines + lines[:5])
    return n, 9 * 5


def test_rerun_is_byte_identical_and_workers_do_not_change_the_output(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(compact, "MEMBER_BYTES", 4096)  # several gzip members
    records, duplicates = _busy_lake(tmp_path)
    first = compact_day(tmp_path, DAY, progress=False, workers=1)
    data = (tmp_path / compacted_name(DAY)).read_bytes()
    second = compact_day(tmp_path, DAY, progress=False, workers=2)
    assert (tmp_path / compacted_name(DAY)).read_bytes() == data
    assert second.sha256 == first.sha256 and not second.changed and first.changed
    assert (first.records, first.duplicates) == (second.records, second.duplicates) == (records, duplicates)
    keys = [(r["timestamp"], r["record_id"]) for r in published(tmp_path)]
    assert keys == sorted(keys) and len(set(keys)) == records
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # spill folder removed


def test_small_buckets_split_and_give_the_same_file(tmp_path: Path, monkeypatch) -> None:
    records, duplicates = _busy_lake(tmp_path)
    compact_day(tmp_path, DAY, progress=False)
    expected = (tmp_path / compacted_name(DAY)).read_bytes()
    # One bucket far bigger than allowed, as with a day much bigger than memory: it is split again, twice.
    monkeypatch.setattr(compact, "_bucket_count", lambda input_bytes: 1)
    monkeypatch.setattr(compact, "BUCKET_BYTES", 8_000)
    depths = []
    real = compact._sorted_runs

    def spy(parts, name, depth):
        depths.append(depth)
        return real(parts, name, depth)

    monkeypatch.setattr(compact, "_sorted_runs", spy)
    result = compact_day(tmp_path, DAY, progress=False, workers=1)
    assert (tmp_path / compacted_name(DAY)).read_bytes() == expected
    assert (result.records, result.duplicates, result.changed) == (records, duplicates, False)
    assert max(depths) >= 2


def test_bad_input_is_skipped_counted_and_described(tmp_path: Path) -> None:
    good = [record(f"2026-11-22T10:00:0{i}Z") for i in range(6)]
    # a corrupt gzip file: one good member, then bytes that are not gzip
    corrupt = write_raw(tmp_path, DAY, [], data=gzip.compress(line(good[0]) + b"\n") + b"this is not gzip data")
    # a truncated gzip file: the second member lost its trailer; its complete line is kept
    second = gzip.compress(line(good[2]) + b"\n")
    truncated = write_raw(tmp_path, DAY, [], data=gzip.compress(line(good[1]) + b"\n") + second[:-4])
    not_gzip = write_raw(tmp_path, DAY, [], data=b'{"schema": "plain text"}\n')
    write_raw(tmp_path, DAY, [], data=b"")
    bad_schema = record("2026-11-22T11:00:00Z").to_dict() | {"input_tokens": -31337}
    no_provider = {k: v for k, v in record("2026-11-22T11:00:00Z").to_dict().items() if k != "provider"}
    lines = [
        line(good[3]),
        b"not json at all",
        b"[1, 2, 3]",
        json.dumps(bad_schema).encode(),
        json.dumps(no_provider).encode(),
        b'{"schema": "tailpipe.record/1", "bad": NaN}',
        line(good[4]),
    ]
    messy = write_raw(tmp_path, DAY, [], data=gzip.compress(b"\n".join(lines) + b"\n" + line(good[5])[:40]))
    write_raw(tmp_path, DAY, [], data=gzip.compress(line(good[5])))  # no final newline: still a whole line

    result = compact_day(tmp_path, DAY, progress=False)

    assert [r["record_id"] for r in published(tmp_path)] == [r.record_id for r in good]
    assert (result.bad_files, result.bad_lines, result.bad_records) == (4, 4, 2)
    text = "\n".join(result.messages)
    assert f"{corrupt}: corrupt gzip data" in text and "kept the 1 lines before it" in text
    assert f"{truncated}: gzip stream ends early (truncated file?)" in text
    assert f"{not_gzip}: corrupt gzip data" in text and "empty file, not gzip" in text
    assert f"{messy} line 2: not valid JSON" in text and f"{messy} line 3: a JSON list, not an object" in text
    assert f"{messy} line 8: not valid JSON" in text  # the cut-off last line
    assert f"{messy} line 4: fails the tailpipe.record/1 schema (field 'input_tokens')" in text
    assert f"{messy} line 5: fails the tailpipe.record/1 schema (field 'provider')" in text
    assert "31337" not in text  # values are never quoted: a malformed record could carry anything
    assert result.skipped == 6 and "skipped: 4 bad files, 4 bad lines, 2 records failing the schema" in result.summary()


@pytest.mark.parametrize("workers", [1, 2])
def test_verifier_verdicts_are_counted(tmp_path: Path, workers: int) -> None:
    keep = record("2026-11-22T10:00:00Z")
    tampered = record("2026-11-22T10:00:01Z", attributes={"team": "evil"})
    unsigned = record("2026-11-22T10:00:02Z", attributes={"team": "anon"})
    write_raw(tmp_path, DAY, [line(keep), line(tampered), line(unsigned), line(unsigned)])
    verdicts = {"evil": "bad_signature", "anon": "unsigned"}

    def verify(rec: dict) -> str:  # a closure: works in forked workers too
        return verdicts.get(rec["attributes"].get("team"), "ok")

    result = compact_day(tmp_path, DAY, verify=verify, progress=False, workers=workers)

    assert [r["record_id"] for r in published(tmp_path)] == [keep.record_id]
    assert result.rejected == {"bad_signature": 1, "unsigned": 2}
    assert f"record {tampered.record_id}: rejected by verification (bad_signature); skipped" in result.messages


def test_a_crash_while_writing_leaves_the_old_file_and_no_partial_one(tmp_path: Path, monkeypatch) -> None:
    write_raw(tmp_path, DAY, [line(record(f"2026-11-22T10:00:{i:02d}Z")) for i in range(20)])
    compact_day(tmp_path, DAY, progress=False)
    target = tmp_path / compacted_name(DAY)
    old = target.read_bytes()
    raw_before = {p: p.read_bytes() for p in (tmp_path / "ai-telemetry-raw").rglob("*.gz")}
    write_raw(tmp_path, DAY, [line(record(f"2026-11-22T11:00:{i:02d}Z")) for i in range(20)])
    monkeypatch.setattr(compact, "MEMBER_BYTES", 500)
    seen_mid_write: list[list[str]] = []
    real_blocks = compact._blocks

    def failing_blocks(lines):
        for n, block in enumerate(real_blocks(lines)):
            if n == 3:
                seen_mid_write.append(sorted(p.name for p in target.parent.iterdir()))
                raise OSError("No space left on device")
            yield block

    monkeypatch.setattr(compact, "_blocks", failing_blocks)
    with pytest.raises(OSError, match="No space left"):
        compact_day(tmp_path, DAY, progress=False)

    assert target.read_bytes() == old
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # the temporary file is gone
    assert [p.name for p in target.parent.glob("telemetry-*.jsonl.gz")] == [target.name]
    hidden = [n for n in seen_mid_write[0] if n != target.name]
    assert len(hidden) == 1 and hidden[0].startswith(f".{target.name}.tmp-")  # invisible to readers' globs
    assert all(p.read_bytes() == data for p, data in raw_before.items())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_no_raw_data_is_an_error_and_leaves_the_published_file(tmp_path: Path) -> None:
    target = tmp_path / compacted_name(DAY)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"old")
    with pytest.raises(CompactError, match="no raw files for 2026-11-22"):
        compact_day(tmp_path, DAY, progress=False)
    assert target.read_bytes() == b"old"


def test_a_day_with_no_records_of_its_own_gives_a_valid_empty_file(tmp_path: Path) -> None:
    write_raw(tmp_path, DAY, [line(record("2026-11-23T00:00:00Z"))])
    result = compact_day(tmp_path, DAY, progress=False)
    assert result.records == 0 and gzip.decompress((tmp_path / compacted_name(DAY)).read_bytes()) == b""


BAD_RECORDS = [
    {"schema": "tailpipe.record/2"},
    {"record_id": "not-a-uuid"},
    {"timestamp": "2026-11-22 10:00:00"},
    {"timestamp": "2026-11-22T10:00:00+01:00"},
    {"integration": "carrier-pigeon"},
    {"provider": ""},
    {"status": "maybe"},
    {"token_accuracy": None},
    {"input_tokens": 1.5},
    {"output_tokens": True},
    {"energy_wh": -1},
    {"attributes": {"team": 3}},
    {"environment": None},
    {"factors": []},
    {"flags": "x"},
    {"trace_id": "0" * 32},
    {"signature": {"alg": "x"}},
]


@pytest.mark.parametrize("change", BAD_RECORDS, ids=lambda c: next(iter(c)))
def test_check_record_follows_the_record_schema(change: dict) -> None:
    good = record("2026-11-22T10:00:00Z", attributes={"team": "a"}).to_dict() | {"future_field": [1, 2]}
    check_record(good)
    bad = good | change
    with pytest.raises(RecordError):
        Record.from_dict(bad)
    with pytest.raises(RecordError):
        check_record(bad)
    for required in ("schema", "record_id", "timestamp", "integration", "provider", "status", "token_accuracy"):
        with pytest.raises(RecordError, match=required):
            check_record({k: v for k, v in good.items() if k != required})


def test_summary_names_the_numbers(tmp_path: Path) -> None:
    write_raw(tmp_path, DAY, [line(record("2026-11-22T10:00:00Z")), b"oops"])
    text = compact_day(tmp_path, DAY, progress=False).summary()
    assert "2026-11-22: 1 records ->" in text and "1 bad lines" in text and "line 2: not valid JSON" in text


def test_leftovers_of_a_killed_run_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    write_raw(tmp_path, DAY, [line(record("2026-11-22T10:00:00Z"))])
    target = tmp_path / compacted_name(DAY)
    target.parent.mkdir(parents=True)
    stale_tmp = target.with_name(f".{target.name}.tmp-{pid}-0123abcd")
    stale_tmp.write_bytes(b"half a file")
    stale_spill = tmp_path / f".tailpipe-compact-{pid}-abcd1234"
    stale_spill.mkdir()
    live_spill = tmp_path / f".tailpipe-compact-{os.getpid()}-live0000"  # a run still going: left alone
    live_spill.mkdir()
    compact_day(tmp_path, DAY, progress=False)
    assert not stale_tmp.exists() and not stale_spill.exists() and live_spill.exists()
