"""Proxy overhead on loopback: direct vs a minimal aiohttp pass-through vs tailpipe's proxy vs LiteLLM.

    python benchmarks/proxy.py [--seconds 3] [--litellm /tmp/litellm-venv/bin/litellm] [--skip-litellm]

A fast fake OpenAI upstream (raw asyncio; a chat completion JSON, or an SSE stream of 20 chunks plus the
usage chunk) runs pinned to core 1 with the load generator; the proxy under test runs pinned to core 0
(`taskset`). For each target, non-streamed and streamed: open loop at 20, 100 and 300 requests/s, then a
closed loop of 50 clients; then `--rounds` more closed-loop rounds alternating the floor and tailpipe,
whose per-round throughput ratios give the median ratio (drift of the box cancels). Reported: added
latency p50/p99 (target minus direct, same phase), time to first byte delta, CPU ms per request of the
proxy process (from /proc), maximum requests/s.

`floor` is what a Python proxy costs at least: one aiohttp ClientSession, bytes forwarded, no parsing.
`tailpipe` runs with usage parsing and telemetry on (records to a temporary lake, access log off).
Ratios are against the floor measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from tailpipe_ai.proxy.config import DEFAULT_GC_THRESHOLD

ROOT = Path(__file__).resolve().parent.parent
RATES = (20, 100, 300)
CLIENTS = 50
CHUNKS = 20

UPSTREAM = textwrap.dedent(
    r"""
    import asyncio, json, sys
    usage = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
             "prompt_tokens_details": {"cached_tokens": 1024}, "completion_tokens_details": {"reasoning_tokens": 128}}
    base = {"id": "chatcmpl-b", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06"}
    body = json.dumps({**base, "choices": [{"index": 0, "message": {"role": "assistant", "content": "x" * 400},
                                            "finish_reason": "stop"}], "usage": usage}).encode()
    JSON = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    def chunk(d):
        return b"%x\r\n%s\r\n" % (len(d), d)
    events = [b"data: " + json.dumps({**base, "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"content": "word%d " % i}, "finish_reason": None}], "usage": None}).encode() + b"\n\n"
        for i in range(%(chunks)d)]
    events.append(b"data: " + json.dumps({**base, "object": "chat.completion.chunk", "choices": [],
                                          "usage": usage}).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    SSE = [chunk(e) for e in events] + [b"0\r\n\r\n"]

    class P(asyncio.Protocol):
        def connection_made(self, t):
            self.t, self.buf = t, b""
        def data_received(self, data):
            self.buf += data
            while True:
                head_end = self.buf.find(b"\r\n\r\n")
                if head_end < 0:
                    return
                head = self.buf[:head_end].lower()
                n = 0
                i = head.find(b"content-length:")
                if i >= 0:
                    n = int(head[i + 15:head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None])
                if len(self.buf) < head_end + 4 + n:
                    return
                req = self.buf[head_end + 4:head_end + 4 + n]
                self.buf = self.buf[head_end + 4 + n:]
                if b'"stream":true' in req or b'"stream": true' in req:
                    self.t.write(SSE_HEAD)
                    for c in SSE:
                        self.t.write(c)
                else:
                    self.t.write(JSON)

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(P, "127.0.0.1", int(sys.argv[1]), backlog=4096)
        await server.serve_forever()
    asyncio.run(main())
    """
).replace("%(chunks)d", str(CHUNKS))

FLOOR = textwrap.dedent(
    r"""
    import gc, sys, aiohttp
    from aiohttp import web
    UPSTREAM = sys.argv[2]
    GC_THRESHOLD = int(sys.argv[3]) if len(sys.argv) > 3 else 0  # --floor-gc: tailpipe's settle_process
    DROP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}
    async def start(app):
        if GC_THRESHOLD:
            gc.collect(); gc.freeze(); gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
        app["s"] = aiohttp.ClientSession(auto_decompress=False, connector=aiohttp.TCPConnector(limit=0),
                                         timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
                                         skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"))
    async def handle(request):
        body = await request.read()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in DROP]
        async with request.app["s"].request(request.method, UPSTREAM + request.raw_path, headers=headers,
                                            data=body or None, allow_redirects=False) as up:
            out = [(k, v) for k, v in up.headers.items() if k.lower() not in DROP]
            if up.content_length is not None and not up.headers.get("Content-Type", "").startswith("text/event-stream"):
                return web.Response(status=up.status, headers=out, body=await up.read())
            resp = web.StreamResponse(status=up.status, headers=out)
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp
    app = web.Application(client_max_size=1 << 28)
    app.on_startup.append(start)
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None,
                handler_cancellation=True, auto_decompress=False)
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listening on {port} after {timeout}s")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and all its descendants (LiteLLM/uvicorn may fork), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                todo.extend(int(c) for c in children)
        except (OSError, IndexError, ValueError):
            continue
    return total


# ------------------------------------------------------------------------------------------- load generator


async def one(session, url, body, stream, out):
    t0 = time.perf_counter()
    try:
        async with session.post(
            url, data=body, headers={"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
        ) as resp:
            first = None
            async for _ in resp.content.iter_any():
                if first is None:
                    first = time.perf_counter()
            ok = resp.status == 200
        t1 = time.perf_counter()
        out.append((ok, (t1 - t0) * 1000, ((first or t1) - t0) * 1000))
    except Exception:
        out.append((False, None, None))


async def open_loop(url, body, stream, rate, seconds):
    import aiohttp

    out: list = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        tasks = []
        start = time.perf_counter()
        n = int(rate * seconds)
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(session, url, body, stream, out)))
        _, pending = await asyncio.wait(tasks, timeout=15)
        for t in pending:
            t.cancel()
            out.append((False, None, None))
    return out


async def closed_loop(url, body, stream, clients, seconds):
    import aiohttp

    out: list = []
    stop = time.perf_counter() + seconds

    async def worker(session):
        while time.perf_counter() < stop:
            await one(session, url, body, stream, out)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(worker(session) for _ in range(clients))), seconds + 60)
        elapsed = time.perf_counter() - t0
    return out, elapsed


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def measure(name, url, pid, stream, seconds, model="gpt-4o"):
    body = json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": "hello " * 50}],
            "stream": stream,
            **({"stream_options": {"include_usage": True}} if stream else {}),
        }
    ).encode()
    asyncio.run(open_loop(url, body, stream, 20, 1))  # warm up connections and code paths
    rows = {}
    for rate in RATES:
        cpu0 = cpu_seconds(pid) if pid else 0.0
        out = asyncio.run(open_loop(url, body, stream, rate, seconds))
        cpu = (cpu_seconds(pid) - cpu0) if pid else 0.0
        ok = [o for o in out if o[0]]
        rows[f"open{rate}"] = {
            "ok": len(ok),
            "n": len(out),
            "p50": pct([o[1] for o in ok], 0.5),
            "p99": pct([o[1] for o in ok], 0.99),
            "ttfb50": pct([o[2] for o in ok], 0.5),
            "cpu_ms": 1000 * cpu / max(1, len(ok)),
        }
    cpu0 = cpu_seconds(pid) if pid else 0.0
    out, elapsed = asyncio.run(closed_loop(url, body, stream, CLIENTS, seconds))
    cpu = (cpu_seconds(pid) - cpu0) if pid else 0.0
    ok = [o for o in out if o[0]]
    rows["closed"] = {
        "ok": len(ok),
        "n": len(out),
        "rps": len(ok) / elapsed,
        "p50": pct([o[1] for o in ok], 0.5),
        "cpu_ms": 1000 * cpu / max(1, len(ok)),
    }
    print(
        f"  {name:9s} {'stream' if stream else 'json':6s} "
        + "  ".join(
            f"{k}: p50 {v['p50']:.2f} p99 {v.get('p99', float('nan')):.2f} ok {v['ok']}/{v['n']}"
            for k, v in rows.items()
        )
        + f"  max {rows['closed']['rps']:.0f} req/s",
        flush=True,
    )
    return rows


def alternating_rounds(paired: dict, stream: bool, seconds: float, rounds: int) -> dict:
    """Closed-loop rounds alternating floor and tailpipe (the order flips every round), so that the box's
    drift, which moved the floor's own speed by a third between phases, hits both sides of each ratio."""
    body = json.dumps(
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "hello " * 50}],
            "stream": stream,
            **({"stream_options": {"include_usage": True}} if stream else {}),
        }
    ).encode()
    out: dict = {"floor": [], "tailpipe": [], "ratios": []}
    for r in range(rounds):
        order = ("floor", "tailpipe") if r % 2 == 0 else ("tailpipe", "floor")
        for name in order:
            url, proc = paired[name]
            cpu0 = cpu_seconds(proc.pid)
            done, elapsed = asyncio.run(closed_loop(url, body, stream, CLIENTS, seconds))
            ok = sum(1 for o in done if o[0])
            cpu = cpu_seconds(proc.pid) - cpu0
            out[name].append({"rps": ok / elapsed, "cpu_ms": 1000 * cpu / max(1, ok)})
        out["ratios"].append(out["tailpipe"][-1]["rps"] / out["floor"][-1]["rps"])
    print(
        f"  rounds    {'stream' if stream else 'json':6s} tailpipe/floor max req/s per round: "
        + ", ".join(f"x{x:.2f}" for x in out["ratios"]),
        flush=True,
    )
    return out


def start(cmd, cpu, env=None):
    return subprocess.Popen(
        ["taskset", "-c", str(cpu), *cmd],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(20)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each load phase")
    parser.add_argument("--litellm", default="/tmp/litellm-venv/bin/litellm", help="LiteLLM proxy executable")
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--json", help="write all figures to this file")
    parser.add_argument(
        "--floor-gc",
        action="store_true",
        help="give the floor the garbage-collector settings `tailpipe proxy` uses (frozen startup heap, "
        "young threshold 10,000), to see what they are worth to a proxy that batches nothing",
    )
    parser.add_argument(
        "--rounds", type=int, default=4, help="alternating floor/tailpipe closed-loop rounds for the throughput ratio"
    )
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})  # the load generator shares core 1 with the upstream
    tmp = Path(tempfile.mkdtemp(prefix="tailpipe-bench-"))
    procs = []
    try:
        up_port = free_port()
        (tmp / "upstream.py").write_text(UPSTREAM)
        (tmp / "floor.py").write_text(FLOOR)
        procs.append(start([sys.executable, str(tmp / "upstream.py"), str(up_port)], 1))
        wait_port(up_port, procs[-1])
        upstream = f"http://127.0.0.1:{up_port}"
        targets = [("direct", f"{upstream}/v1/chat/completions", None, None)]

        port = free_port()
        floor_args = [str(DEFAULT_GC_THRESHOLD)] if args.floor_gc else []
        floor = start([sys.executable, str(tmp / "floor.py"), str(port), upstream, *floor_args], 0)
        procs.append(floor)
        targets.append(("floor", f"http://127.0.0.1:{port}/v1/chat/completions", floor, port))

        port = free_port()
        env = {
            **os.environ,
            "TAILPIPE_PROXY_OPENAI_URL": upstream,
            "TAILPIPE_LAKE": str(tmp / "lake"),
            "TAILPIPE_PROXY_ACCESS_LOG": "0",
            "PYTHONPATH": str(ROOT),
        }
        ours = start([sys.executable, "-m", "tailpipe_ai", "proxy", "--port", str(port), "--quiet"], 0, env)
        procs.append(ours)
        targets.append(("tailpipe", f"http://127.0.0.1:{port}/openai/v1/chat/completions", ours, port))

        litellm_note = None
        if not args.skip_litellm and shutil.which(args.litellm):
            port = free_port()
            cfg = tmp / "litellm.yaml"
            cfg.write_text(
                json.dumps(
                    {
                        "model_list": [
                            {
                                "model_name": "gpt-4o",
                                "litellm_params": {
                                    "model": "openai/gpt-4o",
                                    "api_base": upstream + "/v1",
                                    "api_key": "sk-bench",
                                },
                            }
                        ]
                    }
                )
            )
            lenv = {
                **os.environ,
                "LITELLM_LOG": "ERROR",
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "NO_DOCS": "True",
                "DISABLE_SCHEMA_UPDATE": "True",
                "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
            }
            lite = start([args.litellm, "--config", str(cfg), "--port", str(port), "--num_workers", "1"], 0, lenv)
            procs.append(lite)
            targets.append(("litellm", f"http://127.0.0.1:{port}/v1/chat/completions", lite, port))
        else:
            litellm_note = "LiteLLM not run (--skip-litellm or executable missing)"

        results: dict = {}
        for name, url, proc, p in targets:
            if proc is not None:
                try:
                    wait_port(p, proc, timeout=180)
                except RuntimeError as exc:
                    print(f"{name}: did not start ({exc})")
                    continue
            for stream in (False, True):
                results[f"{name}/{'stream' if stream else 'json'}"] = measure(
                    name, url, proc.pid if proc else None, stream, args.seconds
                )
        paired = {name: (url, proc) for name, url, proc, _ in targets if name in ("floor", "tailpipe")}
        if len(paired) == 2 and args.rounds > 0:
            for stream in (False, True):
                results[f"rounds/{'stream' if stream else 'json'}"] = alternating_rounds(
                    paired, stream, args.seconds, args.rounds
                )
        report(results, litellm_note)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


MIN_ADDED_MS = 0.05  # below this the floor's added latency is jitter, and a ratio to it means nothing


def report(results: dict, note: str | None) -> None:
    print("\nadded latency vs direct (ms), CPU ms/request of the proxy, max req/s (closed loop, 50 clients)")
    for kind in ("json", "stream"):
        direct = results.get(f"direct/{kind}")
        floor = results.get(f"floor/{kind}")
        if not direct:
            continue
        print(f"\n[{kind}]  target      " + "  ".join(f"{r:>4}/s p50  p99  ttfb" for r in RATES) + "   cpu ms  max/s")
        for name in ("floor", "tailpipe", "litellm"):
            row = results.get(f"{name}/{kind}")
            if not row:
                continue
            cells = []
            for rate in RATES:
                r, d = row[f"open{rate}"], direct[f"open{rate}"]
                cells.append(f"{r['p50'] - d['p50']:6.2f} {r['p99'] - d['p99']:6.2f} {r['ttfb50'] - d['ttfb50']:5.2f}")
            cpu = statistics.median(row[f"open{r}"]["cpu_ms"] for r in RATES)
            print(f"          {name:10s}  " + "  ".join(cells) + f"   {cpu:6.2f}  {row['closed']['rps']:6.0f}")
        ours = results.get(f"tailpipe/{kind}")
        if floor and ours:

            def added(row, rate, key, direct=direct):
                return row[f"open{rate}"][key] - direct[f"open{rate}"][key]

            def ratio(rate, key, ours=ours, floor=floor):
                base = added(floor, rate, key)
                if base < MIN_ADDED_MS:  # the floor added nothing measurable over direct: no ratio to show
                    return "n/a"
                return f"x{added(ours, rate, key) / base:.2f}"

            for rate in RATES:
                print(
                    f"  tailpipe/floor at {rate}/s: added p50 {ratio(rate, 'p50')}, p99 {ratio(rate, 'p99')}, "
                    f"ttfb {ratio(rate, 'ttfb50')}"
                )
            print(f"  tailpipe/floor max throughput: x{ours['closed']['rps'] / floor['closed']['rps']:.2f}")
            rounds = results.get(f"rounds/{kind}")
            if rounds:
                ratios = rounds["ratios"]
                print(
                    f"  tailpipe/floor max throughput, {len(ratios)} alternating rounds: median "
                    f"x{statistics.median(ratios):.2f} (" + ", ".join(f"x{x:.2f}" for x in ratios) + ")"
                )
            lite = results.get(f"litellm/{kind}")
            if lite:
                ratio = ours["closed"]["rps"] / max(1e-9, lite["closed"]["rps"])
                print(f"  tailpipe/litellm max throughput: x{ratio:.1f}")
    if note:
        print("\n" + note)


if __name__ == "__main__":
    main()
