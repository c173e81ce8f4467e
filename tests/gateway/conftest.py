"""Fixtures for the gateway tests: a fixed carbon configuration, tenants with keys, a running gateway."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("opentelemetry.proto")

from tailpipe_ai.carbon import reload_config

# Fixed factors, so expected figures are computed by hand from the documented formula:
# energy_Wh = tokens x Wh_per_token x PSE (1.04) x TL (1.08) x PUE; carbon_g = energy_Wh / 1000 x grid.
PUE = 1.2
GRID = 300.0
PSE = 1.04
TL = 1.08
WH_PER_TOKEN = {"claude-sonnet-4": 0.00245, "acme-chat-1": 0.001}  # the seed's figure; our test model


def expected_wh(model: str, tokens: int) -> float:
    return tokens * WH_PER_TOKEN[model] * PSE * TL * PUE


def expected_g(model: str, tokens: int) -> float:
    return expected_wh(model, tokens) / 1000 * GRID


@pytest.fixture
def fixed_carbon(tmp_path, monkeypatch):
    """Flat method, PUE 1.2, grid 300 g/kWh, and a custom model `acme-chat-1` at 0.001 Wh/token."""
    config = tmp_path / "tailpipe.toml"
    config.write_text('method = "flat"\n\n[models.acme-chat-1]\nwh_per_token = 0.001\n')
    monkeypatch.setenv("TAILPIPE_CONFIG", str(config))
    monkeypatch.setenv("TAILPIPE_PUE", str(PUE))
    monkeypatch.setenv("TAILPIPE_GRID", str(GRID))
    monkeypatch.delenv("TAILPIPE_METHOD", raising=False)
    monkeypatch.delenv("TAILPIPE_REGION", raising=False)
    reload_config()
    from tailpipe_ai.gateway.spans import usable_region

    usable_region.cache_clear()
    yield
    monkeypatch.undo()
    reload_config()
    usable_region.cache_clear()


@pytest.fixture
def tenants(tmp_path):
    """A config file with tenants `acme` and `globex`; returns (config, {tenant: key})."""
    from tailpipe_ai.gateway.config import add_key, load_config

    path = tmp_path / "gateway.yaml"
    keys = {t: add_key(t, path)[0] for t in ("acme", "globex")}
    return load_config(path), keys


class Running:
    def __init__(self, gateway, thread, sink):
        self.gateway, self.thread, self.sink = gateway, thread, sink
        self.url = thread.url

    def post(self, path, body, *, key=None, content_type="application/x-protobuf", headers=None, gzipped=False):
        """(status, headers, body) of a POST; never raises on HTTP errors."""
        data = gzip.compress(body) if gzipped else body
        h = {"Content-Type": content_type, **(headers or {})}
        if gzipped:
            h["Content-Encoding"] = "gzip"
        if key is not None:
            h["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(self.url + path, data=data, headers=h, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def gateway(tenants, fixed_carbon):
    """A running gateway writing to a memory sink (tenants `acme` and `globex`)."""
    from tailpipe_ai.exporter.sink import MemorySink
    from tailpipe_ai.gateway.server import GatewayThread, build_gateway

    config, _ = tenants
    sink = MemorySink()
    gw = build_gateway(config, sink=sink)
    with GatewayThread(gw) as thread:
        yield Running(gw, thread, sink)


def lake_records(root: Path) -> list[dict]:
    out = []
    for path in sorted(root.rglob("*.gz")):
        if not path.name.startswith("."):
            out.extend(json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines() if line)
    return out
