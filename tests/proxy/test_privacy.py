"""Privacy canary: prompts, responses, API keys, bearer tokens and cookies go through the proxy and
must not appear in records, logs or lake files."""

from __future__ import annotations

import contextlib
import gzip
import logging

import anthropic
import openai
from google import genai
from google.genai import types
from mistralai.client import Mistral

from tailpipe_ai.exporter.local_lake import LocalLakeSink
from tailpipe_ai.proxy.app import ProxyThread
from tailpipe_ai.proxy.config import ProxyConfig
from tests.fakes import google_genai as fake_gemini
from tests.fakes import mistralai as fake_mistral

PROMPT = "CANARY-proxy-prompt-91b2"
KEY = "sk-CANARY-proxy-key-44aa"
BEARER = "sk-ant-oat01-CANARY-proxy-bearer-7e21"
COOKIE = "session=CANARY-proxy-cookie-0c3d"
CANARIES = [
    PROMPT,
    KEY,
    BEARER,
    COOKIE,
    "CANARY-proxy-cookie",
    fake_gemini.RESPONSE_CANARY,
    fake_mistral.RESPONSE_CANARY,
]


def test_nothing_secret_leaves(upstream, tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    sink = LocalLakeSink(tmp_path / "lake")
    config = ProxyConfig().with_upstreams(**upstream.upstreams())
    with ProxyThread(config, sink) as proxy:
        headers = {"Cookie": COOKIE, "x-tailpipe-tags": "team=t"}
        oa = openai.OpenAI(api_key=KEY, base_url=proxy.url + "/openai/v1", default_headers=headers, max_retries=0)
        msgs = [{"role": "user", "content": PROMPT}]
        oa.chat.completions.create(model="gpt-4o", messages=msgs)
        list(oa.chat.completions.create(model="gpt-4o", messages=msgs, stream=True))
        list(oa.responses.create(model="gpt-4o", input=PROMPT, stream=True))
        with contextlib.suppress(openai.BadRequestError):
            oa.chat.completions.create(model="fake-error-400", messages=msgs)
        an = anthropic.Anthropic(
            auth_token=BEARER, base_url=proxy.url + "/anthropic", default_headers=headers, max_retries=0
        )
        an.messages.create(model="claude-sonnet-4-5", max_tokens=8, messages=msgs)
        with an.messages.stream(model="claude-sonnet-4-5", max_tokens=8, messages=msgs) as s:
            s.get_final_message()
        gm = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=proxy.url + "/gemini", headers=headers))
        gm.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
        list(gm.models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT))
        with contextlib.suppress(genai.errors.APIError):
            gm.models.generate_content(model="fake-error-400", contents=PROMPT)  # the error quotes a canary
        ms = Mistral(api_key=KEY, server_url=proxy.url + "/mistral")
        ms.chat.complete(model="mistral-small-latest", messages=msgs)
        list(ms.chat.stream(model="mistral-small-latest", messages=msgs))
        assert proxy.telemetry.flush(10)
    sink.close()
    # the proxy's side: our loggers and the server/client libraries it runs on (the SDKs' own debug
    # logs in the same process show their requests, which is not the proxy's doing)
    ours = [r for r in caplog.records if r.name.startswith(("tailpipe", "aiohttp", "asyncio"))]
    assert any(r.name == "tailpipe.proxy.access" for r in ours)
    blobs = [f"{r.getMessage()} {r.args}".encode() for r in ours]
    blobs += [x.encode() for x in capfd.readouterr()]
    files = [p for p in (tmp_path / "lake").rglob("*") if p.is_file()]
    assert files, "the lake got no records"
    count = 0
    for path in files:
        data = path.read_bytes()
        data = gzip.decompress(data) if path.name.endswith(".gz") else data
        count += data.count(b'"integration":"proxy"')
        blobs.append(data)
    assert count == 11  # 4 OpenAI + 2 Anthropic + 3 Gemini + 2 Mistral calls
    for blob in blobs:
        for canary in CANARIES:
            assert canary.encode() not in blob, canary
