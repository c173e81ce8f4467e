"""The gateway's fast path gives exactly what the plain path gives.

The gateway decodes only the span attributes ``call_from_attributes`` reads (``span_reading.READ_KEYS`` and
the tags), draws record ids from a batch and caches the date part of timestamps. Each shortcut is checked
against the plain computation it replaces, on seeded random input that mixes every attribute name the
reader knows with unknown and content attributes, and junk values.
"""

from __future__ import annotations

import dataclasses
import os
import random
import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

pytest.importorskip("opentelemetry.proto")

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue

from tailpipe_ai.exporter.sink import MemorySink
from tailpipe_ai.gateway.ingest import Ingestor
from tailpipe_ai.gateway.spans import SPAN_KEYS, attributes_of, calls_from_traces, span_attributes_of
from tailpipe_ai.processor import span_reading as sr
from tailpipe_ai.semconv import attributes as sc
from tailpipe_ai.semconv.record import new_record_id, rfc3339_from_unix_ns, rfc3339_utc

# Names drawn: every attribute name of our semconv module and of the reader's tables, listed independently of
# READ_KEYS so that a name missing from READ_KEYS still turns up in spans.
KNOWN = sorted(
    {v for k, v in vars(sc).items() if k.isupper() and isinstance(v, str) and "." in v}
    | {n for t in vars(sr).values() if isinstance(t, tuple) for n in t if isinstance(n, str) and "." in n}
    | {sr.LLM_REQUEST_TYPE, sr.TRACELOOP_SPAN_KIND}
)
OTHER = [
    "gen_ai.request.max_tokens",
    "server.address",
    "http.request.method",
    "gen_ai.input.messages",  # content
    "gen_ai.prompt.0.content",  # content (prefix)
    "llm.completions.0.content",  # content (prefix)
    "tailpipe.attr.team",
    "tailpipe.attr.tenant",
    "tailpipe.attr.cost_center",
    sc.TAILPIPE_REGION,
    sc.CLOUD_REGION,
]
VALUES: list[Any] = [
    None, 0, 1, 250, -3, 2.0, 2.5, float("nan"), True, False, "", "12", "x1", "chat", "agent", "embedding",
    "text_completion", "image_generation", "openai", "Anthropic", "aws", "mistralai", "gpt-4o-mini",
    "claude-sonnet-4-20250514", "unknown", "text", "estimated", "stop", ("stop", "length"), (), "eu-west-1",
    "1024x1024", "workflow", "timeout", 0.25,
]  # fmt: skip


def random_attributes(rng: random.Random) -> dict[str, Any]:
    attrs = {rng.choice(KNOWN + OTHER): rng.choice(VALUES) for _ in range(rng.randint(0, 30))}
    if rng.random() < 0.6:  # a plausible model call, so the deeper branches run
        attrs[sc.GEN_AI_OPERATION_NAME] = rng.choice(["chat", "embeddings", "image_generation", "rerank"])
        attrs[rng.choice(sr.PROVIDER)] = rng.choice(["openai", "anthropic", "aws.bedrock", "Mistral"])
        attrs[sc.GEN_AI_REQUEST_MODEL] = rng.choice(["gpt-4o-mini", "claude-sonnet-4-20250514", "nope-1"])
        attrs[rng.choice(sr.INPUT_TOKENS)] = rng.randint(0, 5000)
    return attrs


def any_value(value: Any) -> AnyValue:
    if value is None:
        return AnyValue()
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, tuple):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    return AnyValue(string_value=value)


def key_values(attrs: Mapping[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attrs.items()]


class RecordingMapping(Mapping[str, Any]):
    """A mapping that notes every name looked up by name (get, [], in); iteration is not a lookup."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.asked.add(key)
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        self.asked.add(key)  # type: ignore[arg-type]
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def items(self):  # iteration: Mapping's own items() would go through __getitem__
        return self._data.items()

    def __len__(self) -> int:
        return len(self._data)


def test_read_keys_are_every_name_the_reader_looks_up():
    rng = random.Random(1)
    asked: set[str] = set()
    calls = 0
    for _ in range(3000):
        attrs = RecordingMapping(random_attributes(rng))
        calls += sr.call_from_attributes(attrs) is not None
        asked |= attrs.asked
    assert calls > 1000  # the deep branches ran
    assert asked - sr.READ_KEYS == set()
    assert sr.READ_KEYS - asked == set()  # and READ_KEYS lists nothing the reader ignores


def test_no_decoded_name_is_a_content_attribute():
    assert [k for k in SPAN_KEYS if sc.is_content_attribute(k)] == []


def test_span_attributes_of_gives_the_same_call_as_all_attributes():
    rng = random.Random(2)
    compared = 0
    for _ in range(2000):
        kvs = key_values(random_attributes(rng))
        fast = span_attributes_of(kvs)
        assert not any(sc.is_content_attribute(k) for k in fast)
        assert set(fast) <= SPAN_KEYS | {k for k in fast if k.startswith(sr.TAG_PREFIX)}
        full = attributes_of(kvs)
        for region in (None, "aws:eu-west-1"):
            expected = sr.call_from_attributes(full, integration="gateway", region=region)
            got = sr.call_from_attributes(fast, integration="gateway", region=region)
            assert got == expected
            compared += expected is not None
        for key in (sc.TAILPIPE_REGION, sc.CLOUD_REGION):  # what the gateway itself reads
            assert repr(fast.get(key)) == repr(full.get(key))
    assert compared > 1000


def test_content_tag_is_not_decoded_even_after_learning_names(monkeypatch):
    # A tag name on the content denylist (set here, as a deployment could) stays undecoded, first time and after.
    monkeypatch.setattr(sc, "CONTENT_ATTRIBUTES", sc.CONTENT_ATTRIBUTES | {"tailpipe.attr.secret_note"})
    kvs = key_values({"tailpipe.attr.secret_note": "canary-3f9a", "tailpipe.attr.team": "search"})
    for _ in range(2):
        assert span_attributes_of(kvs) == {"tailpipe.attr.team": "search"}


def _request(rng: random.Random) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    for r in range(6):
        rs = req.resource_spans.add()
        rs.resource.attributes.extend(key_values({"service.name": f"svc{r}", "cloud.provider": "aws"}))
        if r % 2:
            rs.resource.attributes.extend(key_values({"cloud.region": "eu-west-1", "tailpipe.attr.team": "a"}))
        spans = rs.scope_spans.add().spans
        for _ in range(60):
            span = spans.add()
            span.trace_id, span.span_id = os.urandom(16), os.urandom(8)
            span.start_time_unix_nano = 1_767_225_600_000_000_000 + rng.randint(0, 10**13)
            span.end_time_unix_nano = span.start_time_unix_nano + rng.randint(-5, 10**10)
            span.status.code = rng.choice([0, 1, 2])
            span.attributes.extend(key_values(random_attributes(rng)))
    return req


def test_gateway_records_match_the_plain_path(monkeypatch):
    """Records from the fast path equal records built from fully decoded attributes (ids aside)."""
    req = _request(random.Random(3))
    fast_sink = MemorySink()
    Ingestor(fast_sink, region="aws:us-east-1").traces(req, "acme")

    import tailpipe_ai.gateway.spans as spans_module

    monkeypatch.setattr(spans_module, "span_attributes_of", attributes_of)  # decode everything (non-content)
    plain_sink = MemorySink()
    Ingestor(plain_sink, region="aws:us-east-1").traces(req, "acme")

    def comparable(record):
        d = dataclasses.asdict(record)
        d.pop("record_id")
        return d

    assert len(fast_sink.records) > 150
    assert [comparable(r) for r in fast_sink.records] == [comparable(r) for r in plain_sink.records]
    assert len({r.record_id for r in fast_sink.records + plain_sink.records}) == 2 * len(fast_sink.records)


def test_non_genai_spans_give_no_call():
    kvs = {"http.request.method": "GET", "server.address": "api", "tailpipe.attr.team": "a"}
    req = ExportTraceServiceRequest()
    req.resource_spans.add().scope_spans.add().spans.add().attributes.extend(key_values(kvs))
    assert list(calls_from_traces(req, "acme")) == []


def test_cached_rfc3339_from_unix_ns_equals_datetime_formatting():
    rng = random.Random(4)
    values = [0, 1, 999, 1000, 999_999_999, 1_000_000_000, 1_767_225_599_999_999_999, 1_767_225_600_000_000_000]
    values += [rng.randint(0, 4_102_444_800 * 10**9) for _ in range(6000)]  # > the 4096-second cache: clears
    for ns in values:
        reference = rfc3339_utc(datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=ns // 1000))
        assert rfc3339_from_unix_ns(ns) == reference


def test_record_ids_are_unique_random_v4_uuids_across_threads():
    found: list[list[str]] = [[] for _ in range(4)]

    def draw(out: list[str]) -> None:
        out.extend(new_record_id() for _ in range(3000))

    threads = [threading.Thread(target=draw, args=(out,)) for out in found]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for out in found for i in out]
    assert len(set(ids)) == len(ids) == 12_000
    for rid in ids[::7]:
        u = uuid.UUID(rid)
        assert (u.version, u.variant, str(u)) == (4, uuid.RFC_4122, rid)
    # every variant digit occurs (the two random bits under the variant are kept)
    assert {rid[19] for rid in ids} == set("89ab")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_does_not_reuse_the_parents_ids():
    new_record_id()  # the parent holds a partly used batch
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.write(write, new_record_id().encode())
        finally:
            os._exit(0)
    os.close(write)
    child_id = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child_id) == 36
    assert child_id != new_record_id()
