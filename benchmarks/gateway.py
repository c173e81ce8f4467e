#!/usr/bin/env python
"""Spans per second the OTLP gateway ingests on one core, in batches of 512 (target >= 20,000 spans/s).

    python benchmarks/gateway.py                # text report
    python benchmarks/gateway.py --json --batches 200

What is measured (see benchmarks/README.md, "## gateway"), all in this process on one thread:

1. baseline: protobuf decode alone (ExportTraceServiceRequest.FromString) of a gzip-free 512-span batch;
2. ingest: decode + filter + span -> call + estimate + record build + sink write, the work
   ``Gateway._handle`` does after reading the body (no HTTP), into a sink that keeps nothing;
3. ingest + gzip: the same with the body gzip-decompressed first (collectors gzip by default);
4. ingest + lake: as 2, plus encoding and gzip-writing every record into a LocalLakeSink in a temp folder
   (its writer thread shares the GIL, so this is the one-core cost including the lake);
5. HTTP: batches POSTed over loopback to a running gateway (urllib client in another thread: client,
   server and ingest share the one GIL, so this is a lower bound).

Batches mix 4 models, 3 providers and both semconv generations; 1 span in 4 is not a GenAI span (an HTTP
span), and GenAI spans carry ~14 attributes including a content attribute (dropped undecoded).
Ratios to the baseline are printed so the result depends less on the machine. Times are the process's CPU
time (``time.process_time``, every thread), not wall time: on a shared machine other jobs stretch wall
time but not the CPU this process used, and on one core with one GIL the CPU time is the cost.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import tempfile
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tailpipe_ai.exporter.sink import NullSink
from tailpipe_ai.gateway.ingest import Ingestor

TARGET = 20_000
MODELS = [
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4-20250514"),
    ("openai", "gpt-4.1"),
    ("aws.bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0"),
]


def _kv(key, value):
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def batch(size: int = 512, seed: int = 0) -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for k, v in {
        "service.name": "checkout",
        "deployment.environment.name": "prod",
        "cloud.provider": "aws",
        "cloud.region": "eu-west-1",
        "tailpipe.attr.team": "payments",
    }.items():
        rs.resource.attributes.append(_kv(k, v))
    ss = rs.scope_spans.add()
    ss.scope.name = "bench"
    now = time.time_ns()
    for i in range(size):
        sp = ss.spans.add()
        sp.trace_id = os.urandom(16)
        sp.span_id = os.urandom(8)
        sp.start_time_unix_nano = now - 2_000_000_000
        sp.end_time_unix_nano = now - 1_000_000_000 + i
        if i % 4 == 3:
            sp.name = "GET /api"
            attrs = {
                "http.request.method": "GET",
                "url.path": "/api",
                "http.response.status_code": 200,
                "server.address": "api.internal",
                "server.port": 443,
            }
        else:
            provider, model = MODELS[(i + seed) % len(MODELS)]
            sp.name = f"chat {model}"
            old = i % 3 == 0
            attrs = {
                "gen_ai.operation.name": "chat",
                ("gen_ai.system" if old else "gen_ai.provider.name"): provider,
                "gen_ai.request.model": model,
                "gen_ai.response.model": model,
                "gen_ai.response.id": f"resp-{i}",
                ("gen_ai.usage.prompt_tokens" if old else "gen_ai.usage.input_tokens"): 200 + i,
                ("gen_ai.usage.completion_tokens" if old else "gen_ai.usage.output_tokens"): 50 + i % 97,
                "gen_ai.request.max_tokens": 1024,
                "gen_ai.request.temperature": 0.2,
                "gen_ai.response.finish_reasons": "stop",
                "server.address": "api.openai.com",
                "server.port": 443,
                "gen_ai.input.messages": "x" * 400,  # content: dropped undecoded
                "tailpipe.attr.feature": "search",
            }
        for k, v in attrs.items():
            sp.attributes.append(_kv(k, v))
    return req.SerializeToString()


clock = time.process_time


def _rate(fn, bodies, spans_per_batch, repeat=5):
    best = float("inf")
    for _ in range(repeat):
        t0 = clock()
        for body in bodies:
            fn(body)
        best = min(best, clock() - t0)
    return len(bodies) * spans_per_batch / best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    bodies = [batch(args.size, seed) for seed in range(8)] * max(1, args.batches // 8)
    gz = [gzip.compress(b, compresslevel=6) for b in bodies]
    ingestor = Ingestor(NullSink())
    ingestor.traces(ExportTraceServiceRequest.FromString(bodies[0]), "bench")  # warm the caches

    results = {}
    results["baseline_decode"] = _rate(ExportTraceServiceRequest.FromString, bodies, args.size)
    results["ingest"] = _rate(
        lambda b: ingestor.traces(ExportTraceServiceRequest.FromString(b), "bench"), bodies, args.size
    )
    results["ingest_gzip"] = _rate(
        lambda b: ingestor.traces(ExportTraceServiceRequest.FromString(gzip.decompress(b)), "bench"), gz, args.size
    )
    from tailpipe_ai.exporter.local_lake import LocalLakeSink

    with tempfile.TemporaryDirectory() as tmp:
        sink = LocalLakeSink(tmp, recover=False)
        lake_ingestor = Ingestor(sink)

        def lake_run(b):
            lake_ingestor.traces(ExportTraceServiceRequest.FromString(b), "bench")

        t0 = clock()
        for b in bodies:
            lake_run(b)
        sink.flush(120)
        results["ingest_lake"] = len(bodies) * args.size / (clock() - t0)
        sink.close()
    results["http"] = _http_rate(gz[: max(8, len(gz) // 4)], args.size)

    genai_share = 0.75
    report = {
        "python": platform.python_version(),
        "batch_size": args.size,
        "batches": len(bodies),
        "spans_per_s": {k: round(v) for k, v in results.items()},
        "genai_spans_per_s_ingest": round(results["ingest"] * genai_share),
        "ratio_to_decode": {k: round(v / results["baseline_decode"], 3) for k, v in results.items()},
        "target_spans_per_s": TARGET,
        "pass": results["ingest"] >= TARGET,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"gateway ingest, batches of {args.size} spans ({len(bodies)} batches, Python {report['python']})")
        for k, v in results.items():
            print(f"  {k:16s} {v:>12,.0f} spans/s   x{v / results['baseline_decode']:.3f} of decode alone")
        print(f"  GenAI spans (3 in 4) turned into records: {report['genai_spans_per_s_ingest']:,} /s")
        print(f"  target {TARGET:,} spans/s: {'PASS' if report['pass'] else 'FAIL'}")
    return 0


def _http_rate(bodies, size):
    import urllib.request

    from tailpipe_ai.gateway.config import ApiKey, GatewayConfig, hash_key
    from tailpipe_ai.gateway.server import GatewayThread, build_gateway

    key = "tp_benchmark-key"
    cfg = GatewayConfig(keys={hash_key(key): ApiKey("k", hash_key(key), "bench")})
    with GatewayThread(build_gateway(cfg, sink=NullSink())) as gw:
        headers = {
            "Content-Type": "application/x-protobuf",
            "Content-Encoding": "gzip",
            "Authorization": f"Bearer {key}",
        }
        t0 = clock()
        for body in bodies:
            req = urllib.request.Request(gw.url + "/v1/traces", data=body, headers=headers, method="POST")
            with urllib.request.urlopen(req) as resp:
                assert resp.status == 200
        return len(bodies) * size / (clock() - t0)


if __name__ == "__main__":
    sys.exit(main())
