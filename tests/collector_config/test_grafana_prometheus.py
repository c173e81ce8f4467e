"""The Grafana dashboard's PromQL, run by a real Prometheus against our metrics after a known workload.

The workload goes through our instrumentation (the real Anthropic SDK against the loopback fake) into an
OTel MeterProvider whose PrometheusMetricReader is served on a free loopback port; /usr/bin/prometheus
(Debian) scrapes it every second. Phase A creates every series, phase B is the workload under test; each
panel query is evaluated at the scrape that saw phase B with Grafana's range variables set to exactly the
span between the last phase-A scrape and that scrape, so ``increase()`` needs no extrapolation and must
equal phase B's figures, computed here by hand from the documented formula.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

anthropic = pytest.importorskip("anthropic")
pytest.importorskip("opentelemetry.exporter.prometheus")

DASHBOARD = Path(__file__).resolve().parents[2] / "collector-config" / "grafana" / "tailpipe-carbon.json"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

# Fixed factors (TAILPIPE_* environment), flat method: Wh = tokens x Wh/token x 1.04 x 1.08 x PUE.
PUE, GRID = 1.2, 300.0
K = 1.04 * 1.08 * PUE
WH_PER_TOKEN = {"claude-sonnet-4": 0.00245, "acme-chat-1": 0.001}
IN, OUT = 1125, 40  # the fake's usage: 25 fresh + 1000 cache read + 100 cache write input tokens; 40 output
CALL_TOKENS = IN + OUT
# claude-sonnet-4 list prices per million tokens: $3 input, $0.30 cache read, $3.75 cache write, $15 output
SONNET_CALL_USD = (25 * 3 + 1000 * 0.30 + 100 * 3.75 + 40 * 15) / 1e6
PHASE_A = [("claude-sonnet-4", "search"), ("claude-sonnet-4", "ads"), ("acme-chat-1", "search")]
PHASE_B = [("claude-sonnet-4", "search")] * 2 + [("claude-sonnet-4", "ads")] + [("acme-chat-1", "search")] * 3


def wh(model, calls=1):
    return calls * CALL_TOKENS * WH_PER_TOKEN[model] * K


def g(model, calls=1):
    return wh(model, calls) / 1000 * GRID


def expected():
    """Panel title -> {label value(s): value} for phase B."""
    sonnet, acme = 3, 3
    return {
        "kgCO2e over time by model": {
            ("claude-sonnet-4",): g("claude-sonnet-4", sonnet) / 1000,
            ("acme-chat-1",): g("acme-chat-1", acme) / 1000,
        },
        "kWh over time by provider": {("anthropic",): (wh("claude-sonnet-4", sonnet) + wh("acme-chat-1", acme)) / 1000},
        "kgCO2e by team": {
            ("search",): (g("claude-sonnet-4", 2) + g("acme-chat-1", 3)) / 1000,
            ("ads",): g("claude-sonnet-4", 1) / 1000,
        },
        "kWh by model": {
            ("claude-sonnet-4",): wh("claude-sonnet-4", sonnet) / 1000,
            ("acme-chat-1",): wh("acme-chat-1", acme) / 1000,
        },
        "gCO2e per 1k tokens by model": {
            ("claude-sonnet-4",): 1000 * WH_PER_TOKEN["claude-sonnet-4"] * K * GRID / 1000,
            ("acme-chat-1",): 1000 * WH_PER_TOKEN["acme-chat-1"] * K * GRID / 1000,
        },
        "Tokens by model and type": {
            ("claude-sonnet-4", "input"): 3 * IN,
            ("claude-sonnet-4", "output"): 3 * OUT,
            ("acme-chat-1", "input"): 3 * IN,
            ("acme-chat-1", "output"): 3 * OUT,
        },
        "Requests by model": {("claude-sonnet-4",): 3, ("acme-chat-1",): 3},
        "Cost (USD) by model": {("claude-sonnet-4",): 3 * SONNET_CALL_USD},
    }


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base, path, **params):
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        doc = json.load(resp)
    assert doc["status"] == "success", doc
    return doc["data"]


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def prometheus(tmp_path):
    """Our metrics endpoint (a prometheus_client server on a free port) and Prometheus scraping it.

    Yields (Prometheus base url, the CollectorRegistry served). Prometheus gets a free port too; if another
    process takes that port first, it is started again on a new one (up to 3 times).
    """
    from prometheus_client import CollectorRegistry, start_http_server

    if not Path(PROMETHEUS).exists():
        pytest.skip("prometheus is not installed (Debian: apt-get install prometheus)")
    registry = CollectorRegistry()
    server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
    target = server.server_port
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        f"scrape_configs:\n  - job_name: tailpipe\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
    )
    proc = None
    try:
        for attempt in range(3):
            port = free_port()
            log_path = tmp_path / f"prometheus-{attempt}.log"
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    [
                        PROMETHEUS,
                        f"--config.file={tmp_path / 'prometheus.yml'}",
                        f"--storage.tsdb.path={tmp_path / f'tsdb-{attempt}'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            base = f"http://127.0.0.1:{port}"

            def ready(proc=proc, base=base):
                if proc.poll() is not None:
                    return "exited"
                try:
                    with urllib.request.urlopen(base + "/-/ready", timeout=1) as r:
                        return r.status == 200
                except OSError:
                    return False

            state = wait_for(ready, 30, "prometheus to be ready")
            if state is True:
                break
            if "address already in use" not in log_path.read_text():
                pytest.skip(f"prometheus could not run: {log_path.read_text()[-500:]}")
        else:
            pytest.skip("prometheus could not get a free port in 3 attempts")
        yield base, registry
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.shutdown()
        server.server_close()


def substitute(expr, range_ms):
    for var in ("$__rate_interval", "$__range", "$__interval"):
        expr = expr.replace(var, f"{range_ms}ms")
    for var in ("$provider", "$model", "$team"):
        expr = expr.replace(var, ".*")
    assert "$" not in expr, expr
    return expr


def test_dashboard_queries_on_real_prometheus(prometheus, tmp_path, monkeypatch):
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider

    from tailpipe_ai.carbon import reload_config
    from tailpipe_ai.exporter.sink import NullSink
    from tailpipe_ai.instrumentation._context import tags
    from tailpipe_ai.instrumentation._telemetry import Telemetry, flush
    from tailpipe_ai.instrumentation.anthropic import wrap_client
    from tests.fakes import anthropic as fake
    from tests.fakes.server import FakeServer

    base, registry = prometheus
    config = tmp_path / "tailpipe.toml"
    config.write_text('method = "flat"\n\n[models.acme-chat-1]\nwh_per_token = 0.001\n')
    monkeypatch.setenv("TAILPIPE_CONFIG", str(config))
    monkeypatch.setenv("TAILPIPE_PUE", str(PUE))
    monkeypatch.setenv("TAILPIPE_GRID", str(GRID))
    reload_config()
    reader = PrometheusMetricReader(registry=registry, disable_target_info=True)
    provider = MeterProvider(metric_readers=[reader])
    try:
        with FakeServer() as fake_server:
            fake.install(fake_server)
            telemetry = Telemetry(meter_provider=provider, sink=NullSink())
            client = wrap_client(
                anthropic.Anthropic(
                    base_url=fake_server.url,
                    api_key="test",
                    max_retries=0,
                    http_client=anthropic.DefaultHttpxClient(verify=False),
                ),
                telemetry,
            )

            def run(calls):
                for model, team in calls:
                    with tags(team=team):
                        client.messages.create(model=model, max_tokens=8, messages=[{"role": "user", "content": "hi"}])
                flush()

            def carbon_total():
                result = api(base, "/api/v1/query", query="sum(tailpipe_carbon_gCO2e_total)")["result"]
                return float(result[0]["value"][1]) if result else None

            def last_scrape():
                result = api(base, "/api/v1/query", query="max(timestamp(tailpipe_carbon_gCO2e_total))")["result"]
                return round(float(result[0]["value"][1]) * 1000)

            run(PHASE_A)
            total_a = sum(g(m) for m, _ in PHASE_A)
            wait_for(lambda: carbon_total() is not None and abs(carbon_total() - total_a) < 1e-9, what="phase A")
            t_a = last_scrape()
            run(PHASE_B)
            total_b = total_a + sum(g(m) for m, _ in PHASE_B)
            wait_for(lambda: abs((carbon_total() or 0) - total_b) < 1e-9, what="phase B")
            t_b = last_scrape()
    finally:
        provider.shutdown()
        monkeypatch.undo()
        reload_config()
    range_ms = t_b - t_a
    assert range_ms >= 1000

    dashboard = json.loads(DASHBOARD.read_text())
    want = expected()
    checked = set()
    for panel in dashboard["panels"]:
        for target_def in panel.get("targets", []):
            if panel["datasource"]["type"] != "prometheus":
                continue
            expr = substitute(target_def["expr"], range_ms)
            data = api(base, "/api/v1/query", query=expr, time=f"{t_b / 1000:.3f}")
            got = {}
            for row in data["result"]:
                labels = row["metric"]
                key = tuple(labels[k] for k in sorted(labels, key=_label_order))
                got[key] = float(row["value"][1])
            title = panel["title"]
            assert set(got) == set(want[title]), (title, got)
            for key, value in want[title].items():
                assert got[key] == pytest.approx(value, rel=1e-9), (title, key)
            checked.add(title)
    assert checked == set(want)


_ORDER = ["gen_ai_request_model", "gen_ai_provider_name", "tailpipe_attr_team", "gen_ai_token_type"]


def _label_order(name):
    return _ORDER.index(name)
