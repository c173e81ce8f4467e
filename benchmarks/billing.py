"""Rows per second of `tailpipe billing bedrock-cur` on a synthetic CUR, on one core, with peak memory.

    python benchmarks/billing.py                  # 5,000,000-row legacy CUR CSV (about 1 GB in a temp dir)
    python benchmarks/billing.py --rows 1000000 --gzip --json

The synthetic CUR mixes 70% Bedrock token rows (12 usage types x 4 regions x 3 teams, hourly over a
month, several rows per line identity like real CURs) with 30% non-Bedrock noise. The baseline, in the
same run, is pyarrow's streaming CSV reader alone reading the same columns (the floor any CSV-based
reader pays); the import is reported as rows/s and as a ratio to that baseline. Target: >= 250,000 rows/s.
Times are CPU seconds of this process (``time.process_time``) pinned to one core, so other load on a
shared machine does not count against us; wall time is printed too.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

TARGET_ROWS_PER_S = 250_000

HEADER = (
    "identity/LineItemId,identity/TimeInterval,lineItem/UsageAccountId,lineItem/LineItemType,"
    "lineItem/UsageStartDate,lineItem/UsageEndDate,lineItem/ProductCode,lineItem/UsageType,lineItem/Operation,"
    "lineItem/ResourceId,lineItem/UsageAmount,lineItem/CurrencyCode,lineItem/UnblendedRate,lineItem/UnblendedCost,"
    "product/ProductName,product/regionCode,pricing/unit,resourceTags/user:team\n"
)
MODELS = ("Claude4Sonnet", "Claude3.7Sonnet", "Llama3-3-70B", "Nova2.0Lite")
KINDS = ("input-tokens", "output-tokens", "cache-read-input-token-count")
REGIONS = (("USE1", "us-east-1"), ("USW2", "us-west-2"), ("EUC1", "eu-central-1"), ("APS3", "ap-south-1"))
TEAMS = ("ml", "search", "support")
NOISE = ("AmazonEC2,{c}-BoxUsage:m5.large,RunInstances", "AmazonS3,{c}-TimedStorage-ByteHrs,StandardStorage")


def generate(path: Path, rows: int, seed: int, compress: bool) -> int:
    rnd = random.Random(seed)
    opener = gzip.open if compress else open
    with opener(path, "wt", encoding="utf-8", newline="") as fh:  # type: ignore[operator]
        fh.write(HEADER)
        chunk: list[str] = []
        for i in range(rows):
            hour = (i // 2000) % 720
            day, h = divmod(hour, 24)
            start = f"2025-06-{day + 1:02d}T{h:02d}:00:00Z"
            end = f"2025-06-{day + 1:02d}T{h:02d}:59:59Z"
            code, region = REGIONS[rnd.randrange(4)]
            team = TEAMS[rnd.randrange(3)]
            if rnd.random() < 0.7:
                model, kind = MODELS[rnd.randrange(4)], KINDS[rnd.randrange(3)]
                amount = rnd.randrange(1, 5000)
                chunk.append(
                    f"li{i},{start}/{end},111122223333,Usage,{start},{end},AmazonBedrockService,"
                    f"{code}-{model}-{kind},InvokeModel,arn:aws:bedrock:{region}::foundation-model/x,{amount},USD,"
                    f"0.003,{amount * 0.003:.6f},Amazon Bedrock Service,{region},1K tokens,{team}\n"
                )
            else:
                noise = NOISE[rnd.randrange(2)].format(c=code)
                chunk.append(
                    f"li{i},{start}/{end},111122223333,Usage,{start},{end},{noise},i-0abc,1,USD,0.1,0.1,"
                    f"Other,{region},Hrs,{team}\n"
                )
            if len(chunk) >= 100_000:
                fh.writelines(chunk)
                chunk.clear()
        fh.writelines(chunk)
    return path.stat().st_size


def baseline(path: Path) -> float:
    """Seconds for pyarrow's streaming CSV reader alone (same columns, one thread)."""
    from tailpipe_ai.billing import bedrock_cur
    from tailpipe_ai.billing.sources import expand, read

    (inp,) = expand([str(path)])
    t0 = time.process_time()
    opened = read(inp, lambda header: list(bedrock_cur.match_columns(header, bedrock_cur.COLUMNS).values()))
    n = sum(b.num_rows for b in opened.batches)
    assert n > 0
    return time.process_time() - t0


def run_import(path: Path) -> tuple[float, dict]:
    from tailpipe_ai.billing import bedrock_cur
    from tailpipe_ai.billing.common import record_lines

    t0, w0 = time.process_time(), time.perf_counter()
    summary, lines = bedrock_cur.read_cur([str(path)])
    record_lines(summary, lines, None)  # estimate every line; no sink (the lake writer is benchmarked elsewhere)
    return time.process_time() - t0, {
        "rows_read": summary.rows_read,
        "records": summary.records,
        "wall_s": round(time.perf_counter() - w0, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--gzip", action="store_true", help="gzip the synthetic CUR (tests decompression too)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    folder = Path(tempfile.mkdtemp(prefix="tailpipe-bench-billing-"))
    try:
        path = folder / ("cur.csv.gz" if args.gzip else "cur.csv")
        size = generate(path, args.rows, args.seed, args.gzip)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        base = baseline(path)
        seconds, info = run_import(path)
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rate = args.rows / seconds
    result = {
        "machine": f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}",
        "rows": args.rows,
        "file_mb": round(size / 1e6, 1),
        "gzip": args.gzip,
        "baseline_read_cpu_s": round(base, 3),
        "import_cpu_s": round(seconds, 3),
        "rows_per_s": round(rate),
        "ratio_to_baseline": round(seconds / base, 2),
        "peak_rss_mb": round(rss_after / 1024, 1),
        "rss_growth_during_run_mb": round((rss_after - rss_before) / 1024, 1),
        **info,
        "verdict": "PASS" if rate >= TARGET_ROWS_PER_S else "FAIL",
    }
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    for k, v in result.items():
        print(f"{k:>26}: {v}")


if __name__ == "__main__":
    main()
