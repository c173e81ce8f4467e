"""A Claude-Code-shaped session: OAuth bearer (Pro/Max) plus its beta header, session headers, a gzipped
body, the `?beta=true` query, count_tokens and event logging, all through the proxy."""

from __future__ import annotations

import gzip
import json
import logging

import anthropic

from tests.fakes import anthropic as fake_anthropic

from .helpers import raw_request

OAUTH_TOKEN = "sk-ant-oat01-CANARY-oauth-token-5d1e"
BETA = "oauth-2025-04-20,claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"
SESSION = "7c0c5a2e-1b7e-4a55-9d3c-0c2f8d9e1a11"
HEADERS = {
    "anthropic-beta": BETA,
    "x-app": "cli",
    "User-Agent": "claude-cli/2.1.190 (external, cli)",
    "x-claude-code-session-id": SESSION,
    "x-claude-code-agent-id": "agent-main",
    "x-tailpipe-tags": "team=platform",
}


def test_claude_code_session(upstream, proxy, caplog):
    caplog.set_level(logging.DEBUG)
    client = anthropic.Anthropic(
        auth_token=OAUTH_TOKEN, base_url=proxy.route("anthropic"), default_headers=HEADERS, max_retries=0
    )
    kwargs = dict(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "fix the bug"}])
    with client.messages.stream(**kwargs, extra_query={"beta": "true"}) as stream:
        final = stream.get_final_message()
    assert final.usage.cache_read_input_tokens == fake_anthropic.USAGE["cache_read_input_tokens"]
    seen = upstream.requests[-1]
    sent = {k.lower(): v for k, v in seen.headers.items()}
    assert sent["authorization"] == f"Bearer {OAUTH_TOKEN}"  # the subscription credential, untouched
    assert sent["anthropic-beta"] == BETA and sent["x-app"] == "cli"
    assert sent["x-claude-code-session-id"] == SESSION and seen.query == {"beta": ["true"]}
    assert "x-tailpipe-tags" not in sent

    # the side requests Claude Code makes: a gzipped warm-up body, count_tokens, event logging
    gz = gzip.compress(json.dumps({**kwargs, "model": "claude-haiku-4-5"}).encode())
    auth = {"Authorization": f"Bearer {OAUTH_TOKEN}", "anthropic-beta": BETA, "Content-Encoding": "gzip"}
    assert raw_request(proxy.route("anthropic") + "/v1/messages?beta=true", gz, auth)[0] == 200
    assert upstream.requests[-1].raw == gz
    assert raw_request(proxy.route("anthropic") + "/v1/messages/count_tokens?beta=true", kwargs)[0] == 200
    raw_request(proxy.route("anthropic") + "/api/event_logging/batch", {"events": []})

    main, warmup = proxy.records
    assert main.attributes == {
        "team": "platform",
        "claude_code.session_id": SESSION,
        "claude_code.agent_id": "agent-main",
        "client": "claude-code",
        "client.version": "2.1.190",
    }
    assert main.input_tokens == fake_anthropic.EXPECTED["input"] and main.streamed
    assert warmup.request_model == "claude-haiku-4-5"
    leaked = [r.encode() for r in proxy.records] + [caplog.text.encode()]
    assert not any(OAUTH_TOKEN.encode() in blob for blob in leaked)
