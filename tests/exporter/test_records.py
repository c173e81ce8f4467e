"""The shared record builder: the call's fields land in the record's fields of the same meaning, however
they are built (hot paths build `Call` and `Usage` positionally, `record_fields` fills a copied blank)."""

from __future__ import annotations

import dataclasses

import pytest

from tailpipe_ai.carbon import Usage
from tailpipe_ai.exporter.records import Call, estimate_call, record_fields, usage_of
from tailpipe_ai.providers import CallInfo
from tailpipe_ai.proxy import usage as proxy_usage
from tailpipe_ai.proxy.config import ProxyConfig
from tailpipe_ai.proxy.telemetry import Exchange, ProxyTelemetry
from tailpipe_ai.semconv import Record

TIMESTAMP = "2026-11-23T10:00:00.000000Z"


def test_call_and_usage_keep_the_field_order_their_positional_builders_use():
    # telemetry.call_of and records.usage_of pass these positionally: a reordering must update them.
    assert [f.name for f in dataclasses.fields(Call)] == [
        "provider", "operation", "request_model", "integration", "info", "start_time_ns", "latency_ms",
        "ttft_ms", "streamed", "status", "error_type", "token_accuracy", "region", "output_type", "attributes",
        "environment", "flags", "trace_id", "span_id",
    ]  # fmt: skip
    assert [f.name for f in dataclasses.fields(Usage)] == [
        "model", "provider", "input_tokens", "output_tokens", "total_tokens", "cache_read_tokens",
        "cache_write_tokens", "reasoning_tokens", "requests", "images", "image_size", "image_quality",
        "video_seconds", "video_resolution",
    ]  # fmt: skip
    assert CallInfo("m", "id").response_model == "m" and CallInfo("m", "id").response_id == "id"


def test_usage_of_takes_every_count_of_the_call():
    info = CallInfo(
        response_model="gpt-image-1",
        input_tokens=11,
        output_tokens=22,
        total_tokens=None,
        cache_read_tokens=3,
        cache_write_tokens=4,
        reasoning_tokens=5,
        images=2,
        image_size="1024x1024",
        image_quality="high",
        video_seconds=None,
        video_resolution="720p",
    )
    u = usage_of(Call("openai", "image_generation", "gpt-image", "sdk", info=info))
    assert (u.model, u.provider, u.requests) == ("gpt-image-1", "openai", 1)
    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
        assert getattr(u, name) == getattr(info, name), name
    assert (u.images, u.image_size, u.image_quality, u.video_resolution) == (2, "1024x1024", "high", "720p")
    assert usage_of(Call("openai", "chat", "gpt-4o", "sdk", info=CallInfo(total_tokens=9))).total_tokens == 9


@pytest.mark.parametrize("media", [False, True])
@pytest.mark.parametrize("traced", [False, True])
def test_record_fields_fills_the_media_and_trace_fields_only_when_the_call_has_them(media, traced):
    info = CallInfo(response_model="gpt-image-1", input_tokens=10, output_tokens=5)
    if media:
        info.images, info.image_size, info.image_quality = 2, "1024x1024", "high"
        info.video_seconds, info.video_resolution = 4.0, "720p"
    ids = {"trace_id": "ab" * 16, "span_id": "cd" * 8} if traced else {}
    call = Call("openai", "image_generation", "gpt-image-1", "sdk", info=info, latency_ms=3.0, **ids)
    est, cost = estimate_call(call)
    fields = record_fields(call, est, cost, TIMESTAMP)
    media_fields = ("images", "image_size", "image_quality", "video_seconds", "video_resolution")
    expected = (2, "1024x1024", "high", 4.0, "720p") if media else (None,) * 5
    assert tuple(fields[k] for k in media_fields) == expected
    assert (fields["trace_id"], fields["span_id"]) == (("ab" * 16, "cd" * 8) if traced else (None, None))
    assert fields["energy_wh"] == est.energy_wh and fields["carbon_gco2e_max"] == est.carbon_gco2e_max
    assert Record.from_dict(fields).view() == fields  # a valid record, nothing normalised
    again = record_fields(call, est, cost, TIMESTAMP)
    assert again is not fields and again["record_id"] != fields["record_id"]  # each record its own dict


def test_the_proxy_builds_its_call_field_by_field():
    """`call_of` builds `Call` positionally: every field must land where its name says."""
    ep = proxy_usage.endpoint("openai", "POST", "/v1/chat/completions")
    config = ProxyConfig(region="aws:eu-west-1")
    ex = Exchange(ep, "POST", "/openai/v1/chat/completions", b'{"model":"gpt-4o","stream":true}', None,
                  {"x-tailpipe-tags": "team=search"}, 123, 10.0)  # fmt: skip
    ex.status, ex.ttfb, ex.t_end, ex.streamed = 200, 10.25, 10.5, True
    ex.scan = proxy_usage.StreamScan(ep, None, 1 << 20)
    usage = b'"usage":{"prompt_tokens":7,"completion_tokens":2}'
    ex.scan.feed(b'data: {"id":"c1","model":"gpt-4o-x","choices":[],' + usage + b"}\n\n")
    ex.complete, ex.extra_flags = False, ("extra",)
    call = ProxyTelemetry(config, sink=None).call_of(ex)
    assert (call.provider, call.operation, call.request_model) == ("openai", "chat", "gpt-4o")
    assert call.integration == "proxy"
    assert (call.start_time_ns, call.latency_ms, call.ttft_ms, call.streamed) == (123, 500.0, 250.0, True)
    assert (call.status, call.error_type, call.token_accuracy) == ("ok", None, "estimated")
    assert (call.region, call.output_type) == ("aws:eu-west-1", "text")
    assert (call.attributes, call.environment) == ({"team": "search"}, {})
    assert call.info.input_tokens == 7 and "extra" in call.flags and "stream_incomplete" in call.flags
    assert (call.trace_id, call.span_id) == (None, None)


def _by_usage(call: Call, aggregate: bool = False):
    """What `estimate_call` gives through a `Usage` (its path for anything but plain text counts)."""
    from tailpipe_ai.carbon import cost_usd, estimate

    usage = usage_of(call)
    energy_usage = dataclasses.replace(usage, requests=None) if aggregate else usage
    return estimate(energy_usage, region=call.region), cost_usd(usage, call.provider)


@pytest.mark.parametrize(
    ("provider", "model", "counts", "region"),
    [
        ("openai", "gpt-4o-2024-08-06", {"input_tokens": 1200, "output_tokens": 300, "cache_read_tokens": 1024}, None),
        ("openai", "gpt-4o", {"input_tokens": 10, "output_tokens": 0, "reasoning_tokens": 0}, "aws:eu-central-1"),
        ("anthropic", "claude-sonnet-4", {"input_tokens": 5, "output_tokens": 7, "cache_write_tokens": 3}, "DE"),
        ("openai", "gpt-4o", {"total_tokens": 900}, None),  # only the sum: flat, and no cost
        ("openai", "gpt-4o", {}, None),  # no usage at all
        ("mistral_ai", "a-model-nobody-knows", {"input_tokens": 40, "output_tokens": 2}, None),  # class fallback
        ("gcp.gemini", "gemini-2.5-flash", {"input_tokens": 0, "output_tokens": 0}, None),
    ],
)
def test_a_text_call_is_estimated_and_priced_from_its_counts_as_through_a_usage(provider, model, counts, region):
    info = CallInfo(response_model=model, **counts)
    call = Call(provider, "chat", model, "proxy", info=info, region=region)
    est, cost = estimate_call(call)
    want_est, want_cost = _by_usage(call)
    assert est == want_est  # every figure, the method, the flags and the very factors object of the plan
    assert cost == want_cost


def test_calls_off_the_plain_path_still_go_through_a_usage():
    # Counts a Usage normalises (a float of a whole number) or refuses (negative) keep their old outcome.
    floats = Call("openai", "chat", "gpt-4o", "sdk", info=CallInfo(input_tokens=10.0, output_tokens=4))  # type: ignore[arg-type]
    est, cost = estimate_call(floats)
    assert est is not None and est == _by_usage(floats)[0] and cost == _by_usage(floats)[1]
    negative = Call("openai", "chat", "gpt-4o", "sdk", info=CallInfo(input_tokens=-1, output_tokens=4))
    assert estimate_call(negative) == (None, None)
    as_bool = Call("openai", "chat", "gpt-4o", "sdk", info=CallInfo(input_tokens=True, output_tokens=4))  # type: ignore[arg-type]
    assert estimate_call(as_bool) == (None, None)
    # An aggregate (Claude Code's metrics) charges no per-request energy; the plain path never takes it.
    summed = Call("anthropic", "chat", "claude-sonnet-4", "gateway", info=CallInfo(input_tokens=9, output_tokens=9))
    est, _ = estimate_call(summed, aggregate=True)
    assert est == _by_usage(summed, aggregate=True)[0] and est != estimate_call(summed)[0]
    # An unknown region is refused the same way on both paths.
    lost = Call("openai", "chat", "gpt-4o", "sdk", info=CallInfo(input_tokens=1, output_tokens=1), region="mars:1")
    assert estimate_call(lost) == (None, None)
