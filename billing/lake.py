"""Write billing records into the lake partition of their own usage day (a backfill), not today's.

Why: the lake reads a day's raw records from that day's arrival partition and the days either side
(Firehose semantics, lake/layout.py), and a billing file arrives weeks after the usage it describes.
Filed under today's partition, last month's records would be invisible to `tailpipe compact` and
`tailpipe report`. Each usage day gets its own LocalLakeSink whose clock reads that day, one day open
at a time (records come in time order), so files look exactly like any other raw lake file.
"""

from __future__ import annotations

import os
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any

from tailpipe_ai.exporter.local_lake import LocalLakeSink
from tailpipe_ai.lake.layout import compacted_name, default_lake, local_path
from tailpipe_ai.semconv import Record

STREAM = "tailpipe-billing"


class BackfillLakeSink:
    """A Sink writing each record into `<lake>/ai-telemetry-raw/` under its usage day."""

    def __init__(self, lake: str | os.PathLike[str] | None = None, *, signer: Any = None) -> None:
        lake = default_lake() if lake is None else lake
        if os.fspath(lake).startswith("s3://"):
            raise ValueError(
                f"billing import writes to a local lake folder, not {os.fspath(lake)!r}; pass --lake FOLDER "
                "(copy the folder to S3 afterwards, or use the Firehose sink for live telemetry)"
            )
        self.root: Path = local_path(lake)
        self._signer = signer
        self._day: date | None = None
        self._sink: LocalLakeSink | None = None
        self._recover = True
        self.days: set[date] = set()
        self.written = 0
        self._failed = 0

    def _close_current(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._failed += self._sink.lost + self._sink.unencodable
            self._sink = None

    def _open(self, day: date) -> LocalLakeSink:
        self._close_current()
        when = datetime.combine(day, time(12, 0), tzinfo=timezone.utc)
        self._sink = LocalLakeSink(
            self.root,
            signer=self._signer,
            clock=lambda: when,
            stream=STREAM,
            recover=self._recover,
            roll_seconds=3600,
            roll_bytes=64 * 1024 * 1024,
        )
        self._recover = False
        self._day = day
        return self._sink

    def write(self, record: Record) -> None:
        day = date.fromisoformat(record.timestamp[:10])
        sink = self._sink if day == self._day and self._sink is not None else self._open(day)
        self.days.add(day)
        self.written += 1
        sink.write(record)

    def flush(self, timeout: float | None = None) -> bool:
        return self._sink.flush(timeout) if self._sink is not None else True

    def close(self) -> None:
        self._close_current()

    @property
    def failed(self) -> int:
        """Records that could not be written (disk full, permissions, unencodable); final after close()."""
        return self._failed

    def compacted_days(self) -> list[date]:
        """Days written to that already have a compacted file: they must be compacted again to count."""
        return sorted(d for d in self.days if (self.root / compacted_name(d)).exists())
