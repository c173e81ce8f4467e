"""The lake's layout, the same on a laptop folder and in S3 (Firehose-shaped, Hive-partitioned).

    <lake>/ai-telemetry-raw/year=YYYY/month=MM/day=DD/<stream>-1-YYYY-MM-DD-HH-MM-SS-<uuid>.gz   raw, by arrival
    <lake>/ai-telemetry/telemetry-YYYYMMDD.jsonl.gz                                            compacted, by record day
    <lake>/ai-telemetry-parquet/telemetry-YYYYMMDD.parquet                                     its report columns
    <lake>/ai-telemetry-errors/<error-type>/year=YYYY/month=MM/day=DD/...                      Firehose errors

Raw objects are newline-delimited JSON records, gzip-compressed (one or more gzip members). As with
Firehose, the raw partition is the *arrival* (write) time, not the record's own timestamp, so a day's
records can sit in the neighbouring days' partitions; compaction reads day-1..day+1.
"""

from __future__ import annotations

import os
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

RAW_PREFIX = "ai-telemetry-raw"
COMPACT_PREFIX = "ai-telemetry"
COMPANION_PREFIX = "ai-telemetry-parquet"  # a prefix of its own: Athena reads every file under a table's LOCATION
ERRORS_PREFIX = "ai-telemetry-errors"
LOCAL_STREAM = "tailpipe-local"


def default_lake() -> str:
    """`TAILPIPE_LAKE` (a folder, file:// URL or s3://bucket/prefix), default ./tailpipe-lake."""
    return os.environ.get("TAILPIPE_LAKE") or "./tailpipe-lake"


def local_path(lake: str | os.PathLike[str]) -> Path:
    """A local lake location as a Path (accepts file:// URLs)."""
    raw = os.fspath(lake)
    if raw.startswith("file://"):
        raw = raw[len("file://"):]
    return Path(raw)


def raw_partition(day: date) -> str:
    """Relative path of a raw day partition, ending in '/'."""
    return f"{RAW_PREFIX}/year={day.year:04d}/month={day.month:02d}/day={day.day:02d}/"


def raw_object_name(when: datetime, stream: str = LOCAL_STREAM, version: int = 1) -> str:
    """A Firehose-style object name: <stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid>.gz (UTC)."""
    t = when.astimezone(timezone.utc)
    return f"{stream}-{version}-{t:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}.gz"


def compacted_name(day: date) -> str:
    """Relative path of a compacted day file."""
    return f"{COMPACT_PREFIX}/telemetry-{day:%Y%m%d}.jsonl.gz"


def companion_name(day: date) -> str:
    """Relative path of a compacted day's Parquet companion (the few columns `tailpipe report` reads)."""
    return f"{COMPANION_PREFIX}/telemetry-{day:%Y%m%d}.parquet"


def parse_partition(relative: str) -> date | None:
    """The day of a raw partition path ('.../year=2026/month=11/day=22/...'), or None."""
    parts = dict(p.split("=", 1) for p in relative.split("/") if "=" in p)
    try:
        return date(int(parts["year"]), int(parts["month"]), int(parts["day"]))
    except (KeyError, ValueError):
        return None
