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
TOO_LONG = "too_long"
REASONS = (CORRUPT_GZIP, TRUNCATED, NOT_JSON, SCHEMA, UNREADABLE, TOO_LONG)

MAX_LINE = 4 * 1024 * 1024
"""Longest line read as a record; Firehose caps a record at 1,000 KiB, so a longer line is damage."""

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 256 * 1024  # bytes read per step
_INFLATE_STEP = 1024 * 1024  # most bytes decompressed per step (a gzip bomb cannot blow up memory)


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
    """(line number, line without its newline, complete) for each non-blank line of one local file.

    `complete` is False only for a last line with no newline in a file that otherwise ended cleanly. When a
    gzip stream is cut short or corrupt, the partial line at the cut is dropped and counted instead.
    """
    stats.files += 1
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, after the generator is consumed
    except OSError as exc:
        stats.skip(path, 1, UNREADABLE, exc.strerror or type(exc).__name__)
        return
    with fh:
        lines = Lines(fh, os.fspath(path), read_size=_CHUNK)
        for lineno, line, complete in lines:
            if line is None:
                stats.skip(path, lineno, TOO_LONG, f"longer than {lines.max_line:,} bytes")
                continue
            stats.lines += 1
            yield lineno, line, complete
    if lines.damage is not None:
        stats.skip(path, lines.damage.line, lines.damage.reason, lines.damage.detail)


@dataclass(frozen=True)
class Damage:
    """Why a file's byte stream could not be read to its end, and where (the line being read when it broke)."""

    reason: str
    """CORRUPT_GZIP, TRUNCATED or UNREADABLE."""
    detail: str
    """What broke, in words (never file content)."""
    line: int
    """The number the next line would have had; every line before it was yielded."""
    cut: bool
    """True when a partial line was lost at the damage."""


class Lines:
    """The one streaming line reader of lake files: ``for number, line, complete in Lines(fh, name)``.

    Gzip (one or more members, zero padding between them) is recognised by its magic bytes, whatever the
    name; a name ending in ``.gz`` that is not gzip is damage. Each non-blank line comes out as the raw bytes
    read, without its newline, with its 1-based number (blank lines count but are not yielded). Memory stays
    bounded: reads of ``read_size`` bytes, at most ``inflate_step`` bytes decompressed per step, and a line
    longer than ``max_line`` bytes is yielded as ``None`` (its content is never held). ``complete`` is False
    only for a last line without a newline in a file that ended cleanly.

    When the stream breaks (corrupt gzip, gzip cut short, an I/O error) reading stops; ``damage`` says why
    and where, and the partial line at the cut is dropped (``damage.cut``). Each consumer maps this onto
    its own counters. The last 8 bytes are fed to zlib separately, so a file whose only fault is its
    checksum or its missing end still yields all its complete lines first. ``empty`` is True for a
    zero-byte file (no lines, no damage).
    """

    def __init__(
        self,
        fh: Any,
        name: str = "",
        *,
        max_line: int | None = None,
        read_size: int | None = None,
        inflate_step: int | None = None,
    ) -> None:
        self.fh = fh
        self.name = name
        self.max_line = max_line or MAX_LINE
        self.read_size = read_size or _CHUNK
        self.inflate_step = inflate_step or _INFLATE_STEP
        self.damage: Damage | None = None
        self.empty = False

    def __iter__(self) -> Iterator[tuple[int, bytes | None, bool]]:
        max_line = self.max_line
        number = 0
        tail = b""
        overlong = False
        try:
            for chunk in self._decoded():
                pieces = chunk.split(b"\n")
                if tail:
                    pieces[0] = tail + pieces[0]
                tail = pieces.pop()
                for piece in pieces:
                    number += 1
                    if overlong or len(piece) > max_line:
                        overlong = False
                        yield number, None, True
                    elif piece and not piece.isspace():
                        yield number, piece, True
                if len(tail) > max_line:  # not a record: do not hold it in memory
                    overlong, tail = True, b""
        except _Broken as exc:
            self.damage = Damage(exc.reason, exc.detail, number + 1, bool(tail) or overlong)
            return
        except OSError as exc:
            detail = f"cannot read on ({type(exc).__name__}: {exc.strerror or exc})"
            self.damage = Damage(UNREADABLE, detail, number + 1, bool(tail) or overlong)
            return
        if overlong:
            yield number + 1, None, False
        elif tail and not tail.isspace():
            yield number + 1, tail, False

    def _decoded(self) -> Iterator[bytes]:
        """The file's bytes, gunzipped when they are gzip; raises _Broken."""
        read, size = self.fh.read, self.read_size
        first = _read_at_least(read, b"", 2, size)
        if not first:
            self.empty = True
            return
        if first[:2] != _GZIP_MAGIC:
            if self.name.endswith(".gz"):
                raise _Broken(CORRUPT_GZIP, "not gzip data (the name ends in .gz)")
            yield first
            while chunk := read(size):
                yield chunk
            return
        yield from self._gunzip(first)

    def _gunzip(self, pending: bytes) -> Iterator[bytes]:
        read, size = self.fh.read, self.read_size
        self._inflater = zlib.decompressobj(wbits=31)
        self._inside = False  # between a member's header and its end
        ended = False
        while not ended:
            more = read(size)
            ended = not more
            pending += more
            # The last 8 bytes are fed on their own: the trailer, if the file ends there.
            feeds = (pending[:-8], pending[-8:]) if ended else (pending[:-8],)
            pending = b"" if ended else pending[-8:]
            for data in feeds:
                yield from self._inflate(data)
        if self._inside:  # output zlib may still hold back at the very end, then the verdict
            try:
                out = self._inflater.flush()
            except zlib.error as exc:
                raise _Broken(CORRUPT_GZIP, f"gzip data is corrupt ({exc})") from None
            if out:
                yield out
            if not self._inflater.eof:
                raise _Broken(TRUNCATED, "gzip data ends early (file truncated)")

    def _inflate(self, data: bytes) -> Iterator[bytes]:
        """Feed gzip bytes (any split of members, headers and data) and yield what they decompress to."""
        step = self.inflate_step
        full = False  # the last step filled its output limit: zlib may hold more output without more input
        while data or full:
            if not self._inside:
                data = data.lstrip(b"\x00")  # zero padding between members is allowed, as in Python's gzip
                if not data:
                    return
                if data[:2] != _GZIP_MAGIC[: len(data)]:
                    raise _Broken(CORRUPT_GZIP, "bytes after the gzip data are not gzip")
                self._inside = True
            try:
                out = self._inflater.decompress(data, step)
            except zlib.error as exc:
                raise _Broken(CORRUPT_GZIP, f"gzip data is corrupt ({exc})") from None
            if out:
                yield out
            full = len(out) == step
            data = self._inflater.unconsumed_tail
            if self._inflater.eof:  # the leftover input is all in unused_data (unconsumed_tail may repeat it)
                full = False
                data = self._inflater.unused_data
                self._inflater = zlib.decompressobj(wbits=31)
                self._inside = False


class _Broken(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _read_at_least(read: Any, data: bytes, n: int, size: int) -> bytes:
    """`data` topped up by `read` to at least `n` bytes, unless the stream ends first."""
    while len(data) < n:
        more = read(size)
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
