"""The telemetry inbox: batched, lock-free on the loop side, and still exact (no call lost, flush waits)."""

from __future__ import annotations

import json
import threading
import time

from tailpipe_ai.exporter.sink import MemorySink
from tailpipe_ai.proxy import usage
from tailpipe_ai.proxy.config import ProxyConfig
from tailpipe_ai.proxy.telemetry import Exchange, ProxyTelemetry

ENDPOINT = usage.endpoint("openai", "POST", "/v1/chat/completions")
REQUEST = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode()


def _answer(n: int) -> bytes:
    usage_ = {"prompt_tokens": n, "completion_tokens": 1, "total_tokens": n + 1}
    return json.dumps({"id": f"c{n}", "model": "gpt-4o-2024-08-06", "choices": [], "usage": usage_}).encode()


def _exchange(n: int, body: bytes | None = None) -> Exchange:
    path = "/openai/v1/chat/completions"
    ex = Exchange(ENDPOINT, "POST", path, REQUEST, None, {}, time.time_ns(), time.perf_counter())
    ex.body = _answer(n) if body is None else body
    ex.status = 200
    ex.t_end = ex.t0 + 0.001
    return ex


def _telemetry(**kw) -> tuple[ProxyTelemetry, MemorySink]:
    sink = MemorySink()
    return ProxyTelemetry(ProxyConfig(access_log=False), sink, **kw), sink


def test_every_call_is_recorded_once_and_flush_waits_for_all():
    telemetry, sink = _telemetry(batch_seconds=0.01)
    n = 500
    for i in range(1, n + 1):
        assert telemetry.begin()
        telemetry.submit(_exchange(i))
        if i % 97 == 0:
            time.sleep(0.02)  # let the thread go idle now and then: the next submit must wake it
    assert telemetry.flush(10)
    assert sorted(r.view()["input_tokens"] for r in sink.records) == list(range(1, n + 1))


def test_a_call_after_the_thread_went_idle_is_not_lost():
    telemetry, sink = _telemetry(batch_seconds=0.001)
    for i in range(1, 21):
        assert telemetry.begin()
        telemetry.submit(_exchange(i))
        deadline = time.monotonic() + 5
        while len(sink.records) < i and time.monotonic() < deadline:  # recorded without any flush() nudging it
            time.sleep(0.002)
        assert len(sink.records) == i
        time.sleep(0.005)  # longer than a batch: the thread is idle again


def test_flush_also_waits_for_calls_still_in_flight():
    telemetry, sink = _telemetry()
    assert telemetry.begin()  # begun, not yet submitted
    assert telemetry.flush(0.1) is False
    threading.Timer(0.05, telemetry.submit, (_exchange(7),)).start()
    assert telemetry.flush(10)
    assert [r.view()["input_tokens"] for r in sink.records] == [7]


def test_full_backlog_forwards_without_recording_then_recovers():
    telemetry, sink = _telemetry(max_queue=2)
    assert telemetry.begin() and telemetry.begin()
    assert not telemetry.begin()
    assert telemetry.dropped == 1
    telemetry.submit(_exchange(1))
    telemetry.submit(_exchange(2))
    assert telemetry.flush(10)
    assert telemetry.begin()
    telemetry.submit(_exchange(3))
    assert telemetry.flush(10)
    assert len(sink.records) == 3


def test_a_failing_record_does_not_stall_the_others_or_flush():
    telemetry, sink = _telemetry()
    broken = _exchange(1)
    broken.scan = object()  # not a scanner: processing this one raises inside the telemetry thread
    broken.body = None
    for ex in (broken, _exchange(2), _exchange(3)):
        assert telemetry.begin()
        telemetry.submit(ex)
    assert telemetry.flush(10)
    assert sorted(r.view()["input_tokens"] for r in sink.records) == [2, 3]


def test_a_call_is_handed_to_telemetry_only_after_its_last_byte_was_written(upstream, monkeypatch):
    """Waking the telemetry thread before the answer's end delayed the answer (the thread takes the GIL)."""
    from aiohttp import web

    from tests.proxy.conftest import start_proxy
    from tests.proxy.helpers import raw_request

    events: list[str] = []
    real_eof, real_submit = web.StreamResponse.write_eof, ProxyTelemetry.submit

    async def write_eof(self, data=b""):
        await real_eof(self, data)
        events.append("eof")

    def submit(self, exchange):
        events.append("submit")
        real_submit(self, exchange)

    monkeypatch.setattr(web.StreamResponse, "write_eof", write_eof)
    monkeypatch.setattr(ProxyTelemetry, "submit", submit)
    thread, sink = start_proxy(upstream)
    try:
        for stream in (False, True):
            events.clear()
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
            if stream:
                body["stream_options"] = {"include_usage": True}
            status, _, _ = raw_request(thread.url + "/openai/v1/chat/completions", body)
            assert status == 200
            assert thread.telemetry.flush(10)
            assert events[:2] == ["eof", "submit"], stream  # (aiohttp calls write_eof again: a no-op)
        assert [r.token_accuracy for r in sink.records] == ["exact", "exact"]
        assert not {"stream_incomplete", "client_aborted"} & {f for r in sink.records for f in r.flags}
    finally:
        thread.stop()
