"""The one reader of lake files. Compaction, `verify`, `report` and temp-file recovery all read through it.

Lake files are newline-delimited JSON, usually gzip (one or more members, as Firehose and our own writer
produce them), sometimes plain. Real files go wrong in a few ways, and every consumer must react the same
way: skip what is broken, count it by reason, keep reading the rest. `ReadStats` holds those counts and a
few examples as "file:line: reason" - never the content of a line, which could hold anything.

Reasons: ``corrupt_gzip`` (undecodable gzip data; the rest of that file is skipped), ``truncated`` (a gzip
stream cut short, or a last line with no newline that is not valid JSON), ``not_json`` (a complete line
that is not JSON), ``schema`` (JSON that is not a record object, or, with ``validate=True``, fails
``Record.from_dict``), ``unreadable`` (the file could not be opened or read).
"""

from __future__ import annotations

import json
import os
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from tailpipe_ai.lake.layout import local_path, raw_partition
from tailpipe_ai.semconv.record import Record, RecordError

CORRUPT_GZIP = "corrupt_gzip"
TRUNCATED = "truncated"
NOT_JSON = "not_json"
SCHEMA = "schema"
UNREADABLE = "unreadable"
REASONS = (CORRUPT_GZIP, TRUNCATED, NOT_JSON, SCHEMA, UNREADABLE)

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 256 * 1024


@dataclass
class ReadStats:
    """What a read saw: files, non-blank lines, records yielded, and skipped items by reason."""

    max_examples: int = 10
    files: int = 0
    lines: int = 0
    records: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def skip(self, path: str | os.PathLike[str], line: int, reason: str, detail: str = "") -> None:
        """Count one skipped item; keep it as an example while there is room. `detail` must hold no content."""
        self.skipped[reason] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(f"{os.fspath(path)}:{line}: {reason}" + (f" ({detail})" if detail else ""))

    def summary(self) -> str:
        """One line for a log or a CLI footer."""
        text = f"read {self.files} files, {self.lines} lines, {self.records} records"
        if self.skipped:
            parts = ", ".join(f"{reason} {n}" for reason, n in sorted(self.skipped.items()))
            text += f"; skipped {self.total_skipped} ({parts})"
        return text


def iter_raw_files(lake: str | os.PathLike[str], days: Iterable[date]) -> Iterator[Path]:
    """Raw objects of the given day partitions of a local lake, sorted; missing partitions are skipped.

    Names starting with '.' (temp files being written) or '_' (markers, manifests) are not data, as for
    Athena and Hive, and are left out.
    """
    if os.fspath(lake).startswith("s3://"):
        raise ValueError(f"iter_raw_files reads a local lake folder, not {os.fspath(lake)!r}; download it first")
    root = local_path(lake)
    for day in sorted(set(days)):
        folder = root / raw_partition(day)
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        names = sorted(e.name for e in entries if not e.name.startswith((".", "_")) and e.is_file())
        for name in names:
            yield folder / name


def iter_records(
    path_or_paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    stats: ReadStats | None = None,
    validate: bool = False,
) -> Iterator[dict[str, Any]]:
    """JSON objects from lake files, in file order, streaming (memory stays flat whatever the file size).

    Bad items are skipped and counted in `stats` (see the module doc). With `validate=True` each object must
    also pass `Record.from_dict`; the dict yielded is still the one read, untouched (signatures stay valid).
    """
    stats = stats if stats is not None else ReadStats()
    paths = [path_or_paths] if isinstance(path_or_paths, (str, os.PathLike)) else path_or_paths
    loads = json.loads
    for path in paths:
        for lineno, line, complete in iter_lines(path, stats):
            try:
                obj = loads(line.decode("utf-8"), parse_constant=_refuse_constant)  # UTF-8 only, no sniffing
            except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN/Infinity
                if complete:
                    stats.skip(path, lineno, NOT_JSON, _json_detail(exc))
                else:
                    stats.skip(path, lineno, TRUNCATED, "last line has no newline and is not valid JSON")
                continue
            if type(obj) is not dict:
                stats.skip(path, lineno, SCHEMA, f"a JSON {type(obj).__name__}, not an object")
                continue
            if validate:
                try:
                    Record.from_dict(obj)
                except RecordError as exc:  # the message may quote a value: report the field only
                    stats.skip(path, lineno, SCHEMA, f"field {exc.field!r}" if exc.field else "record")
                    continue
            stats.records += 1
            yield obj


def iter_lines(path: str | os.PathLike[str], stats: ReadStats) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, line without its newline, complete) for each non-blank line of one file.

    `complete` is False only for a last line with no newline in a file that otherwise ended cleanly. When a
    gzip stream is cut short or corrupt, the partial line at the cut is dropped and counted instead.
    """
    stats.files += 1
    lineno = 0
    tail = b""
    try:
        for chunk in _decoded_chunks(path):
            lines = (tail + chunk).split(b"\n") if tail else chunk.split(b"\n")
            tail = lines.pop()
            for line in lines:
                lineno += 1
                if line and not line.isspace():
                    stats.lines += 1
                    yield lineno, line, True
    except _Broken as exc:
        stats.skip(path, lineno + 1, exc.reason, exc.detail)
        return
    except OSError as exc:
        stats.skip(path, lineno + 1, UNREADABLE, exc.strerror or type(exc).__name__)
        return
    if tail and not tail.isspace():
        stats.lines += 1
        yield lineno + 1, tail, False


class _Broken(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _decoded_chunks(path: str | os.PathLike[str]) -> Iterator[bytes]:
    """The file's bytes, gunzipped when it is gzip (by its first bytes, or its .gz name); raises _Broken."""
    with open(path, "rb") as fh:
        first = _read_at_least(fh, b"", 2)
        if not first:
            return
        if not first.startswith(_GZIP_MAGIC):
            if os.fspath(path).endswith(".gz"):
                raise _Broken(CORRUPT_GZIP, "named .gz but not gzip data")
            yield first
            while chunk := fh.read(_CHUNK):
                yield chunk
            return
        yield from _gunzip(first, fh)


def _gunzip(data: bytes, fh: Any) -> Iterator[bytes]:
    """Decompress consecutive gzip members; a cut-short last member raises _Broken(TRUNCATED)."""
    d = zlib.decompressobj(wbits=31)
    while True:
        try:
            out = d.decompress(data)
        except zlib.error as exc:
            raise _Broken(CORRUPT_GZIP, str(exc)) from None
        if out:
            yield out
        if not d.eof:
            data = fh.read(_CHUNK)
            if not data:
                raise _Broken(TRUNCATED, "gzip stream ends early; the rest of the file is lost")
            continue
        # A member ended; another may follow, or zero padding (some tools add it), or the end of the file.
        data = _read_at_least(fh, d.unused_data, 2)
        while data and not data.strip(b"\x00"):
            data = _read_at_least(fh, b"", 2)
        if not data:
            return
        if not data.startswith(_GZIP_MAGIC):
            raise _Broken(CORRUPT_GZIP, "data after a gzip member is not gzip")
        d = zlib.decompressobj(wbits=31)


def _read_at_least(fh: Any, data: bytes, n: int) -> bytes:
    """`data` topped up from `fh` to at least `n` bytes, unless the file ends first."""
    while len(data) < n:
        more = fh.read(_CHUNK)
        if not more:
            break
        data += more
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _json_detail(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 at byte {exc.start}"
    return str(exc)
