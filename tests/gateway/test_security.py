"""Security: every bad request is refused with the right status, writes nothing, and the gateway serves on."""

from __future__ import annotations

import gzip
import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tailpipe_ai.gateway.auth import NONCE_HEADER, SIGNATURE_HEADER, TENANT_HEADER, signature_headers
from tests.gateway import payloads

BODY = payloads.traces([payloads.genai_attributes()]).SerializeToString()


def status_message(body: bytes) -> tuple[int, str]:
    """Decode a google.rpc.Status (code=1 varint, message=2 string) without googleapis protos."""
    assert body[0] == 0x08 and body[2] == 0x12
    length, i = 0, 3
    shift = 0
    while True:
        b = body[i]
        length |= (b & 0x7F) << shift
        i += 1
        shift += 7
        if not b & 0x80:
            break
    return body[1], body[i : i + length].decode()


def still_serving(gw, key):
    status, _, body = gw.post("/v1/traces", BODY, key=key)
    assert status == 200
    assert not ExportTraceServiceResponse.FromString(body).HasField("partial_success")


def test_no_key_wrong_key_malformed_header(gateway, tenants):
    _, keys = tenants
    for headers, key in (({}, None), ({}, "tp_not-a-real-key"), ({"Authorization": "Basic abc"}, None)):
        status, _, body = gateway.post("/v1/traces", BODY, key=key, headers=headers)
        assert status == 401
        code, message = status_message(body)
        assert code == 16  # UNAUTHENTICATED
        assert "tp_not-a-real-key" not in message
    assert gateway.sink.records == []
    still_serving(gateway, keys["acme"])
    assert [r.attributes["tenant"] for r in gateway.sink.records] == ["acme"]


def test_another_tenants_key_cannot_write_as_that_tenant(gateway, tenants):
    _, keys = tenants
    # globex's key, claiming to be acme: refused outright
    status, _, body = gateway.post("/v1/traces", BODY, key=keys["globex"], headers={TENANT_HEADER: "acme"})
    assert status == 403
    assert status_message(body)[0] == 7  # PERMISSION_DENIED
    assert gateway.sink.records == []
    # globex's key with a payload that says tenant acme (resource and span): the records say globex
    spoof = payloads.traces(
        [payloads.genai_attributes(**{"tailpipe.attr.tenant": "acme"})],
        resource={"service.name": "svc", "tailpipe.attr.tenant": "acme"},
    ).SerializeToString()
    status, _, _ = gateway.post("/v1/traces", spoof, key=keys["globex"])
    assert status == 200
    (record,) = gateway.sink.records
    assert record.attributes["tenant"] == "globex"
    assert "acme" not in record.attributes.values()


def test_hmac_signed_request_accepted_and_replay_forgery_refused(gateway, tenants):
    _, keys = tenants
    key = keys["acme"]
    good = signature_headers(key, BODY, path="/v1/traces")
    assert gateway.post("/v1/traces", BODY, key=key, headers=good)[0] == 200
    assert len(gateway.sink.records) == 1

    refused = {
        "replayed": good,
        "forged": {**signature_headers(key, BODY, path="/v1/traces"), SIGNATURE_HEADER: "v1=" + "0" * 64},
        "other body": signature_headers(key, BODY + b"\x00", path="/v1/traces"),
        "other path": signature_headers(key, BODY, path="/v1/metrics"),
        "signed with another tenant's key": signature_headers(keys["globex"], BODY, path="/v1/traces"),
        "stale": signature_headers(key, BODY, path="/v1/traces", now=1_000_000_000),
        "bad nonce": {**signature_headers(key, BODY, path="/v1/traces"), NONCE_HEADER: "x"},
    }
    for why, headers in refused.items():
        status, _, body = gateway.post("/v1/traces", BODY, key=key, headers=headers)
        assert status == 401, why
        assert status_message(body)[0] == 16, why
    assert len(gateway.sink.records) == 1
    still_serving(gateway, key)


def test_signature_required(tenants, fixed_carbon):
    from tailpipe_ai.exporter.sink import MemorySink
    from tailpipe_ai.gateway.server import GatewayThread, build_gateway
    from tests.gateway.conftest import Running

    config, keys = tenants
    config.require_signature = True
    sink = MemorySink()
    gw = build_gateway(config, sink=sink)
    with GatewayThread(gw) as thread:
        running = Running(gw, thread, sink)
        status, _, body = running.post("/v1/traces", BODY, key=keys["acme"])
        assert status == 401 and "requires signed requests" in status_message(body)[1]
        signed = signature_headers(keys["acme"], gzip.compress(BODY), path="/v1/traces")
        # the signature covers the bytes sent: the gzip body here
        data = gzip.compress(BODY)
        import urllib.request

        req = urllib.request.Request(
            running.url + "/v1/traces",
            data=data,
            method="POST",
            headers={
                "Content-Type": "application/x-protobuf",
                "Content-Encoding": "gzip",
                "Authorization": f"Bearer {keys['acme']}",
                **signed,
            },
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
    assert len(sink.records) == 1


def test_oversized_bodies_and_gzip_bomb(gateway, tenants):
    _, keys = tenants
    limit = gateway.gateway.config.limits
    # compressed body over the limit
    big = b"\x00" * (limit.max_body_bytes + 10)
    status, _, body = gateway.post("/v1/traces", big, key=keys["acme"])
    assert status == 413 and status_message(body)[0] == 8
    # a gzip bomb: 30 MiB of zeros compresses to ~30 KiB, over the 20 MiB decoded limit
    bomb = gzip.compress(b"\x00" * (limit.max_decoded_bytes + 10 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < limit.max_body_bytes
    status, _, body = gateway.post("/v1/traces", bomb, key=keys["acme"], headers={"Content-Encoding": "gzip"})
    assert status == 413 and "decompressed" in status_message(body)[1]
    assert gateway.sink.records == []
    still_serving(gateway, keys["acme"])


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"\xff\xff\xff\xff not protobuf", {}, 400),
        (b"{not json", {"Content-Type": "application/json"}, 400),
        (b"[1, 2]", {"Content-Type": "application/json"}, 400),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
            {"Content-Type": "application/json"},
            400,
        ),
        (b"not gzip at all", {"Content-Encoding": "gzip"}, 400),
        (gzip.compress(BODY)[:-12], {"Content-Encoding": "gzip"}, 400),
        (BODY, {"Content-Type": "text/plain"}, 415),
        (BODY, {"Content-Encoding": "br"}, 415),
    ],
    ids=["bad-protobuf", "bad-json", "json-array", "bad-hex-id", "not-gzip", "truncated-gzip", "text", "brotli"],
)
def test_malformed_payloads(gateway, tenants, body, headers, status):
    _, keys = tenants
    got, _, reply = gateway.post("/v1/traces", body, key=keys["acme"], headers=headers)
    assert got == status
    if headers.get("Content-Type") == "application/json":
        assert json.loads(reply)["code"] == 3
    assert gateway.sink.records == []
    still_serving(gateway, keys["acme"])


def test_overload_and_tenant_rate_give_retry_after(tenants, fixed_carbon):
    from tailpipe_ai.exporter.sink import MemorySink
    from tailpipe_ai.gateway.config import Limits
    from tailpipe_ai.gateway.server import GatewayThread, build_gateway
    from tests.gateway.conftest import Running

    config, keys = tenants
    config.limits = Limits(tenant_rate=2.0, retry_after_seconds=7)
    sink = MemorySink()
    gw = build_gateway(config, sink=sink)
    with GatewayThread(gw) as thread:
        running = Running(gw, thread, sink)
        statuses = [running.post("/v1/traces", BODY, key=keys["acme"]) for _ in range(4)]
        codes = [s for s, _, _ in statuses]
        assert codes[:2] == [200, 200] and 429 in codes[2:]
        limited = next(h for s, h, _ in statuses if s == 429)
        assert limited["Retry-After"] == "7"
        assert running.post("/v1/traces", BODY, key=keys["globex"])[0] == 200  # other tenants unaffected
        gw._inflight = config.limits.max_inflight  # simulate a full house
        status, headers, _ = running.post("/v1/traces", BODY, key=keys["globex"])
        assert status == 503 and headers["Retry-After"] == "7"
        gw._inflight = 0
    assert len(sink.records) == 3
