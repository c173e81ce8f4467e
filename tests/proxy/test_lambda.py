"""The buffered Lambda handler with realistic Function URL and API Gateway (HTTP API, payload 2.0) events."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import sys

import pytest

from tailpipe_ai.exporter.sink import MemorySink
from tailpipe_ai.proxy.app import ProxyThread
from tailpipe_ai.proxy.config import load_config
from tailpipe_ai.proxy.lambda_handler import handler
from tests.fakes import anthropic as fake_anthropic
from tests.fakes import openai as fake_openai

BODY = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def _event(path: str, body: bytes, *, b64: bool, stage: str = "$default", query: str = "", headers=None):
    """A payload-format-2.0 event as Function URLs and HTTP APIs send it (trimmed to what matters)."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "cookies": ["a=1"],
        "headers": {
            "content-type": "application/json",
            "x-api-key": "sk-ant-test",
            "anthropic-version": "2023-06-01",
            "host": "abc.lambda-url.eu-west-1.on.aws",
            "x-forwarded-proto": "https",
            **(headers or {}),
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc",
            "domainName": "abc.lambda-url.eu-west-1.on.aws",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "curl/8",
            },
            "requestId": "r-1",
            "stage": stage,
            "time": "23/Nov/2026:01:00:00 +0000",
            "timeEpoch": 1795395600000,
        },
        "body": base64.b64encode(body).decode() if b64 else body.decode(),
        "isBase64Encoded": b64,
    }


@pytest.fixture
def lambda_proxy(upstream):
    sink = MemorySink()
    env = {
        "TAILPIPE_PROXY_LAMBDA": "1",
        "TAILPIPE_PROXY_ANTHROPIC_URL": upstream.url,
        "TAILPIPE_PROXY_OPENAI_URL": upstream.url,
    }
    with ProxyThread(load_config(env=env), sink) as thread:
        yield thread, sink


def test_function_url_event(upstream, lambda_proxy):
    thread, sink = lambda_proxy
    event = _event("/anthropic/v1/messages", json.dumps(BODY).encode(), b64=True, query="beta=true")
    response = handler(event, None, target=thread)
    assert response["statusCode"] == 200 and not response["isBase64Encoded"]
    assert json.loads(response["body"])["usage"] == fake_anthropic.USAGE
    seen = upstream.requests[-1]
    assert seen.query == {"beta": ["true"]} and seen.headers["Cookie"] == "a=1"
    (record,) = sink.records  # written before the handler returned: no flush needed here
    assert record.integration == "lambda" and record.input_tokens == fake_anthropic.EXPECTED["input"]


def test_api_gateway_stage_and_compressed_answer(upstream, lambda_proxy):
    thread, sink = lambda_proxy
    upstream.server.compress = True
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    event = _event(
        "/prod/openai/v1/chat/completions",
        json.dumps(body).encode(),
        b64=False,
        stage="prod",
        headers={"accept-encoding": "gzip"},
    )
    response = handler(event, None, target=thread)
    assert response["statusCode"] == 200 and response["isBase64Encoded"]
    assert response["headers"]["content-encoding"] == "gzip"
    stream = gzip.decompress(base64.b64decode(response["body"]))
    assert stream.endswith(b"data: [DONE]\n\n")
    (record,) = sink.records
    assert record.streamed and record.output_tokens == fake_openai.CHAT_USAGE["completion_tokens"]


def test_bad_event_is_a_clear_error(lambda_proxy):
    thread, _ = lambda_proxy
    with pytest.raises(ValueError, match="neither rawPath"):
        handler({"foo": 1}, None, target=thread)


def test_cli_bad_config_exits_2(tmp_path):
    bad = tmp_path / "p.toml"
    bad.write_text('[upstreams]\nopenai = "nope"\n')
    result = subprocess.run(
        [sys.executable, "-m", "tailpipe_ai", "proxy", "--config", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: upstream 'openai' must be an http(s) URL")
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("stop_with", ["SIGINT", "SIGTERM"])  # Ctrl-C; containers and the Lambda adapter
def test_cli_serves_and_flushes_on_shutdown(upstream, tmp_path, stop_with):
    import os
    import signal
    import socket
    import time

    from .helpers import raw_request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "TAILPIPE_LAKE": str(tmp_path / "lake"), "TAILPIPE_PROXY_OPENAI_URL": upstream.url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tailpipe_ai", "proxy", "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                raw_request(f"http://127.0.0.1:{port}/healthz", None, method="GET")
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "the proxy did not start"
                time.sleep(0.1)
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
        assert raw_request(f"http://127.0.0.1:{port}/openai/v1/chat/completions", body)[0] == 200
    finally:
        proc.send_signal(getattr(signal, stop_with))
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "POST /openai/v1/chat/completions 200" in stderr  # the access line
    files = [p for p in (tmp_path / "lake").rglob("*.gz")]
    records = b"".join(gzip.decompress(p.read_bytes()) for p in files)
    assert records.count(b'"integration":"proxy"') == 1 and b'"input_tokens":1200' in records


def test_sam_template_wires_streaming_and_buffered_modes():
    from pathlib import Path

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)  # !Ref, !GetAtt, !Sub
    root = Path(__file__).resolve().parents[2] / "deploy" / "lambda"
    template = yaml.load((root / "template.yaml").read_text(), Loader=Loader)
    resources = template["Resources"]
    streaming = resources["StreamingProxy"]["Properties"]
    assert streaming["FunctionUrlConfig"]["InvokeMode"] == "RESPONSE_STREAM"
    assert streaming["Environment"]["Variables"]["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert streaming["Handler"] == "run.sh" and (root / "run.sh").stat().st_mode & 0o111
    assert "tailpipe_ai proxy" in (root / "run.sh").read_text()
    module, _, func = resources["BufferedProxy"]["Properties"]["Handler"].rpartition(".")
    import importlib

    assert callable(getattr(importlib.import_module(module), func))
