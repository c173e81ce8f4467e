"""FirehoseSink against a fault-injecting Firehose endpoint on loopback (real boto3, real HTTP).

Covers the PutRecordBatch limits, partial failures, throttling, a simulated 60-second outage, a restart
with a non-empty spool, spool replay order, never blocking the caller, and flush on close.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from datetime import date, datetime, timezone

import pytest

from tailpipe_ai.exporter.firehose import MAX_RECORD_BYTES, FirehoseSink
from tailpipe_ai.exporter.residency import Destination
from tailpipe_ai.semconv import Record
from tests.exporter.conftest import make_record
from tests.exporter.fake_firehose import Accept, CallError, FakeFirehose, Hangup, Hold, Partial

CANARY = "canary-attr-value-5d1e"
LOGGER = "tailpipe_ai.exporter"


class FakeTime:
    """A monotonic clock that only moves when the sink sleeps (shared with the fake endpoint)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


@pytest.fixture
def sinks(aws_env, tmp_path):
    made: list[FirehoseSink] = []

    def make(fake: FakeFirehose, spool_dir=None, **kw) -> FirehoseSink:
        dest = Destination("tailpipe-test", "eu-west-1", residency="eu", endpoint_url=fake.endpoint_url)
        kw.setdefault("linger_seconds", 0.05)
        kw.setdefault("close_timeout", 2.0)
        sink = FirehoseSink(dest, spool_dir=spool_dir or tmp_path / "spool", **kw)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.close()


def ids(lines: list[bytes]) -> list[str]:
    return [json.loads(line)["record_id"] for line in lines]


def test_each_record_is_its_json_plus_newline(sinks, fake_firehose):
    sink = sinks(fake_firehose)
    records = [make_record(i) for i in range(3)]
    for r in records:
        sink.write(r)
    assert sink.flush(10)
    assert fake_firehose.delivered == [r.encode() + b"\n" for r in records]
    assert {c.stream for c in fake_firehose.calls} == {"tailpipe-test"}


def test_501_records_take_two_calls(sinks, fake_firehose):
    sink = sinks(fake_firehose, linger_seconds=1.0)
    records = [make_record(i) for i in range(501)]
    for r in records:
        sink.write(r)
    assert sink.flush(20)
    sizes = [len(c.records) for c in fake_firehose.calls]
    assert sorted(sizes) == [1, 500]
    assert ids(fake_firehose.delivered) == [r.record_id for r in records]


def test_batches_stay_under_4_mib(sinks, fake_firehose):
    sink = sinks(fake_firehose, linger_seconds=1.0)
    pad = "x" * 200_000  # ~200 KB per record: 4 MiB holds 20 of them
    records = [make_record(i, attributes={"pad": pad}) for i in range(45)]
    for r in records:
        sink.write(r)
    assert sink.flush(20)
    per_call = [sum(len(d) for d in c.records) for c in fake_firehose.calls]
    assert max(per_call) <= 4 * 1024 * 1024
    assert len(per_call) >= 3  # 45 x ~200 KB = ~9 MB cannot go in fewer than 3 calls
    assert sorted(ids(fake_firehose.delivered)) == sorted(r.record_id for r in records)


def test_oversized_record_is_dead_lettered_not_lost(sinks, fake_firehose, caplog):
    sink = sinks(fake_firehose)
    big = make_record(0, attributes={"pad": "x" * MAX_RECORD_BYTES})
    small = make_record(1)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        sink.write(big)
        sink.write(small)
        assert sink.flush(10)
    assert ids(fake_firehose.delivered) == [small.record_id]
    assert sink.dead_lettered == 1
    dead = (sink.spool.folder / "dead-letter.jsonl").read_bytes().splitlines()
    assert ids(dead) == [big.record_id]
    assert "can never be delivered" in caplog.text and "xxxx" not in caplog.text


def test_partial_failure_resends_only_failed_entries(sinks, fake_firehose):
    fake_firehose.behaviour = lambda n, recs: (
        Partial({1: "ServiceUnavailableException", 3: "InternalFailure", 4: "ThrottlingException"})
        if n == 0
        else Accept()
    )
    sink = sinks(fake_firehose, linger_seconds=0.5, retry_base=0.01)
    records = [make_record(i) for i in range(6)]
    for r in records:
        sink.write(r)
    assert sink.flush(10)
    first, second = fake_firehose.calls[0], fake_firehose.calls[1]
    assert len(first.records) == 6
    assert ids(second.records) == [records[i].record_id for i in (1, 3, 4)]  # only the failed ones, in order
    assert sorted(ids(fake_firehose.delivered)) == sorted(r.record_id for r in records)
    assert len(fake_firehose.delivered) == 6  # nothing sent twice
    assert sink.retried_records == 3 and sink.spool.empty()


def test_throttled_calls_back_off_and_are_not_retried_twice(sinks, fake_firehose):
    fake_firehose.behaviour = lambda n, recs: CallError(400, "ThrottlingException") if n < 2 else Accept()
    t = FakeTime()
    sink = sinks(fake_firehose, clock=t.clock, sleep=t.sleep, rng=lambda: 1.0, retry_base=0.5)
    sink.write(make_record(0))
    assert sink.flush(10)
    # botocore's retries are off: each failure is exactly one HTTP call, and our backoff ran between them
    assert len(fake_firehose.calls) == 3
    assert sink.throttled == 2
    assert t.sleeps[:2] == [0.5, 1.0]  # full jitter with rng=1: base * 2**k
    assert len(fake_firehose.delivered) == 1


def test_service_unavailable_call_is_retried(sinks, fake_firehose):
    fake_firehose.behaviour = lambda n, recs: CallError(503, "ServiceUnavailableException") if n == 0 else Accept()
    sink = sinks(fake_firehose, retry_base=0.01)
    sink.write(make_record(0))
    assert sink.flush(10)
    assert len(fake_firehose.calls) == 2 and len(fake_firehose.delivered) == 1


def test_sixty_second_outage_is_spooled_and_replayed_in_order(sinks, fake_firehose, caplog):
    t = FakeTime()
    fake_firehose.behaviour = lambda n, recs: Hangup() if t.now < 60 else Accept()
    sink = sinks(fake_firehose, clock=t.clock, sleep=t.sleep, rng=random.Random(7).random, linger_seconds=0.01)
    records = [make_record(i, attributes={"team": CANARY}) for i in range(1200)]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for r in records[:600]:
            sink.write(r)
        while t.now < 30:  # the outage is under way: later records must queue behind the spooled ones
            time.sleep(0.01)
        for r in records[600:]:
            sink.write(r)
        assert sink.flush(30)
    assert t.now >= 60
    outage_calls = [c for c in fake_firehose.calls if isinstance(c.answer, Hangup)]
    assert len(outage_calls) >= 3
    assert max(t.sleeps) <= 30.0  # outage backoff capped
    delivered = ids(fake_firehose.delivered)
    assert len(set(delivered)) == 1200
    first_seen = list(dict.fromkeys(delivered))
    assert first_seen == [r.record_id for r in records]  # replayed in order
    assert sink.spool.empty() and sink.spooled >= 600
    assert caplog.text.count("cannot deliver to Firehose") == 1  # logged once per outage
    assert "resumed" in caplog.text
    assert CANARY not in caplog.text


def test_restart_with_non_empty_spool_delivers_each_record_once_after_compaction(aws_env, tmp_path, caplog):
    from tailpipe_ai.lake.compact import compact_day

    spool_dir = tmp_path / "spool"
    dest_down = FakeFirehose(behaviour=lambda n, recs: Hangup())
    records = [make_record(i) for i in range(300)]
    try:
        dest = Destination("tailpipe-test", "eu-west-1", residency="eu", endpoint_url=dest_down.endpoint_url)
        first = FirehoseSink(dest, spool_dir=spool_dir, close_timeout=0.5, retry_base=0.01, linger_seconds=0.01)
        for r in records:
            first.write(r)
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            first.close()  # the process stops while Firehose is unreachable
        assert first.spool.pending == 300 and "kept in" in caplog.text
    finally:
        dest_down.close()

    lake = tmp_path / "lake"
    with FakeFirehose(lake=lake) as up:
        # a crash mid-replay: the first batch is delivered but never acknowledged -> a duplicate later
        dest = Destination("tailpipe-test", "eu-west-1", residency="eu", endpoint_url=up.endpoint_url)
        second = FirehoseSink(dest, spool_dir=spool_dir, close_timeout=2.0, max_batch_records=100)
        assert second.spool.pending == 300
        assert second.flush(20)
        second.close()
        # replay the first batch again, as a process killed before its ack would have
        up._deliver(up.calls[0].records)
        delivered = ids(up.delivered)
    assert len(delivered) == 400 and len(set(delivered)) == 300
    assert list(dict.fromkeys(delivered)) == [r.record_id for r in records]
    today = datetime.now(timezone.utc).date()
    result = compact_day(lake, today, progress=False, workers=1)
    assert result.records == 300 and result.duplicates == 100


def test_write_never_blocks_when_the_queue_is_full(sinks, fake_firehose):
    release = threading.Event()
    fake_firehose.behaviour = lambda n, recs: Hold(release) if n == 0 else Accept()
    sink = sinks(fake_firehose, max_queue=5, linger_seconds=0.0, close_timeout=5.0)
    records = [make_record(i) for i in range(300)]
    writer = threading.Thread(target=lambda: [sink.write(r) for r in records])
    try:
        writer.start()
        writer.join(10)  # the endpoint hangs until released: a write that waited on it would never return
        assert not writer.is_alive()
        assert not fake_firehose.delivered  # the first call is still held (or not even made)
        assert sink.spooled > 0  # the overflow went to disk
    finally:
        release.set()
    assert sink.flush(20)
    assert sorted(ids(fake_firehose.delivered)) == sorted(r.record_id for r in records)


def test_close_flushes(sinks, fake_firehose):
    sink = sinks(fake_firehose, linger_seconds=5.0)  # lingering would hold the batch: close must not wait for it
    records = [make_record(i) for i in range(10)]
    for r in records:
        sink.write(r)
    started = time.monotonic()
    sink.close()
    assert time.monotonic() - started < 4.5  # under the 5 s linger: close did not wait for it
    assert ids(fake_firehose.delivered) == [r.record_id for r in records]
    sink.write(make_record(99))  # after close: counted, never raised
    assert sink.lost == 1


def test_stream_not_found_keeps_records_in_spool(sinks, fake_firehose, caplog):
    fake_firehose.behaviour = lambda n, recs: CallError(400, "ResourceNotFoundException")
    sink = sinks(fake_firehose, close_timeout=0.3)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for i in range(5):
            sink.write(make_record(i))
        assert not sink.flush(0.5)
        sink.close()
    assert sink.spool.pending == 5 and sink.dead_lettered == 0
    assert "ResourceNotFoundException" in caplog.text and "IAM" in caplog.text
    assert len(fake_firehose.calls) <= 10  # backed off, not retried in a tight loop (that would be hundreds)


def test_rejected_batch_is_dead_lettered(sinks, fake_firehose):
    fake_firehose.behaviour = lambda n, recs: CallError(400, "InvalidArgumentException")
    sink = sinks(fake_firehose)
    sink.write(make_record(0))
    assert sink.flush(10)
    assert sink.dead_lettered == 1 and sink.spool.empty()


def test_records_are_signed_when_a_signer_is_set(sinks, fake_firehose):
    from tailpipe_ai.exporter.signing import Keyring, Verdict, new_key_entry, sign, verify

    ring = Keyring.from_spec(new_key_entry("k1"))
    sink = sinks(fake_firehose, signer=lambda d: sign(d, ring))
    sink.write(make_record(0))
    assert sink.flush(10)
    (line,) = fake_firehose.delivered
    assert line.endswith(b"\n")
    assert verify(json.loads(line), ring) is Verdict.OK
    assert Record.decode(line.rstrip(b"\n")).signature["key_id"] == "k1"


def test_unencodable_record_is_counted_and_others_flow(sinks, fake_firehose):
    sink = sinks(fake_firehose)
    bad = make_record(0)
    bad.input_tokens = -5
    good = make_record(1)
    sink.write(bad)
    sink.write(good)
    assert sink.flush(10)
    assert sink.unencodable == 1 and ids(fake_firehose.delivered) == [good.record_id]


def test_day_partition_of_fake_matches_layout(tmp_path):
    # guard for the compaction test above: the fake writes Firehose-shaped objects compaction can read
    with FakeFirehose(lake=tmp_path) as fake:
        fake._deliver([make_record(0).encode() + b"\n"])
    (obj,) = list(tmp_path.rglob("*.gz"))
    today = datetime.now(timezone.utc).date()
    assert f"year={today.year:04d}/month={today.month:02d}/day={today.day:02d}" in str(obj)
    assert isinstance(today, date)


def test_second_process_spools_beside_and_is_adopted_later(aws_env, tmp_path):
    from tailpipe_ai.exporter.spool import Spool

    spool_dir = tmp_path / "spool"
    with FakeFirehose(behaviour=lambda n, recs: Hangup()) as down:
        dest = Destination("tailpipe-test", "eu-west-1", residency="eu", endpoint_url=down.endpoint_url)
        holder = Spool(spool_dir)  # another live process owns the main folder
        try:
            sink = FirehoseSink(dest, spool_dir=spool_dir, close_timeout=0.3, retry_base=0.01)
            assert sink.spool.folder.name.startswith("spool.pid")
            records = [make_record(i) for i in range(7)]
            for r in records:
                sink.write(r)
            sink.close()
        finally:
            holder.close()
    with FakeFirehose() as up:
        dest = Destination("tailpipe-test", "eu-west-1", residency="eu", endpoint_url=up.endpoint_url)
        owner = FirehoseSink(dest, spool_dir=spool_dir)
        assert owner.spool.folder == spool_dir and owner.spool.pending == 7  # adopted
        assert owner.flush(10)
        owner.close()
        assert ids(up.delivered) == [r.record_id for r in records]
    assert not list(tmp_path.glob("spool.pid*"))
