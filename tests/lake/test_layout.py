"""The lake layout is Firehose-shaped and Hive-partitioned."""

import re
from datetime import date, datetime, timezone

from tailpipe_ai.lake.layout import compacted_name, parse_partition, raw_object_name, raw_partition


def test_paths():
    assert raw_partition(date(2026, 1, 5)) == "ai-telemetry-raw/year=2026/month=01/day=05/"
    assert compacted_name(date(2026, 1, 5)) == "ai-telemetry/telemetry-20260105.jsonl.gz"
    name = raw_object_name(datetime(2026, 1, 5, 23, 59, 7, tzinfo=timezone.utc))
    assert re.fullmatch(r"tailpipe-local-1-2026-01-05-23-59-07-[0-9a-f-]{36}\.gz", name)
    assert parse_partition("ai-telemetry-raw/year=2026/month=01/day=05/x.gz") == date(2026, 1, 5)
    assert parse_partition("ai-telemetry-raw/year=2026/x.gz") is None
