"""The opt-in include_usage injection, the byte scanner at awkward chunk boundaries, tags, config."""

from __future__ import annotations

import gzip
import json
import zlib

import openai
import pytest

from tailpipe_ai.proxy import usage
from tailpipe_ai.proxy.config import ProxyConfigError, load_config
from tailpipe_ai.proxy.inject import UsageChunkStripper, with_include_usage
from tailpipe_ai.proxy.telemetry import attribution, parse_tags
from tests.fakes import openai as fake_openai

from .conftest import Proxy, start_proxy
from .helpers import raw_request

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}], "stream": True}


def test_injected_usage_is_invisible_to_the_client(upstream):
    thread, sink = start_proxy(upstream, inject_openai_stream_usage=True)
    proxy = Proxy(thread, sink)
    try:
        direct = raw_request(upstream.url + "/v1/chat/completions", CHAT)
        proxied = raw_request(proxy.route("openai") + "/v1/chat/completions", CHAT)
        assert upstream.requests[-1].body["stream_options"] == {"include_usage": True}  # asked upstream
        assert proxied[2] == direct[2]  # ... but the client sees the stream it asked for
        client = openai.OpenAI(api_key="k", base_url=proxy.route("openai") + "/v1", max_retries=0)
        chunks = list(client.chat.completions.create(model="gpt-4o", messages=CHAT["messages"], stream=True))
        assert all(c.usage is None and c.choices for c in chunks)
        first, second = proxy.records
        for record in (first, second):
            assert record.token_accuracy == "exact"
            assert record.input_tokens == fake_openai.CHAT_USAGE["prompt_tokens"]
            assert record.output_tokens == fake_openai.CHAT_USAGE["completion_tokens"]
    finally:
        thread.stop()


def test_injection_leaves_other_requests_alone():
    assert with_include_usage(json.dumps({**CHAT, "stream": False}).encode(), None) is None
    own = {**CHAT, "stream_options": {"include_usage": False}}
    assert with_include_usage(json.dumps(own).encode(), None) is None  # the client decided
    body = with_include_usage(gzip.compress(json.dumps(CHAT).encode()), "gzip")
    assert json.loads(body)["stream_options"] == {"include_usage": True}
    assert with_include_usage(b"not json", None) is None


def test_stripper_across_chunk_boundaries():
    stream = (
        b'data: {"id":"a","choices":[{"delta":{}}],"usage":null}\n\n'
        b'data: {"id":"a","choices":[],"usage":{"prompt_tokens":1}}\n\ndata: [DONE]\n\n'
    )
    strip = UsageChunkStripper()
    out = b"".join(strip(stream[i : i + 7]) for i in range(0, len(stream), 7)) + strip.flush()
    assert out == b'data: {"id":"a","choices":[{"delta":{}}]}\n\ndata: [DONE]\n\n'


def _anthropic_stream() -> bytes:
    start = {
        "type": "message_start",
        "message": {
            "id": "m",
            "model": "claude-x",
            "usage": {
                "input_tokens": 10,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 5,
                "output_tokens": 1,
            },
        },
    }
    deltas = [
        {"type": "message_delta", "delta": {"stop_reason": None}, "usage": {"output_tokens": 20}},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 35}},
    ]
    text = {"type": "content_block_delta", "delta": {"type": "text_delta", "text": 'say "usage" here'}}
    events = [("message_start", start), ("content_block_delta", text), *(("message_delta", d) for d in deltas)]
    return b"".join(f"event: {n}\ndata: {json.dumps(d)}\n\n".encode() for n, d in events)


@pytest.mark.parametrize("step", [1, 3, 64, 100_000])
@pytest.mark.parametrize("compressed", [False, True])
def test_scanner_overwrites_cumulative_anthropic_usage(step, compressed):
    data = _anthropic_stream()
    if compressed:
        comp = zlib.compressobj(wbits=31)
        data = comp.compress(data) + comp.flush()
    ep = usage.endpoint("anthropic", "POST", "/v1/messages")
    scan = usage.StreamScan(ep, "gzip" if compressed else None, 1 << 20)
    for i in range(0, len(data), step):
        scan.feed(data[i : i + step])
    scan.close()
    assert all(b"text_delta" not in line for line in scan.hits)  # content events are never kept
    outcome = usage.interpret_stream(ep, scan, complete=True)
    # input = 10 + 100 + 5; output = the last cumulative count (35), not 1 + 20 + 35
    assert (outcome.info.input_tokens, outcome.info.output_tokens) == (115, 35)
    assert outcome.info.cache_read_tokens == 100 and not outcome.estimated


def test_scanner_keeps_the_last_gemini_usage():
    frames = [
        {"usageMetadata": {"promptTokenCount": 9, "thoughtsTokenCount": 4}},
        {"usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 3, "thoughtsTokenCount": 6}},
        {
            "modelVersion": "gemini-x",
            "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 7, "thoughtsTokenCount": 6},
        },
    ]
    data = b"".join(b"data: " + json.dumps(f).encode() + b"\r\n\r\n" for f in frames)
    ep = usage.endpoint("gemini", "POST", "/v1beta/models/gemini-x:streamGenerateContent")
    scan = usage.StreamScan(ep, None, 1 << 20)
    scan.feed(data)
    scan.close()
    info = usage.interpret_stream(ep, scan, complete=True).info
    assert (info.input_tokens, info.output_tokens, info.reasoning_tokens) == (9, 13, 6)  # 7 + 6, never summed


def _usage_lines_by_splitting(ep, data):
    """The usage lines a line-by-line reading keeps: what the position-based scanner must match."""
    lines = [ln for ln in data.split(b"\n") if ln.startswith(b"data:") and any(m in ln for m in ep.markers)]
    return lines if ep.keep_every_hit else lines[-1:]


@pytest.mark.parametrize(
    ("route", "path", "data"),
    [
        # a marker on a line that is not a data line: the data line before it is the last usage line
        ("openai", "/v1/chat/completions", b'data: {"usage":{"prompt_tokens":3}}\n: {"usage":{"x":1}}\n\n'),
        # CRLF framing: the line keeps its \r, as a split on \n does
        ("gemini", "/v1beta/models/g:streamGenerateContent", b'data: {"usageMetadata":{"a":1}}\r\n\r\n'),
        # the last line has no newline (a stream cut after it)
        ("mistral", "/v1/chat/completions", b'data: {"a":1}\n\ndata: {"usage": {"prompt_tokens":2}}'),
        # Anthropic: both markers on one line count once; every usage line, in order
        (
            "anthropic",
            "/v1/messages",
            b'event: message_start\ndata: {"type":"message_start","usage":{"input_tokens":1}}\n\n'
            b'event: error\ndata: {"type":"error","usage":{},"error":{"type":"overloaded_error"}}\n\n'
            b'event: ping\n: "usage"\n\n'
            b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":4}}\n\n',
        ),
        # content quoting a marker (escaped quotes) is never a usage line
        ("openai", "/v1/chat/completions", b'data: {"choices":[{"delta":{"content":"\\"usage\\":{"}}]}\n\n'),
    ],
)
def test_scanner_keeps_the_lines_a_line_by_line_reading_keeps(route, path, data):
    ep = usage.endpoint(route, "POST", path)
    scan = usage.StreamScan(ep, None, 1 << 20)
    scan.feed(data)
    scan.close()
    assert scan.hits == _usage_lines_by_splitting(ep, data)
    if route == "anthropic":
        assert len(scan.hits) == 3


@pytest.mark.parametrize(
    ("route", "path", "last"),
    [
        ("openai", "/v1/chat/completions", b"data: [DONE]\n\n"),
        ("mistral", "/v1/chat/completions", b"data: [DONE]\n\n"),
        ("openai", "/v1/responses", b'event: response.completed\ndata: {"type":"response.completed"}\n\n'),
        ("openai", "/v1/responses", b'event: response.incomplete\ndata: {"type":"response.incomplete"}\n\n'),
        ("anthropic", "/v1/messages", b'event: message_stop\ndata: {"type":"message_stop"}\n\n'),
    ],
)
def test_scanner_knows_when_the_stream_ended(route, path, last):
    scan = usage.StreamScan(usage.endpoint(route, "POST", path), None, 1 << 20)
    scan.feed(b'data: {"id":"x","choices":[{"delta":{"content":"[DONE] message_stop"}}]}\n\n')
    assert not scan.ended  # content quoting an end marker does not end the stream
    scan.feed(last)
    assert scan.ended


def test_a_gemini_stream_has_no_end_event():
    ep = usage.endpoint("gemini", "POST", "/v1beta/models/gemini-x:streamGenerateContent")
    scan = usage.StreamScan(ep, None, 1 << 20)
    scan.feed(b'data: {"candidates":[{"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":1}}\r\n\r\n')
    assert not scan.ended


def test_endpoints():
    assert usage.endpoint("anthropic", "POST", "/v1/messages/count_tokens") is None
    assert usage.endpoint("openai", "GET", "/v1/models") is None
    assert usage.endpoint("openai", "POST", "/v1/embeddings").operation == "embeddings"
    ep = usage.endpoint("gemini", "POST", "/v1beta/models/gemini-2.5-pro:streamGenerateContent")
    assert ep.model_in_path == "gemini-2.5-pro" and ep.stream_in_path


def test_tags_and_claude_code_attribution():
    assert parse_tags("team=search, project = rag ,bad,=x,9x=y,empty=") == {"team": "search", "project": "rag"}
    attrs = attribution({"user-agent": "claude-cli/2.0.1 (external, cli)", "x-claude-code-session-id": "s1"})
    assert attrs == {"claude_code.session_id": "s1", "client": "claude-code", "client.version": "2.0.1"}


def test_config_file_and_env(tmp_path):
    path = tmp_path / "proxy.toml"
    path.write_text('[upstreams]\nopenai = "http://127.0.0.1:9/base/"\n[proxy]\nconnect_timeout = 2.5\n')
    config = load_config(path, env={"TAILPIPE_PROXY_INJECT_USAGE": "1", "TAILPIPE_PROXY_LAMBDA": "1"})
    assert config.upstreams["openai"] == "http://127.0.0.1:9/base" and config.connect_timeout == 2.5
    assert config.inject_openai_stream_usage and config.integration == "lambda" and config.flush_before_end
    for text, message in [
        ('[upstreams]\nopenai = "ftp://x"\n', "http(s) URL"),
        ('[upstreams]\ncohere = "http://x"\n', "unknown upstream"),
        ("[proxy]\nconnect_timeout = -1\n", "positive number"),
        ("[proxy\n", "not valid TOML"),
    ]:
        path.write_text(text)
        with pytest.raises(ProxyConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_config(path, env={})
    with pytest.raises(ProxyConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", env={})


def test_gc_threshold_setting(tmp_path):
    path = tmp_path / "proxy.toml"
    assert load_config(env={}).gc_threshold == 10_000
    path.write_text("[proxy]\ngc_threshold = 0\n")
    assert load_config(path, env={}).gc_threshold == 0
    assert load_config(path, env={"TAILPIPE_PROXY_GC_THRESHOLD": " 50000 "}).gc_threshold == 50_000  # env wins
    for bad in ("-1", "1e4", "lots", "2000000"):
        with pytest.raises(ProxyConfigError, match=r"gc_threshold must be a whole number from 0"):
            load_config(env={"TAILPIPE_PROXY_GC_THRESHOLD": bad})
    for bad in ("2.5", "true"):
        path.write_text(f"[proxy]\ngc_threshold = {bad}\n")
        with pytest.raises(ProxyConfigError, match=r"gc_threshold must be a whole number from 0"):
            load_config(path, env={})


@pytest.mark.parametrize("step", [1, 7, 100, 4096, 10**7])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_events_are_counted_exactly_across_chunks_and_held_batches(monkeypatch, step, newline):
    """A stream without usage is estimated from its events: counted lazily, in held batches (here many,
    2 KB each), and exactly however the chunks cut the blank lines between events."""
    monkeypatch.setattr(usage, "HOLD_FOR_COUNT", 2048)
    n = 300
    data = b"".join(b'data: {"id":"c","choices":[{"delta":{"content":"w%d"}}]}' % i + newline * 2 for i in range(n))
    ep = usage.endpoint("openai", "POST", "/v1/chat/completions")
    scan = usage.StreamScan(ep, None, 1 << 30)
    for i in range(0, len(data), step):
        scan.feed(data[i : i + step])
    scan.close()
    assert scan.events == n
    outcome = usage.interpret_stream(ep, scan, complete=True)
    assert outcome.estimated and outcome.info.output_tokens == n
    assert usage.FLAG_ESTIMATED_FROM_CHUNKS in outcome.flags


_CLAUDE_CODE_BODY = json.dumps(
    {
        "max_tokens": 32000,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": 'use "model": "gpt-x" here ' * 40}]},
            {"role": "assistant", "content": [{"type": "tool_use", "input": {"model": "nested-1"}}]},
        ]
        * 100,
        "model": "claude-sonnet-4-5",
        "stream": True,
        "tools": [{"name": "t", "input_schema": {"properties": {"model": {"type": "string"}}}}],
        "metadata": {"model": "nested-2"},
    }
).encode()


@pytest.mark.parametrize("lazy", [True, False], ids=["simdjson", "orjson"])
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"model":"gpt-4o","stream":true}', ("gpt-4o", True)),
        (_CLAUDE_CODE_BODY, ("claude-sonnet-4-5", True)),  # nested "model" keys before and after it
        (b'{"agent_id":"ag-1","stream":false}', ("ag-1", False)),
        (b'{"model":{"a":1},"stream":"yes"}', (None, False)),  # a view into the parser is never kept
        (b'{"model":"gpt-4o"}', ("gpt-4o", False)),  # the parser still works after the case above
        (b'[{"model":"x"}]', (None, False)),
        (b"not json", (None, False)),
        (b'\xff{"model":"x"}', (None, False)),
        (b'{"model":"' + b"x" * 300 + b'"}', (None, False)),
        (b"", (None, False)),
    ],
)
def test_request_model_reads_only_the_top_level_fields(monkeypatch, lazy, body, expected):
    if lazy:
        monkeypatch.setattr(usage, "LAZY_MIN_BYTES", 0)  # every body through simdjson
    else:
        monkeypatch.setattr(usage, "simdjson", None)
    ep = usage.endpoint("openai", "POST", "/v1/chat/completions")
    assert usage.request_model(ep, body, None) == expected
    assert usage.request_model(ep, gzip.compress(body), "gzip") == expected


def test_a_body_past_the_kept_parser_size_gets_a_parser_of_its_own(monkeypatch):
    monkeypatch.setattr(usage, "PARSER_KEEP_BYTES", 1000)
    monkeypatch.setattr(usage, "LAZY_MIN_BYTES", 0)
    ep = usage.endpoint("anthropic", "POST", "/v1/messages")
    assert usage.request_model(ep, b'{"model":"small"}', None) == ("small", False)
    kept = usage._parsers.parser
    assert usage.request_model(ep, _CLAUDE_CODE_BODY, None) == ("claude-sonnet-4-5", True)
    assert usage._parsers.parser is kept  # the big body's buffers went with its own parser
