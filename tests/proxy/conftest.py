"""Fixtures: one fake upstream serving all four providers, and the proxy in a thread in front of it."""

from __future__ import annotations

import pytest

from tailpipe_ai.exporter.sink import MemorySink
from tailpipe_ai.proxy.app import ProxyThread
from tailpipe_ai.proxy.config import ProxyConfig
from tests.fakes import anthropic as fake_anthropic
from tests.fakes import google_genai as fake_gemini
from tests.fakes import mistralai as fake_mistral
from tests.fakes import openai as fake_openai
from tests.fakes.server import FakeServer


class Upstream:
    """The fake providers and the base URL of each (what the SDKs use when going direct)."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        fake_anthropic.install(server)  # before OpenAI: its /v1/ prefix would catch /v1/messages
        fake_openai.install(server)
        self.gemini = fake_gemini.install(server, "/gemini")
        self.mistral = fake_mistral.install(server, "/mistral")
        self.url = server.url

    @property
    def requests(self):
        return self.server.requests

    def upstreams(self) -> dict[str, str]:
        return {"openai": self.url, "anthropic": self.url, "gemini": self.gemini, "mistral": self.mistral}


class Proxy:
    def __init__(self, thread: ProxyThread, sink: MemorySink) -> None:
        self.thread = thread
        self.url = thread.url
        self._sink = sink

    def route(self, name: str) -> str:
        return f"{self.url}/{name}"

    @property
    def records(self):
        assert self.thread.telemetry.flush(10)
        return list(self._sink.records)

    def clear(self) -> None:
        self.thread.telemetry.flush(10)
        self._sink.records.clear()


@pytest.fixture
def upstream():
    with FakeServer() as server:
        yield Upstream(server)


def start_proxy(upstream: Upstream, **settings) -> tuple[ProxyThread, MemorySink]:
    sink = MemorySink()
    config = ProxyConfig(**settings).with_upstreams(**upstream.upstreams())
    return ProxyThread(config, sink).start(), sink


@pytest.fixture
def proxy(upstream):
    thread, sink = start_proxy(upstream)
    try:
        yield Proxy(thread, sink)
    finally:
        thread.stop()
