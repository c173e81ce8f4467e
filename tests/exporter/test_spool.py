"""Spool: durable FIFO on disk, crash-safe tail, acknowledged deletion, bounded size."""

from __future__ import annotations

import logging
import os

import pytest

from tailpipe_ai.exporter.spool import Spool, SpoolBusy


def lines(start: int, n: int, width: int = 0) -> list[bytes]:
    """JSON lines {"n": i, "pad": "xxx..."} (pad only when width > 0)."""
    pad = f',"pad":"{"x" * width}"' if width else ""
    return [f'{{"n":{i}{pad}}}\n'.encode() for i in range(start, start + n)]


def drain(spool: Spool, max_records: int = 7, max_bytes: int = 10_000) -> list[bytes]:
    out = []
    while (batch := spool.read(max_records, max_bytes)) is not None:
        out += batch.lines
        spool.ack(batch)
    return out


def test_fifo_across_segments_and_restart(tmp_path):
    data = lines(0, 100)
    with Spool(tmp_path, segment_bytes=200) as spool:
        assert spool.append(data[:60]) == 60
        assert spool.append(data[60:]) == 100 - 60
        assert len(spool) == 100
        segments = sorted(p.name for p in tmp_path.glob("seg-*.jsonl"))
        assert len(segments) >= 4  # rolled by size (~9 bytes a line, 200-byte segments)
        first = spool.read(10, 10_000)
        assert first is not None and first.lines == data[: len(first.lines)]
        spool.ack(first)
        done = len(first.lines)
    # a new process continues after the acknowledged part, in order
    with Spool(tmp_path, segment_bytes=200) as spool:
        assert len(spool) == 100 - done
        assert drain(spool) == data[done:]
        assert spool.empty()
    assert not list(tmp_path.glob("seg-*.jsonl"))  # fully acknowledged segments are deleted


def test_unacknowledged_batch_is_read_again_after_restart(tmp_path):
    data = lines(0, 20)
    with Spool(tmp_path) as spool:
        spool.append(data)
        batch = spool.read(5, 10_000)
        assert batch is not None and batch.lines == data[:5]
        # crash before ack: nothing acknowledged
    with Spool(tmp_path) as spool:
        assert drain(spool) == data


def test_read_respects_record_and_byte_limits(tmp_path):
    data = lines(0, 50, width=90)  # ~100 bytes each
    with Spool(tmp_path) as spool:
        spool.append(data)
        batch = spool.read(500, 1000)
        assert batch is not None
        assert batch.size <= 1000 and len(batch.lines) == 1000 // len(data[0])
        assert spool.read(3, 10_000).lines == data[:3]  # not acknowledged yet: same head
        big = spool.read(1, 10)  # one line larger than max_bytes is still returned whole
        assert big.lines == data[:1]


def test_half_written_tail_is_dropped_on_recovery(tmp_path, caplog):
    data = lines(0, 10)
    with Spool(tmp_path) as spool:
        spool.append(data)
    segment = next(tmp_path.glob("seg-*.jsonl"))
    with open(segment, "ab") as fh:
        fh.write(b'{"n":10,"half')  # the process died mid-write
    with caplog.at_level(logging.WARNING), Spool(tmp_path) as spool:
        assert spool.truncated == 1
        assert len(spool) == 10
        spool.append(lines(11, 2))
        assert drain(spool) == data + lines(11, 2)
    assert "half-written" in caplog.text and '"half' not in caplog.text  # no content in the log


def test_damaged_cursor_replays_segment(tmp_path):
    data = lines(0, 10)
    with Spool(tmp_path) as spool:
        spool.append(data)
        spool.ack(spool.read(3, 10_000))
    (tmp_path / "cursor").write_text("1 5\n")  # not at a line boundary
    with Spool(tmp_path) as spool:
        assert drain(spool) == data  # at-least-once: replay rather than skip


def test_full_spool_drops_oldest_segments_with_count(tmp_path, caplog):
    data = lines(0, 100, width=40)  # ~50 bytes each
    size = len(data[0])
    with caplog.at_level(logging.WARNING), Spool(tmp_path, max_bytes=20 * size, segment_bytes=5 * size) as spool:
        spool.append(data)
        assert spool.size <= 20 * size
        kept = drain(spool, 500, 1 << 20)
        assert spool.dropped == 100 - len(kept)
        assert kept == data[100 - len(kept) :]  # the newest survive, still in order
        assert len(kept) >= 15
    assert "dropped" in caplog.text and "oldest" in caplog.text


def test_line_larger_than_spool_is_refused(tmp_path):
    with Spool(tmp_path, max_bytes=100, segment_bytes=100) as spool:
        assert spool.append([b"x" * 200 + b"\n"]) == 0
        assert spool.dropped == 1 and spool.empty()


def test_second_process_is_refused(tmp_path):
    with Spool(tmp_path), pytest.raises(SpoolBusy, match="in use by another process"):
        Spool(tmp_path)
    Spool(tmp_path).close()  # released on close


def test_dead_letter_is_bounded(tmp_path):
    with Spool(tmp_path, max_dead_letter_bytes=25) as spool:
        assert spool.dead_letter([b"a" * 10 + b"\n", b"b" * 10 + b"\n", b"c" * 10 + b"\n"]) == 2
        assert spool.dead_lettered == 2 and spool.dead_letter_dropped == 1
        assert spool.empty()  # dead letters are never replayed
    assert (tmp_path / "dead-letter.jsonl").read_bytes() == b"a" * 10 + b"\n" + b"b" * 10 + b"\n"


@pytest.mark.parametrize("fsync_seconds", [0, None, 1.0])
def test_fsync_policies(tmp_path, monkeypatch, fsync_seconds):
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    now = [0.0]
    with Spool(tmp_path, fsync_seconds=fsync_seconds, clock=lambda: now[0]) as spool:
        calls.clear()
        spool.append(lines(0, 1))
        spool.append(lines(1, 1))
        synced_now = len(calls)
        now[0] += 2
        spool.append(lines(2, 1))
        synced_later = len(calls)
    if fsync_seconds == 0:
        assert synced_now >= 2  # every append
    elif fsync_seconds is None:
        assert synced_later == 0  # left to the OS (and to close)
    else:
        assert synced_now == 0 and synced_later >= 1  # once the interval passed


def test_append_without_sync_never_fsyncs(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd))
    with Spool(tmp_path, fsync_seconds=0) as spool:
        spool.append(lines(0, 3), sync=False)
        assert calls == []  # a request path never waits for the disk
        spool.sync_due()
        assert calls  # the policy is applied by the next sync_due()
