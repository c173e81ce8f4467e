"""A process that runs only the proxy (the CLI, the Lambda handler) sets its garbage collector up for the
telemetry's batches; a proxy inside another program (`ProxyThread`) leaves the program's settings alone.
Each case runs in its own interpreter: the settings are process-wide."""

from __future__ import annotations

import gc
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from tailpipe_ai.exporter.sink import MemorySink
from tailpipe_ai.proxy.app import ProxyThread
from tailpipe_ai.proxy.config import ProxyConfig

SERVE = textwrap.dedent(
    """
    import gc, json, os, signal, sys, threading, time, urllib.request
    from tailpipe_ai.exporter.sink import MemorySink
    from tailpipe_ai.proxy import app
    from tailpipe_ai.proxy.config import load_config

    port = int(sys.argv[1])
    before = gc.get_threshold()

    def watch():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.05)
        print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True).start()
    app.serve(load_config(), port=port, sink=MemorySink())
    """
)

LAMBDA = textwrap.dedent(
    """
    import gc, json
    from tailpipe_ai.proxy import lambda_handler

    before = gc.get_threshold()
    lambda_handler.proxy()  # a cold start
    print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(script: str, threshold: str | None, tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TAILPIPE_PROXY_GC_THRESHOLD"}
    env["TAILPIPE_LAKE"] = str(tmp_path / "lake")
    if threshold is not None:
        env["TAILPIPE_PROXY_GC_THRESHOLD"] = threshold
    command = [sys.executable, "-c", script, str(_free_port())]
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("script", [SERVE, LAMBDA], ids=["cli", "lambda"])
def test_a_proxy_process_raises_the_young_threshold_and_freezes_startup_objects(script, tmp_path):
    state = _run(script, None, tmp_path)
    assert state["before"][0] == 700  # Python's default
    assert state["after"] == [10_000, *state["before"][1:]]  # only the young generation's threshold
    # The startup heap, price data included (~27,000 objects of genai-prices), is out of the collections.
    assert state["frozen"] > 50_000


@pytest.mark.parametrize("script", [SERVE, LAMBDA], ids=["cli", "lambda"])
def test_zero_leaves_the_collector_alone(script, tmp_path):
    state = _run(script, "0", tmp_path)
    assert state["after"] == state["before"] and state["frozen"] == 0


def test_an_embedded_proxy_changes_nothing():
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    with ProxyThread(ProxyConfig(), MemorySink()):
        assert gc.get_threshold() == before and gc.get_freeze_count() == frozen
