#!/usr/bin/env python
"""Instructions per proxied request, counted by valgrind: a deterministic cross-check of proxy.py.

    python benchmarks/proxy_instructions.py                  # 200 then 1,200 requests, both kinds
    python benchmarks/proxy_instructions.py --requests 500 --json

`proxy.py` times the proxies on a shared VM, where the floor's own throughput moves by a third between
phases. Instructions do not move: the proxy under test (the floor from proxy.py, or `tailpipe proxy` with
usage parsing and records to a temporary lake) runs under `valgrind --tool=cachegrind` while a load
generator sends it a fixed number of requests through 10 concurrent clients; it is then stopped (SIGINT,
so telemetry is flushed and counted). Two runs per proxy, with `--warmup` and `--warmup + --requests`
requests, and the difference divided by `--requests` is the instructions per request: start-up, imports
and shutdown cancel out. Everything the proxy process does is counted, its telemetry and lake threads
included. The upstream (proxy.py's fake) and the load generator run outside valgrind.

Instructions are not time (cache misses are not counted), but with the proxy pinned to one core in
proxy.py, throughput is set by the CPU work per request, so floor/tailpipe instructions is the ratio
proxy.py's max-throughput ratio tends to. Needs `valgrind` on PATH; a run takes about two minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import proxy as bench  # noqa: E402  (the upstream, the floor and the load generator of proxy.py)

_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")
CLIENTS = 10


def request_body(stream: bool) -> bytes:
    return json.dumps(
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "hello " * 50}],
            "stream": stream,
            **({"stream_options": {"include_usage": True}} if stream else {}),
        }
    ).encode()


async def send(url: str, body: bytes, stream: bool, n: int) -> int:
    import aiohttp

    out: list = []
    left = [n]

    async def client(session):
        while left[0] > 0:
            left[0] -= 1
            await bench.one(session, url, body, stream, out)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(client(session) for _ in range(CLIENTS)))
    return sum(1 for o in out if o[0])


def count(kind: str, stream: bool, n: int, upstream: str, tmp: Path) -> int:
    """Instructions of one proxy process that served `n` requests."""
    port = bench.free_port()
    if kind == "floor":
        cmd, path, env = [sys.executable, str(tmp / "floor.py"), str(port), upstream], "/v1/chat/completions", None
    else:
        cmd = [sys.executable, "-m", "tailpipe_ai", "proxy", "--port", str(port), "--quiet"]
        path = "/openai/v1/chat/completions"
        env = {
            **os.environ,
            "TAILPIPE_PROXY_OPENAI_URL": upstream,
            "TAILPIPE_LAKE": str(tmp / f"lake-{port}"),
            "TAILPIPE_PROXY_ACCESS_LOG": "0",
            "PYTHONPATH": str(bench.ROOT),
        }
    proc = subprocess.Popen(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", *cmd],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        bench.wait_port(port, proc, timeout=600)
        ok = asyncio.run(send(f"http://127.0.0.1:{port}{path}", request_body(stream), stream, n))
        if ok != n:
            raise RuntimeError(f"{kind}: {n - ok} of {n} requests failed")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=600)
    found = _REFS.findall(err)
    if not found:
        raise RuntimeError(f"{kind}: no instruction count in valgrind's output:\n{err[-2000:]}")
    return int(found[0].replace(",", ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=1000, help="counted requests per run (default 1,000)")
    ap.add_argument("--warmup", type=int, default=200, help="requests of the baseline run (default 200)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="tailpipe-proxy-ir-"))
    (tmp / "upstream.py").write_text(bench.UPSTREAM)
    (tmp / "floor.py").write_text(bench.FLOOR)
    up_port = bench.free_port()
    upstream_proc = bench.start([sys.executable, str(tmp / "upstream.py"), str(up_port)], 1)
    results: dict[str, dict[str, float]] = {}
    try:
        bench.wait_port(up_port, upstream_proc)
        upstream = f"http://127.0.0.1:{up_port}"
        for mode in ("json", "stream"):
            row = results[mode] = {}
            for kind in ("floor", "tailpipe"):
                base = count(kind, mode == "stream", args.warmup, upstream, tmp)
                more = count(kind, mode == "stream", args.warmup + args.requests, upstream, tmp)
                row[kind] = (more - base) / args.requests
            row["ratio"] = row["floor"] / row["tailpipe"]
    finally:
        bench.stop(upstream_proc)
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"instructions per request ({args.requests} counted, {CLIENTS} concurrent clients)")
    print(f"{'':8s} {'floor':>12s} {'tailpipe':>12s} {'added':>10s}  floor/tailpipe")
    for mode, row in results.items():
        added = row["tailpipe"] - row["floor"]
        print(f"{mode:8s} {row['floor']:12,.0f} {row['tailpipe']:12,.0f} {added:10,.0f}  x{row['ratio']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
