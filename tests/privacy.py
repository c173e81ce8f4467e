"""The privacy canary's search, shared by every integration's canary test: every byte that left through
spans, metrics, lake files, our logs, stdout and stderr is searched for every canary."""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def lake_bytes(lake: Path) -> bytes:
    """Every file under the lake, decompressed when it is gzip (canaries are searched in plain text)."""
    parts = []
    for path in sorted(lake.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            parts.append(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
    return b"".join(parts)


def channels(*, spans: Iterable[Any], metrics: Any, lake: bytes, logs: str, capfd: Any) -> dict[str, str]:
    """Each channel's text: finished spans, the metric reader's data, the lake, logs and captured output."""
    out, err = capfd.readouterr()
    return {
        "spans": "\n".join(s.to_json() for s in spans),
        "metrics": metrics.get_metrics_data().to_json(),
        "lake": lake.decode(),
        "logs": logs,
        "stdout": out,
        "stderr": err,
    }


def assert_no_canary(found: dict[str, str], canaries: Iterable[str]) -> None:
    for name, text in found.items():
        for canary in canaries:
            assert canary not in text, f"{canary} leaked through {name}"
