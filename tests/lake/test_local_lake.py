"""LocalLakeSink: Firehose-shaped gzip JSON lines in the local lake, published atomically, never lost quietly."""

from __future__ import annotations

import gzip
import logging
import os
import re
import subprocess
import sys
import threading
import time
import uuid
import zlib
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tailpipe_ai.exporter.lines import json_line
from tailpipe_ai.exporter.local_lake import LocalLakeSink, recover_temp_files
from tailpipe_ai.lake.layout import RAW_PREFIX, raw_object_name, raw_partition
from tailpipe_ai.lake.reader import ReadStats, iter_raw_files, iter_records
from tailpipe_ai.semconv import Record

T0 = datetime(2026, 3, 1, 12, 34, 56, tzinfo=timezone.utc)
SECRET = "canary-secret-value-7f3a"
NAME_RE = re.compile(r"tailpipe-local-1-(\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)-[0-9a-f-]{36}\.gz")
LOGGER = "tailpipe_ai.exporter.local_lake"


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FastSink(LocalLakeSink):
    POLL_SECONDS = 0.01
    SYNC_SECONDS = 0.01


@pytest.fixture
def sinks():
    made: list[LocalLakeSink] = []

    def make(lake, cls=LocalLakeSink, **kw):
        sink = cls(lake, **kw)
        made.append(sink)
        return sink

    yield make
    for s in made:
        s.close()


def rec(i: int = 0, **kw) -> Record:
    return Record(**{"integration": "sdk", "provider": "openai", "token_accuracy": "exact", "input_tokens": i, **kw})


def files(lake: Path) -> list[Path]:
    return sorted(p for p in (lake / RAW_PREFIX).rglob("*") if p.is_file())


def published(lake: Path) -> list[Path]:
    return [p for p in files(lake) if not p.name.startswith(".")]


def temps(lake: Path) -> list[Path]:
    return [p for p in files(lake) if p.name.startswith(".")]


def read_all(lake: Path, **kw) -> list[dict]:
    days = {date(*map(int, re.findall(r"=(\d+)", p.parent.as_posix())[-3:])) for p in published(lake)}
    stats = ReadStats()
    out = list(iter_records(iter_raw_files(lake, days), stats=stats, validate=True, **kw))
    assert stats.total_skipped == 0, stats.examples
    return out


def lines_of(path: Path) -> list[bytes]:
    return gzip.decompress(path.read_bytes()).splitlines()


def wait_until(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_records_land_in_the_write_time_partition_firehose_named_gzip_one_per_line(tmp_path, sinks):
    sink = sinks(tmp_path, clock=Clock())
    records = [rec(i) for i in range(3)]
    for r in records:
        sink.write(r)
    wait_until(lambda: sink.written == 3)
    assert published(tmp_path) == []  # still open: only the temp dotfile exists
    assert [p.name.startswith(".") and p.name.endswith(".gz.tmp") for p in temps(tmp_path)] == [True]

    assert sink.flush(timeout=5)
    [path] = published(tmp_path)
    assert path.parent == tmp_path / raw_partition(date(2026, 3, 1))
    assert NAME_RE.fullmatch(path.name).group(1) == "2026-03-01-12-34-56"
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert lines_of(path) == [r.encode() for r in records]
    assert [d["record_id"] for d in read_all(tmp_path)] == [r.record_id for r in records]
    assert temps(tmp_path) == [] and sink.files == 1

    assert sink.flush(timeout=5)  # nothing new: no empty file
    assert len(published(tmp_path)) == 1
    sink.write(rec(9))
    assert sink.flush(timeout=5)
    assert len(published(tmp_path)) == 2 and len(read_all(tmp_path)) == 4


@pytest.mark.parametrize("backend", ["isal", "zlib"])
def test_both_compressors_write_gzip_readable_while_open_and_once_published(tmp_path, sinks, monkeypatch, backend):
    from tailpipe_ai.exporter import local_lake

    if backend == "zlib":
        monkeypatch.setattr(local_lake, "_deflate", None)
    else:
        assert local_lake._deflate is not None, "isal is a dependency: its deflate should be in use"
    for level in (1, 3, 6, 9):
        z = local_lake.gzip_compressor(level)
        assert gzip.decompress(z.compress(b"x" * 100) + z.flush(zlib.Z_FINISH)) == b"x" * 100
    sink = sinks(tmp_path, cls=FastSink)
    records = [rec(i) for i in range(50)]
    sink.write_many(records)
    wait_until(lambda: sink.written == 50)
    [temp] = temps(tmp_path)
    wait_until(lambda: len(zlib.decompressobj(31).decompress(temp.read_bytes()).splitlines()) == 50)  # sync-flushed
    assert sink.flush(timeout=5)
    assert lines_of(published(tmp_path)[0]) == [r.encode() for r in records]


def test_the_writer_compresses_gathered_lines_at_its_threshold_and_at_every_sync(tmp_path, monkeypatch):
    """Lines wait (by reference) until enough have come to be worth a call into the compressor; a sync
    or the end compresses whatever waits, so nothing written is ever held back from a sync flush."""
    from tailpipe_ai.exporter import local_lake

    calls: list[int] = []

    class Counting:  # the real compressor, its compress calls counted
        def __init__(self, z):
            self.z = z

        def compress(self, data):
            calls.append(len(data))
            return self.z.compress(data)

        def flush(self, mode):
            return self.z.flush(mode)

    real = local_lake.gzip_compressor
    monkeypatch.setattr(local_lake, "gzip_compressor", lambda level: Counting(real(level)))
    monkeypatch.setattr(local_lake._GzipWriter, "COMPRESS_BYTES", 4096)
    path = tmp_path / "part.gz"
    writer = local_lake._GzipWriter(path, 3)
    first = [b'{"n":%d}\n' % i for i in range(10)]
    writer.write(first, sum(map(len, first)))
    assert calls == [] and (writer.records, writer.bytes) == (10, sum(map(len, first)))
    writer.sync()
    assert calls == [sum(map(len, first))]
    assert zlib.decompressobj(31).decompress(path.read_bytes()) == b"".join(first)
    more = [uuid.uuid4().hex.encode() * 4 + b"\n" for _ in range(100)]  # 129 bytes each
    for k in range(0, 100, 10):
        writer.write(more[k : k + 10], sum(map(len, more[k : k + 10])))
    assert calls[1:] == [129 * 40, 129 * 40]  # twice past 4 KB, 20 lines still waiting
    writer.finish()
    writer.close()
    assert calls[1:] == [129 * 40, 129 * 40, 129 * 20]
    assert gzip.decompress(path.read_bytes()) == b"".join(first + more)
    assert (writer.records, writer.bytes) == (110, len(b"".join(first + more)))


def test_rolls_by_uncompressed_size(tmp_path, sinks):
    size = len(rec().encode()) + 1
    sink = sinks(tmp_path, roll_bytes=int(size * 2.5))
    for i in range(7):
        sink.write(rec(i))
    assert sink.flush(timeout=5)
    counts = sorted(len(lines_of(p)) for p in published(tmp_path))
    assert counts == [1, 2, 2, 2]
    assert all(len(gzip.decompress(p.read_bytes())) <= size * 2.5 for p in published(tmp_path))
    assert sorted(d["input_tokens"] for d in read_all(tmp_path)) == list(range(7))


def test_rolls_by_time_on_write_and_when_idle(tmp_path, sinks):
    clock = Clock()
    sink = sinks(tmp_path, cls=FastSink, clock=clock, roll_seconds=60)
    sink.write(rec(1))
    sink.write(rec(2))
    sink._queue.join()
    clock.advance(30)
    sink.write(rec(3))
    sink._queue.join()
    time.sleep(0.05)  # several idle polls: not due yet
    assert published(tmp_path) == []

    clock.advance(31)  # 61 s after the file opened: the next write rolls it first
    sink.write(rec(4))
    sink._queue.join()
    [first] = published(tmp_path)
    assert NAME_RE.fullmatch(first.name).group(1) == "2026-03-01-12-34-56"
    assert [Record.decode(x).input_tokens for x in lines_of(first)] == [1, 2, 3]

    clock.advance(60)  # no more writes: the idle writer rolls the second file on its own
    wait_until(lambda: len(published(tmp_path)) == 2)
    [second] = [p for p in published(tmp_path) if p != first]
    assert NAME_RE.fullmatch(second.name).group(1) == "2026-03-01-12-35-57"
    assert [Record.decode(x).input_tokens for x in lines_of(second)] == [4]


def test_rolls_at_the_utc_day_boundary(tmp_path, sinks):
    clock = Clock(datetime(2026, 3, 1, 23, 59, 50, tzinfo=timezone.utc))
    sink = sinks(tmp_path, clock=clock)
    sink.write(rec(1))
    sink._queue.join()
    clock.advance(15)
    sink.write(rec(2))
    assert sink.flush(timeout=5)
    by_day = {p.parent.relative_to(tmp_path).as_posix() + "/": len(lines_of(p)) for p in published(tmp_path)}
    assert by_day == {raw_partition(date(2026, 3, 1)): 1, raw_partition(date(2026, 3, 2)): 1}


def test_close_runs_at_exit(tmp_path):
    script = (
        "import sys\n"
        "from tailpipe_ai.exporter.local_lake import LocalLakeSink\n"
        "from tailpipe_ai.semconv import Record\n"
        "sink = LocalLakeSink(sys.argv[1])\n"
        "for i in range(1000):\n"
        "    sink.write(Record(integration='sdk', provider='openai', token_accuracy='exact', input_tokens=i))\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, timeout=30)
    assert temps(tmp_path) == []
    assert sorted(d["input_tokens"] for d in read_all(tmp_path)) == list(range(1000))


def _held_sink(sinks, lake: Path) -> tuple[LocalLakeSink, threading.Event]:
    """A sink with a queue of one whose writer thread is held on its first record (rec(0)) until the
    returned event is set, so the queue can be filled."""
    entered, release = threading.Event(), threading.Event()

    def signer(d):
        if threading.current_thread().name == "tailpipe-lake-sink":
            entered.set()
            release.wait(5)
        return d

    sink = sinks(lake, max_queue=1, signer=signer)
    sink.write(rec(0))  # taken by the writer thread, which then blocks
    assert entered.wait(5)
    return sink, release


def test_a_full_queue_writes_synchronously(tmp_path, sinks):
    sink, release = _held_sink(sinks, tmp_path)
    sink.write(rec(1))  # fills the queue
    for i in range(2, 5):
        sink.write(rec(i))  # queue full: written by the caller, at once
    assert sink.written == 3
    release.set()
    sink.close()
    assert sorted(d["input_tokens"] for d in read_all(tmp_path)) == list(range(5))


def test_batches_are_written_in_order_with_single_records_and_flushes(tmp_path, sinks):
    sink = sinks(tmp_path, roll_bytes=1_500)  # several files, so batches cross a roll
    sink.write(rec(0))
    sink.write_many([rec(i) for i in range(1, 20)])
    sink.write_many([])
    assert sink.flush(5)
    sink.write_many([rec(i) for i in range(20, 25)])
    sink.write(rec(25))
    sink.close()
    assert sorted(d["input_tokens"] for d in read_all(tmp_path)) == list(range(26))
    assert sink.written == 26 and len(published(tmp_path)) > 1


def test_a_batch_meeting_a_full_queue_or_a_closed_sink_is_written_by_the_caller(tmp_path, sinks):
    sink, release = _held_sink(sinks, tmp_path)
    sink.write_many([rec(1), rec(2)])  # fills the queue (one item)
    sink.write_many([rec(3), rec(4)])  # queue full: written at once
    assert sink.written == 2
    release.set()
    sink.close()
    sink.write_many([rec(5)])  # after close: written and published synchronously
    assert sorted(d["input_tokens"] for d in read_all(tmp_path)) == list(range(6))


def test_concurrent_writers(tmp_path, sinks):
    sink = sinks(tmp_path, max_queue=64, roll_bytes=40_000)
    ids: list[list[str]] = [[] for _ in range(8)]

    def produce(n: int) -> None:
        for i in range(500):
            r = rec(i)
            ids[n].append(r.record_id)
            sink.write(r)

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sink.close()
    got = [d["record_id"] for d in read_all(tmp_path)]
    assert len(got) == 4000 and set(got) == {i for part in ids for i in part}
    assert len(published(tmp_path)) > 1 and temps(tmp_path) == []
    assert all(len(gzip.decompress(p.read_bytes())) <= 40_000 for p in published(tmp_path))


def test_records_as_dicts_are_written_like_records_and_bad_ones_counted(tmp_path, sinks):
    good = [rec(i).view() for i in range(3)]
    bad = {**rec(9).view(), "energy_wh": float("nan")}
    normalised = {**rec(5).view(), "input_tokens": 5.0}  # not plain: goes through Record.from_dict
    sink = sinks(tmp_path)
    sink.write_fields([good[0], bad, good[1]])
    sink.write_fields([])
    sink.write_fields([normalised, good[2]])
    assert sink.flush(timeout=5)
    got = read_all(tmp_path)
    expected = [good[0], good[1], normalised, good[2]]
    assert [d["record_id"] for d in got] == [d["record_id"] for d in expected]
    assert got[2]["input_tokens"] == 5 and type(got[2]["input_tokens"]) is int
    assert [json_line(d) for d in good] == [json_line(d) for d in (got[0], got[1], got[3])]
    assert sink.unencodable == 1 and sink.written == 4


def test_records_as_dicts_are_written_in_the_callers_thread_and_rolled_on_time(tmp_path, sinks):
    # The proxy's telemetry thread encodes and writes its batches itself: no hand-off to the writer.
    clock = Clock()
    sink = sinks(tmp_path, FastSink, clock=clock, roll_seconds=60)
    batch = [rec(i).view() for i in range(3)]
    sink.write_fields(batch)
    assert sink.written == 3 and published(tmp_path) == []  # in the open file already, before any flush
    clock.advance(61)  # the writer thread still rolls a file that is due, with nothing queued to it
    deadline = time.monotonic() + 5
    while not published(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [d["record_id"] for d in read_all(tmp_path)] == [d["record_id"] for d in batch]
    sink.close()
    sink.write_fields([rec(7).view()])  # after close: written and published at once, not lost
    assert len(read_all(tmp_path)) == 4 and temps(tmp_path) == []


def test_unencodable_records_are_counted_and_logged_once_without_content(tmp_path, sinks, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    sink = sinks(tmp_path)
    sink.write(rec(1))
    sink.write(rec(2, attributes={SECRET: 1}))  # type: ignore[dict-item]
    sink.write(rec(3, provider=""))
    sink.write(rec(4))
    assert sink.flush(timeout=5)
    assert [d["input_tokens"] for d in read_all(tmp_path)] == [1, 4]
    assert sink.unencodable == 2
    warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 1 and "field 'attributes'" in warnings[0] and SECRET not in warnings[0]


def test_signer_output_is_written_compactly(tmp_path, sinks):
    def signer(d):
        if d["input_tokens"] == 2:
            raise RuntimeError(SECRET)
        d["signature"] = {"alg": "HMAC-SHA256", "key_id": "k1", "value": "abc\u2028"}
        return d

    sink = sinks(tmp_path, signer=signer)
    records = [rec(1), rec(2), rec(3)]
    for r in records:
        sink.write(r)
    assert sink.flush(timeout=5)
    [path] = published(tmp_path)
    expected = [json_line(signer(r.to_dict())) for r in (records[0], records[2])]
    assert lines_of(path) == expected and b"\\u2028" in expected[0]
    odd = rec(5, attributes={"k": "line\u2028sep\x85"})
    assert json_line(odd.to_dict()) == odd.encode()  # the same bytes Record.encode writes
    assert [d["signature"]["key_id"] for d in read_all(tmp_path)] == ["k1", "k1"]
    assert sink.unencodable == 1


# -- recovery of temp files left by a crashed process ------------------------------------------------------


def leftover(lake: Path, data: bytes) -> Path:
    folder = lake / raw_partition(date(2026, 3, 1))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".{raw_object_name(T0)}.tmp"
    path.write_bytes(data)
    return path


def gzip_lines(n: int) -> tuple[bytes, list[bytes]]:
    lines = [rec(i).encode() for i in range(n)]
    z = zlib.compressobj(6, zlib.DEFLATED, 31)
    return z.compress(b"".join(x + b"\n" for x in lines)) + z.flush(), lines


def test_recovers_a_temp_file_truncated_mid_member(tmp_path, sinks, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    data, lines = gzip_lines(200)
    cut = data[: len(data) * 6 // 10]
    complete = zlib.decompressobj(wbits=31).decompress(cut).count(b"\n")
    assert 0 < complete < 200
    temp = leftover(tmp_path, cut)
    sink = sinks(tmp_path)
    assert sink.flush(timeout=5)  # the writer recovers before it takes queued work
    assert temps(tmp_path) == []
    [final] = published(tmp_path)
    assert final.name == temp.name[1:-4]
    assert lines_of(final) == lines[:complete]
    [message] = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert f"recovered {complete} records" in message and "cut short" in message


def test_recovers_a_complete_temp_file_and_skips_published_ones(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    data, lines = gzip_lines(10)
    temp = leftover(tmp_path, data)
    already = leftover(tmp_path, data)  # renamed before the crash, but the temp was not removed
    (already.parent / already.name[1:-4]).write_bytes(data)
    (temp.parent / f"{temp.name[:-4]}.recovering").write_bytes(b"half a salvage")  # an earlier recovery died
    (temp.parent / ".orphan.gz.recovering").write_bytes(b"its temp file is gone")
    [result] = recover_temp_files(tmp_path)
    assert (result.temp, result.lines, result.complete, result.tail_lost) == (temp, 10, True, False)
    assert lines_of(result.final) == lines
    assert temps(tmp_path) == [] and len(published(tmp_path)) == 2
    assert "nothing was lost" in caplog.records[-1].getMessage()
    assert recover_temp_files(tmp_path) == []


def test_recovery_leaves_a_live_writers_file_alone(tmp_path, sinks):
    a = sinks(tmp_path)
    a.write(rec(1))
    wait_until(lambda: a.written == 1)
    b = sinks(tmp_path)  # starts up and runs recovery on the same lake
    assert b.flush(timeout=5)
    assert recover_temp_files(tmp_path) == []
    assert len(temps(tmp_path)) == 1 and published(tmp_path) == []
    a.write(rec(2))
    assert a.flush(timeout=5)
    assert [d["input_tokens"] for d in read_all(tmp_path)] == [1, 2]


def test_a_crashed_process_loses_nothing_already_synced(tmp_path, sinks):
    script = (
        "import os, sys, time\n"
        "from tailpipe_ai.exporter.local_lake import LocalLakeSink\n"
        "from tailpipe_ai.semconv import Record\n"
        "LocalLakeSink.SYNC_SECONDS = LocalLakeSink.POLL_SECONDS = 0.01\n"
        "sink = LocalLakeSink(sys.argv[1])\n"
        "for i in range(300):\n"
        "    sink.write(Record(integration='sdk', provider='openai', token_accuracy='exact', input_tokens=i))\n"
        "while sink.written < 300:\n"
        "    time.sleep(0.01)\n"
        "time.sleep(0.2)\n"
        "os._exit(0)  # no atexit: the temp file stays unfinished\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, timeout=30)
    assert len(temps(tmp_path)) == 1 and published(tmp_path) == []
    sink = sinks(tmp_path)
    assert sink.flush(timeout=5)
    assert sorted(d["input_tokens"] for d in read_all(tmp_path)) == list(range(300))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Python 3.12+ warns about fork with threads
def test_a_forked_child_writes_its_own_files(tmp_path, sinks):
    sink = sinks(tmp_path)
    sink.write(rec(1))
    wait_until(lambda: sink.written == 1)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            for i in range(100, 105):
                sink.write(rec(i))
            sink.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    sink.write(rec(2))
    assert sink.flush(timeout=5)
    assert sorted(d["input_tokens"] for d in read_all(tmp_path)) == [1, 2, 100, 101, 102, 103, 104]


def test_refuses_s3_and_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="Firehose"):
        LocalLakeSink("s3://bucket/lake")
    with pytest.raises(ValueError, match="roll_seconds"):
        LocalLakeSink(tmp_path, roll_seconds=0)


def test_uuid_names_are_unique(tmp_path, sinks):
    sink = sinks(tmp_path, roll_bytes=1)  # one record per file, many files in the same second
    for i in range(20):
        sink.write(rec(i))
    assert sink.flush(timeout=5)
    names = [p.name for p in published(tmp_path)]
    assert len(set(names)) == 20 and all(uuid.UUID(n[-39:-3]) for n in names)
