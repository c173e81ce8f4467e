#!/usr/bin/env python
"""Instructions added per OpenAI call, counted by valgrind: a deterministic cross-check of overhead.py.

    python benchmarks/instructions.py                 # 20 streams and 200 calls per kind
    python benchmarks/instructions.py --streams 40 --calls 0 --json

`overhead.py` times calls on a shared VM, where one call's time varies by milliseconds and the median of
a thousand pairs still moves by a tenth of the figure between runs. Instruction counts do not vary: each
kind (plain SDK, ours, the official instrumentation) runs in its own process under
`valgrind --tool=cachegrind`, once doing only the set-up and warm-up and once doing N more calls; the
difference divided by N is the instructions per call, and minus the plain SDK's, what the
instrumentation adds. The same clients, mocked transport and requests as overhead.py are used (imported
from it). Our background emission (span, metrics, record on the telemetry thread) is held back and not
counted: only the caller's path is, as in overhead.py; the official instrumentation does all its work on
the caller's path.

Instructions are not time: cache misses are not counted, and the per-call CPU time of overhead.py stays
the figure the targets are judged on. Needs `valgrind` on PATH; a run takes a few minutes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
KINDS = ("plain", "ours", "official")
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def child(kind: str, calls: int, what: str) -> None:
    """Set up every kind (so each process does the same work before the counted calls), warm up, then
    make `calls` calls with one kind."""
    import gc
    import tempfile

    sys.path.insert(0, str(HERE))
    import overhead as ov
    from openai.resources.chat.completions import Completions

    from tailpipe_ai.instrumentation import _telemetry

    held: list = []
    _telemetry._WORKER.submit = held.append  # our emission is off the caller's path: not counted
    handler = ov.make_handler(100)
    otel = ov.make_otel()
    original = Completions.__dict__["create"]
    with tempfile.TemporaryDirectory() as tmp:
        sink = ov.JsonlSink(Path(tmp) / "records")
        telemetry = ov.Telemetry(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider, sink=sink)
        official, _, missing = ov.instrument_official(otel, original)
        if official is None:
            raise SystemExit(missing)
        clients = {
            "plain": ov.bypass_class_patch(ov.make_client(handler), original),
            "ours": ov.wrap_client(ov.bypass_class_patch(ov.make_client(handler), original), telemetry),
            "official": ov.make_client(handler),
        }
        call = ov.call_stream if what == "stream" else ov.call_once
        for client in clients.values():
            for _ in range(3):
                call(client)
        held.clear()
        gc.collect()
        gc.disable()
        client = clients[kind]
        for _ in range(calls):
            call(client)
        held.clear()
        sink.close()


def count(kind: str, calls: int, what: str) -> int:
    """Instructions of one child process under cachegrind."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    cmd = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        kind,
        str(calls),
        what,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    found = _REFS.search(out.stderr)
    if out.returncode != 0 or found is None:
        raise RuntimeError(f"{kind} x{calls} {what} failed (exit {out.returncode}): {out.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def measure(what: str, calls: int, workers: int) -> dict[str, float]:
    """Instructions per call of each kind, and added over plain."""
    jobs = [(kind, n) for kind in KINDS for n in (0, calls)]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = {job: pool.submit(count, job[0], job[1], what) for job in jobs}
        totals = {job: f.result() for job, f in futures.items()}
    per_call = {kind: (totals[(kind, calls)] - totals[(kind, 0)]) / calls for kind in KINDS}
    result = {f"{kind}_per_call": per_call[kind] for kind in KINDS}
    for kind in ("ours", "official"):
        result[f"{kind}_added"] = per_call[kind] - per_call["plain"]
    result["ratio"] = result["ours_added"] / result["official_added"]
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--streams", type=int, default=20, help="counted streamed calls per kind (default 20)")
    ap.add_argument("--calls", type=int, default=200, help="counted non-streamed calls per kind (default 200)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="valgrind processes at once")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--child", nargs=3, metavar=("KIND", "N", "WHAT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    results = {}
    for what, n in (("call", args.calls), ("stream", args.streams)):
        if n > 0:
            print(f"counting {what}: 3 kinds x (0 and {n} calls) under cachegrind ...", file=sys.stderr)
            results[what] = measure(what, n, args.workers)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for what, r in results.items():
        label = "non-streamed call" if what == "call" else "stream of 100 chunks"
        print(f"{label}: plain SDK {r['plain_per_call']:,.0f} instructions per call")
        print(f"  ours adds     {r['ours_added']:>12,.0f}")
        print(f"  official adds {r['official_added']:>12,.0f}")
        print(f"  ours / official = {r['ratio']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
