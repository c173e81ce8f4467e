"""Disconnects, dead upstreams, broken and silent streams."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tailpipe_ai.exporter.sink import MemorySink
from tailpipe_ai.proxy.app import ProxyThread
from tailpipe_ai.proxy.config import ProxyConfig

from .helpers import raw_request
from .scripted import ScriptedUpstream

BODY = json.dumps({"model": "claude-x", "max_tokens": 8, "stream": True, "messages": []}).encode()


def _proxy(upstream_url: str, **settings):
    sink = MemorySink()
    thread = ProxyThread(ProxyConfig(**settings).with_upstreams(anthropic=upstream_url), sink).start()
    return thread, sink


def _records(thread, sink):
    assert thread.telemetry.flush(10)
    return sink.records


def _send(proxy_url: str) -> socket.socket:
    host, port = proxy_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        b"POST /anthropic/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
        + BODY
    )
    return sock


def _read_until(sock: socket.socket, marker: bytes) -> None:
    sock.settimeout(5)
    received = b""
    while marker not in received:
        data = sock.recv(65536)
        assert data, "the proxy closed the client connection"
        received += data


@pytest.mark.parametrize("mode", ["hang", "first-then-hang"], ids=["before-first-byte", "after-first-byte"])
def test_client_disconnect_cancels_upstream(mode):
    with ScriptedUpstream(mode) as upstream:
        thread, sink = _proxy(upstream.url)
        try:
            sock = _send(thread.url)
            assert upstream.got_request.wait(5)
            if mode == "first-then-hang":
                _read_until(sock, b"message_start")  # headers go first, then the first event
            sock.close()
            assert upstream.closed_by_peer.wait(5), "the proxy kept the upstream request open"
            (record,) = _records(thread, sink)
            assert "client_aborted" in record.flags and "stream_incomplete" in record.flags
            assert record.token_accuracy == "estimated"
            if mode == "first-then-hang":
                assert record.input_tokens == 7  # what message_start said is kept
        finally:
            thread.stop()


def test_client_leaving_after_the_last_event_is_a_complete_stream():
    """SDKs close the connection once they read the stream's last event, often before the proxy has
    seen the upstream's end of body: the record must still be exact, not flagged as cut short."""
    with ScriptedUpstream("all-then-hang") as upstream:
        thread, sink = _proxy(upstream.url)
        try:
            sock = _send(thread.url)
            _read_until(sock, b"message_stop")
            sock.close()
            assert upstream.closed_by_peer.wait(5), "the proxy kept the upstream request open"
            (record,) = _records(thread, sink)
            assert "client_aborted" not in record.flags and "stream_incomplete" not in record.flags
            assert record.token_accuracy == "exact"
            assert (record.input_tokens, record.output_tokens) == (7, 5)
        finally:
            thread.stop()


@pytest.mark.parametrize("mode", ["refused", "close"])
def test_upstream_never_answering_gives_502_json(mode):
    if mode == "refused":
        s = socket.create_server(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        s.close()
        thread, sink = _proxy(url)
    else:
        upstream = ScriptedUpstream("close").__enter__()
        thread, sink = _proxy(upstream.url)
    try:
        status, headers, body = raw_request(thread.url + "/anthropic/v1/messages", BODY)
        assert status == 502 and headers["content-type"].startswith("application/json")
        error = json.loads(body)["error"]
        assert error["type"] == "proxy_upstream_unreachable" and "did not answer" in error["message"]
        (record,) = _records(thread, sink)
        assert record.status == "error" and "upstream_failed" in record.flags
    finally:
        thread.stop()


def test_upstream_reset_mid_stream_reaches_client_as_a_broken_stream():
    with ScriptedUpstream("reset-mid-stream") as upstream:
        thread, sink = _proxy(upstream.url)
        try:
            sock = _send(thread.url)
            received = b""
            sock.settimeout(5)
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                received += data
            sock.close()
            assert b"message_start" in received
            assert not received.endswith(b"0\r\n\r\n")  # no clean end: the client sees the break
            (record,) = _records(thread, sink)
            assert record.status == "error" and "upstream_failed" in record.flags
        finally:
            thread.stop()


def test_long_silent_stream_is_not_cut():
    gap = 1.5
    with ScriptedUpstream("silent-gap", gap=gap) as upstream:
        thread, sink = _proxy(upstream.url, connect_timeout=0.5)  # shorter than the gap: it only covers connecting
        try:
            t0 = time.perf_counter()
            status, _, body = raw_request(thread.url + "/anthropic/v1/messages", BODY)
            assert status == 200 and time.perf_counter() - t0 >= gap
            assert body.endswith(b'data: {"type":"message_stop"}\n\n')
            (record,) = _records(thread, sink)
            assert record.input_tokens == 7 and record.output_tokens == 5 and record.token_accuracy == "exact"
        finally:
            thread.stop()
