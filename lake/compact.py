"""Daily compaction: raw arrival-time partitions -> one sorted, de-duplicated file per record day.

Why it looks like this:

* Raw partitions are by *arrival* time, so a day's records can sit in the partitions of the day before and
  after; we read day-1..day+1 and keep the records whose own ``timestamp`` falls on the day (UTC).
* Every delivery path is at-least-once, so the same ``record_id`` can arrive several times; the first copy
  seen wins (partitions in day order, files in name order, which for Firehose-style names is arrival
  order, lines in file order).
* Memory must stay bounded however large the day is, so accepted records are spilled to hash buckets on
  disk (all copies of a ``record_id`` land in the same bucket), each bucket is de-duplicated and sorted on
  its own, and the sorted buckets are merged into the output. Peak memory is about one bucket per process.
* Parsing and validating JSON is most of the cost, so lines that visibly belong to another day are dropped
  before parsing, raw files are scanned and buckets sorted by worker processes (Linux, fork), and the
  output is compressed as independent gzip members on threads (zlib releases the GIL).
* Problem messages name the file, line and field, never a value: a malformed record could carry anything.
* The output is sorted by (timestamp, record_id), cut into members at fixed points and written with a fixed
  gzip header, so two runs over the same input give byte-identical files. Each accepted line is written
  exactly as it was read, so signatures and unknown fields survive untouched.
* Publishing is a rename of a fully written, fsynced temporary file in the same folder, so a crash leaves
  the raw data intact and the published file either the old one or the new one, never partial.
* Bad input (a corrupt or truncated gzip file, a line that is not JSON, a record failing the schema, a
  record the verifier rejects) is skipped, counted and described; the rest is compacted.
"""

from __future__ import annotations

import heapq
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import uuid
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from hashlib import sha256
from pathlib import Path
from typing import Any

from tailpipe_ai.semconv import record as _record
from tailpipe_ai.semconv.record import REQUIRED_FIELDS, SCHEMA, Record, RecordError

from .layout import compacted_name, local_path, raw_partition

try:  # optional: parses JSON about 3x faster than the standard library
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

__all__ = ["CompactError", "CompactResult", "check_record", "compact_day"]

Verifier = Callable[[dict[str, Any]], str]
"""Called with each record (as a dict); returns 'ok' to keep it, anything else (a reason) to skip it."""

MAX_MESSAGES = 50
"""Detailed problem messages kept in a result; past that only the counts grow."""

BUCKET_BYTES = 48 * 1024 * 1024
"""Spill bytes one bucket may hold before it is split again; peak memory is about twice this."""

GZIP_LEVEL = 6
MEMBER_BYTES = 4 * 1024 * 1024
"""Uncompressed bytes per output gzip member (members are compressed in parallel)."""

_READ_CHUNK = 1 << 20
_INFLATE_LIMIT = 8 << 20  # decompressed bytes per step, so a gzip bomb cannot blow up memory
_MAX_LINE = 8 << 20  # a longer line is not a record (Firehose caps records at 1,000 KiB)
_KEY_LEN = 26 + 36  # 'YYYY-MM-DDTHH:MM:SS.ffffff' + record_id, in front of every spilled line
_ENTRY_HEAD = _KEY_LEN + 18  # then where it was first seen: file number (8 hex) and rank in the file (10 hex)
_PARALLEL_MIN_BYTES = 4 << 20  # below this much raw input, worker processes cost more than they save


class CompactError(RuntimeError):
    """Compaction could not run (no input, unwritable lake, ...); nothing was published."""


@dataclass
class CompactResult:
    """What one compaction run read, kept, skipped and published."""

    day: date
    path: Path
    """The published file (``<lake>/ai-telemetry/telemetry-YYYYMMDD.jsonl.gz``)."""
    files: int = 0
    """Raw files read (from the partitions of day-1, day and day+1)."""
    lines: int = 0
    """Non-empty lines read."""
    records: int = 0
    """Records written to the published file."""
    other_days: int = 0
    """Valid records whose own timestamp is on another day (compacted with that day)."""
    duplicates: int = 0
    """Extra copies of a record_id that were dropped (the first copy seen is kept)."""
    bad_files: int = 0
    """Raw files that are not gzip, or whose gzip stream is corrupt or ends early (the rest is skipped)."""
    bad_lines: int = 0
    """Lines that are not a JSON object (including a truncated last line)."""
    bad_records: int = 0
    """JSON objects that fail the ``tailpipe.record/1`` schema."""
    rejected: dict[str, int] = field(default_factory=dict)
    """Records the verifier did not accept, by its verdict ('bad_signature': 3, ...)."""
    messages: list[str] = field(default_factory=list)
    """The first ``MAX_MESSAGES`` problems, each naming the file and line or the record."""
    messages_dropped: int = 0
    bytes_written: int = 0
    sha256: str = ""
    changed: bool = True
    """False when the published file already had exactly these bytes (a rerun)."""
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds spent reading (parse, check, spill), sorting (dedup and sort buckets) and writing."""

    @property
    def skipped(self) -> int:
        """Lines and records left out because of bad input (duplicates and other days not included)."""
        return self.bad_lines + self.bad_records + sum(self.rejected.values())

    def note(self, message: str) -> None:
        if len(self.messages) < MAX_MESSAGES:
            self.messages.append(message)
        else:
            self.messages_dropped += 1

    def add(self, other: CompactResult) -> None:
        """Fold in the counts and messages of a partial result (one raw file)."""
        for name in ("files", "lines", "records", "other_days", "duplicates", "bad_files", "bad_lines", "bad_records"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rejected = dict(Counter(self.rejected) + Counter(other.rejected))
        for message in other.messages:
            self.note(message)
        self.messages_dropped += other.messages_dropped

    def summary(self) -> str:
        """A few human-readable lines for the CLI."""
        rate = self.lines / self.seconds if self.seconds > 0 else 0.0
        unchanged = "" if self.changed else " (unchanged)"
        out = [
            f"{self.day:%Y-%m-%d}: {self.records:,} records -> {self.path}{unchanged}",
            f"  read {self.lines:,} lines from {self.files:,} raw files in {self.seconds:.1f} s ({rate:,.0f} lines/s; "
            + ", ".join(f"{name} {secs:.1f} s" for name, secs in self.phases.items())
            + ")",
            f"  dropped {self.duplicates:,} duplicates; {self.other_days:,} records belong to other days",
        ]
        if self.skipped or self.bad_files:
            parts = [f"{self.bad_files:,} bad files", f"{self.bad_lines:,} bad lines"]
            parts += [f"{self.bad_records:,} records failing the schema"]
            parts += [f"{n:,} {verdict}" for verdict, n in sorted(self.rejected.items())]
            out.append("  skipped: " + ", ".join(parts))
            out += [f"  - {m}" for m in self.messages]
            if self.messages_dropped:
                out.append(f"  - ... and {self.messages_dropped:,} more problems")
        return "\n".join(out)


def compact_day(
    lake: str | os.PathLike[str],
    day: date,
    *,
    verify: Verifier | None = None,
    progress: bool = True,
    workers: int | None = None,
    tmp_dir: str | os.PathLike[str] | None = None,
) -> CompactResult:
    """Compact the records of ``day`` (UTC) into ``<lake>/ai-telemetry/telemetry-YYYYMMDD.jsonl.gz``.

    Reads the raw partitions of day-1, day and day+1; keeps valid records timestamped on ``day``, the first
    copy of each ``record_id``, sorted by (timestamp, record_id); publishes atomically. ``verify`` (optional)
    gets each record as a dict and returns 'ok' to keep it or a verdict naming why not. ``workers``: processes
    scanning raw files (default: one per CPU, up to 4; 1 scans in this process). ``tmp_dir`` holds the spill
    files (default: a hidden folder inside the lake, so spilling never fills a RAM-backed /tmp).
    Raises CompactError when there is nothing to read; problems in the input are counted, not raised.
    """
    started = time.monotonic()
    root = local_path(lake)
    target = root / compacted_name(day)
    result = CompactResult(day=day, path=target)
    paths = _raw_files(root, day)
    if not paths:
        raise CompactError(
            f"no raw files for {day:%Y-%m-%d} in {root} (looked in {raw_partition(day)} and the partitions of the "
            "days either side); nothing was compacted and any existing compacted file was left as it is"
        )
    sizes = [p.stat().st_size for p in paths]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        spill_parent = Path(tmp_dir) if tmp_dir is not None else root
        _remove_leftovers(spill_parent, target)
        spill = Path(tempfile.mkdtemp(prefix=f".tailpipe-compact-{os.getpid()}-", dir=spill_parent))
    except OSError as exc:
        raise CompactError(f"cannot write to the lake {root}: {exc}; check the path and its permissions") from exc
    buckets = _bucket_count(sum(sizes))
    try:
        pool = _Workers(day, verify, spill, buckets, _worker_count(workers, sum(sizes)))
        with pool, _progress(progress) as bar:
            reading = bar.add_task(f"reading {day:%Y-%m-%d}", total=sum(sizes))
            for size, part in zip(sizes, pool.map(_scan_file, enumerate(paths)), strict=True):
                result.add(part)
                bar.advance(reading, size)
            pool.finish_scan()
            result.phases["reading"] = time.monotonic() - started
            sorting = bar.add_task("sorting", total=buckets)
            runs: list[Path] = []
            for bucket_runs, records, duplicates in pool.map(_sort_bucket, range(buckets)):
                runs += bucket_runs
                result.records += records
                result.duplicates += duplicates
                bar.advance(sorting, 1)
            result.phases["sorting"] = time.monotonic() - started - result.phases["reading"]
            writing = bar.add_task(f"writing {target.name}", total=result.records)
            digest, size, changed = _publish(target, _merge(runs), lambda n: bar.advance(writing, n))
            result.phases["writing"] = time.monotonic() - started - sum(result.phases.values())
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    result.sha256, result.bytes_written, result.changed = digest, size, changed
    result.seconds = time.monotonic() - started
    return result


# ---------------------------------------------------------------------------------------------------------
# input: raw files -> (line, record) pairs
# ---------------------------------------------------------------------------------------------------------


def _raw_files(root: Path, day: date) -> list[Path]:
    """The raw objects of day-1..day+1 in first-seen order (partition day, then file name)."""
    out: list[Path] = []
    for d in (day - timedelta(days=1), day, day + timedelta(days=1)):
        folder = root / raw_partition(d)
        if folder.is_dir():
            names = sorted(p for p in folder.iterdir() if p.name.endswith(".gz") and not p.name.startswith("."))
            out += [p for p in names if p.is_file()]
    return out


def _iter_day_records(
    paths: Iterable[Path], result: CompactResult, skip: Callable[[bytes], bool] | None = None
) -> Iterator[tuple[Path, int, bytes, dict[str, Any]]]:
    """Yield (path, line number, line, parsed JSON object) for every good line of gzip JSONL files, in order.

    This is the seam for ``lake.reader``: problems go to ``result`` (counts and messages) instead of being
    raised. A corrupt gzip stream keeps the lines decoded before the damage; a truncated file keeps its
    complete lines and counts the partial last one as a bad line; multi-member gzip files are read whole.
    ``skip(line)`` true drops a line before it is parsed (the caller counts it).
    """
    for path in paths:
        result.files += 1
        for line_no, line in _iter_lines(path, result):
            if skip is not None and skip(line):
                continue
            try:
                value = _loads(line)
            except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN and Infinity
                result.bad_lines += 1
                result.note(f"{path} line {line_no}: not valid JSON ({_reason(exc)}); skipped")
                continue
            if not isinstance(value, dict):
                result.bad_lines += 1
                result.note(f"{path} line {line_no}: a JSON {type(value).__name__}, not an object; skipped")
                continue
            yield path, line_no, line, value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _loads(line: bytes) -> Any:
    """Parse one line (orjson when installed); NaN and Infinity are refused, as Record.decode does."""
    if _orjson is not None:
        return _orjson.loads(line)
    return _DECODER.decode(line.decode("utf-8"))


def _iter_lines(path: Path, result: CompactResult) -> Iterator[tuple[int, bytes]]:
    """Numbered non-empty lines of a gzip file (all members), reporting damage instead of raising."""
    line_no = 0
    tail = b""
    problem = None
    try:
        with open(path, "rb") as f:
            inflater = zlib.decompressobj(wbits=31)
            in_member = False  # fed the current decompressor anything yet?
            overlong = False
            while problem is None and (chunk := f.read(_READ_CHUNK)):
                while chunk:
                    in_member = True
                    try:
                        data = inflater.decompress(chunk, _INFLATE_LIMIT)
                    except zlib.error as exc:
                        problem = f"corrupt gzip data ({exc})"
                        break
                    chunk = inflater.unconsumed_tail
                    if inflater.eof:  # end of one gzip member; another may follow
                        chunk = inflater.unused_data.lstrip(b"\0")  # tolerate zero padding after a member
                        inflater, in_member = zlib.decompressobj(wbits=31), False
                    if data:
                        pieces = (tail + data).split(b"\n")
                        tail = pieces.pop()
                        for piece in pieces:
                            line_no += 1
                            if overlong:  # the end of a line already too long to keep
                                overlong = False
                                result.lines += 1
                                result.bad_lines += 1
                                result.note(f"{path} line {line_no}: longer than {_MAX_LINE:,} bytes; skipped")
                                continue
                            piece = piece.rstrip(b" \t\r")
                            if piece:
                                result.lines += 1
                                yield line_no, piece
                        if len(tail) > _MAX_LINE:  # not a record: do not hold it in memory
                            overlong, tail = True, b""
            if problem is None and in_member:
                problem = "gzip stream ends early (truncated file?)"
            elif problem is None and f.tell() == 0:
                problem = "empty file, not gzip"
    except OSError as exc:
        problem = f"cannot read it ({exc.strerror or exc})"
    tail = tail.rstrip(b" \t\r")
    if problem is not None:
        result.bad_files += 1
        kept = f"kept the {line_no:,} lines before it" if line_no else "nothing could be read from it"
        result.note(f"{path}: {problem}; {kept}")
        if tail:
            result.lines += 1
            result.bad_lines += 1
            result.note(f"{path} line {line_no + 1}: cut off by the damage above; skipped")
        return
    if tail:  # a last line without a newline: kept if it parses
        result.lines += 1
        yield line_no + 1, tail


def _reason(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8: {exc.reason} at byte {exc.start}"
    return str(exc)


# ---------------------------------------------------------------------------------------------------------
# filter: schema, day, verifier -> spill entries
# ---------------------------------------------------------------------------------------------------------


def _none_allowed() -> frozenset[str]:
    """Fields whose rule accepts null, so a null there needs no check call (most optional fields)."""
    out = set()
    for name, check in _FIELD_CHECKS or ():
        try:
            check(name, None)
        except RecordError:
            continue
        out.add(name)
    return frozenset(out)


_FIELD_CHECKS = getattr(_record, "_CHECKS", None)  # the per-field rules of Record.validate
_CHECK_OF = dict(_FIELD_CHECKS or ())
_NULL_OK = _none_allowed()


def check_record(value: dict[str, Any]) -> None:
    """Raise RecordError if a parsed JSON object is not a valid ``tailpipe.record/1`` record.

    The rules of ``Record.from_dict`` applied to the dict where it is: copying the record and building the
    dataclass is most of from_dict's cost, and compaction checks every record it reads. Fields that are
    absent take their (valid) defaults; fields the schema does not know are kept as they are.
    """
    if value.get("schema") != SCHEMA:
        if "schema" not in value:
            raise RecordError("record field 'schema' is missing", "schema")
        raise RecordError(f"record field 'schema': unsupported {value['schema']!r}, expected {SCHEMA!r}", "schema")
    for name in REQUIRED_FIELDS:
        if name not in value:
            raise RecordError(f"record field {name!r} is missing", name)
    if _FIELD_CHECKS is None:  # pragma: no cover - a semconv without per-field rules
        Record.from_dict(value)
        return
    check_of, null_ok = _CHECK_OF, _NULL_OK
    for name, item in value.items():
        check = check_of.get(name)
        if check is not None and (item is not None or name not in null_ok):
            check(name, item)


_ENCODED_HEAD = b'{"schema":"tailpipe.record/1","record_id":"'
_STAMP_AT = len(_ENCODED_HEAD) + 36 + len(b'","timestamp":"')


def _other_day_skipper(day: date, result: CompactResult) -> Callable[[bytes], bool]:
    """A cheap test for lines that are visibly another day's records, so they are never parsed.

    ``Record.encode`` writes ``schema``, ``record_id`` and ``timestamp`` first, so in such a line the
    record's UTC day sits at a fixed offset. The neighbouring partitions hold mostly other days' records,
    and parsing is the main cost, so this cuts the work of a run to about one day's records. Lines of any
    other shape are parsed as usual; lines skipped here are checked by their own day's compaction.
    """
    head, at, sep = _ENCODED_HEAD, _STAMP_AT, b'","timestamp":"'
    day_bytes = day.isoformat().encode("ascii")

    def skip(line: bytes) -> bool:
        if line.startswith(head) and line[at - len(sep) : at] == sep and line[at : at + 10] != day_bytes:
            result.other_days += 1
            return True
        return False

    return skip


def _day_entries(
    pairs: Iterable[tuple[Path, int, bytes, dict[str, Any]]],
    day: date,
    verify: Verifier | None,
    result: CompactResult,
    file_number: int = 0,
) -> Iterator[bytes]:
    """Spill entries for the valid, verified records of ``day``; the rest are counted in ``result``.

    An entry is ``_sort_key`` (timestamp, record_id), then the record's first-seen position (file number and
    rank in the file, fixed-width hex), then the line and a newline.
    """
    rejected: Counter[str] = Counter(result.rejected)
    day_text = day.isoformat()
    rank = 0
    for path, line_no, line, value in pairs:
        try:
            check_record(value)
        except RecordError as exc:
            result.bad_records += 1
            # Name the field, never the value: a malformed record could carry anything (privacy invariant).
            what = f"field {exc.field!r}" if exc.field else "not a record"
            result.note(f"{path} line {line_no}: fails the {SCHEMA} schema ({what}); skipped")
            continue
        stamp = value["timestamp"]
        if stamp[:10] != day_text:  # check_record allows only UTC timestamps, so this is the UTC day
            result.other_days += 1
            continue
        if verify is not None:
            verdict = verify(value)
            if verdict != "ok":
                rejected[str(verdict)] += 1
                result.note(f"record {value['record_id']}: rejected by verification ({verdict}); skipped")
                continue
        rank += 1
        seen = f"{file_number:08x}{rank:010x}".encode("ascii")
        yield b"".join((_sort_key(stamp, value["record_id"]), seen, line, b"\n"))
    result.rejected = dict(rejected)


def _sort_key(stamp: str, record_id: str) -> bytes:
    """'YYYY-MM-DDTHH:MM:SS.ffffff' + record_id for a timestamp check_record accepted (UTC, any precision).

    Fixed width, so plain byte order is (instant, record_id) order; digits past microseconds are dropped,
    as parse_rfc3339 does.
    """
    rest = stamp[19:]
    fraction = rest[1:].rstrip("Zz").split("+", 1)[0] if rest[:1] == "." else ""
    return f"{stamp[:10]}T{stamp[11:19]}.{fraction[:6]:0<6}{record_id}".encode("ascii")


# ---------------------------------------------------------------------------------------------------------
# the work, in forked worker processes when it pays: scan raw files into buckets, then sort each bucket
# ---------------------------------------------------------------------------------------------------------
#
# Each process appends accepted entries to its own bucket files (``<pid>-b<bucket>``), chosen by a hash of
# the record_id, so all copies of a record share a bucket whichever process read them. The first-seen
# position inside each entry makes the result independent of which process read which file when.


@dataclass
class _Job:
    day: date
    verify: Verifier | None
    spill: Path
    buckets: int
    files: dict[int, Any] = field(default_factory=dict)  # this process's open bucket files


_job: _Job | None = None  # set in each worker (and in this process when there are none) by _init


def _init(job: _Job | None) -> None:
    global _job
    _job = job


def _scan_file(item: tuple[int, Path]) -> CompactResult:
    """Scan one raw file into this process's buckets; return its counts and problems."""
    number, path = item
    job = _job
    assert job is not None
    part = CompactResult(day=job.day, path=path)
    records = _iter_day_records([path], part, skip=_other_day_skipper(job.day, part))
    files, count = job.files, job.buckets
    for entry in _day_entries(records, job.day, job.verify, part, number):
        bucket = zlib.crc32(entry[26:_KEY_LEN]) % count
        f = files.get(bucket)
        if f is None:
            f = files[bucket] = open(job.spill / f"{os.getpid()}-b{bucket:04d}", "ab", buffering=64 * 1024)  # noqa: SIM115
        f.write(entry)
    for f in files.values():  # worker processes end without flushing buffers: do it after every file
        f.flush()
    return part


def _close_buckets() -> bool:
    if _job is not None:
        for f in _job.files.values():
            f.close()
        _job.files.clear()
    return True


def _sort_bucket(bucket: int) -> tuple[list[Path], int, int]:
    """De-duplicate and sort one bucket (all processes' parts) into run files: (runs, records, duplicates)."""
    job = _job
    assert job is not None
    parts = sorted(job.spill.glob(f"*-b{bucket:04d}"))
    return _sorted_runs(parts, job.spill / f"run-{bucket:04d}", depth=0)


def _sorted_runs(parts: list[Path], name: Path, depth: int) -> tuple[list[Path], int, int]:
    size = sum(p.stat().st_size for p in parts)
    if size > BUCKET_BYTES and depth < 3:  # too big for memory: split it again with another hash
        count = min(64, size // BUCKET_BYTES + 2)
        paths = [name.with_name(f"{name.name}-{i:02d}") for i in range(count)]
        with ExitStack() as stack:
            outs = [stack.enter_context(open(p, "wb", buffering=256 * 1024)) for p in paths]
            for part in parts:
                with open(part, "rb", buffering=256 * 1024) as f:
                    for entry in f:
                        outs[zlib.crc32(entry[26:_KEY_LEN], depth + 1) % count].write(entry)
                part.unlink()
        runs, records, duplicates = [], 0, 0
        for path in paths:
            r, n, d = _sorted_runs([path], path, depth + 1)
            runs, records, duplicates = runs + r, records + n, duplicates + d
        return runs, records, duplicates
    first: dict[bytes, bytes] = {}
    duplicates = 0
    for part in parts:
        with open(part, "rb", buffering=256 * 1024) as f:
            for entry in f:
                rid = entry[26:_KEY_LEN]
                kept = first.setdefault(rid, entry)
                if kept is not entry:
                    duplicates += 1
                    if entry[_KEY_LEN:_ENTRY_HEAD] < kept[_KEY_LEN:_ENTRY_HEAD]:  # seen earlier
                        first[rid] = entry
        part.unlink()
    if not first:
        return [], 0, duplicates
    entries = sorted(first.values())  # the fixed-width key in front sorts by (timestamp, record_id)
    del first
    run = name.with_name(name.name + ".run")
    with open(run, "wb", buffering=256 * 1024) as f:
        f.writelines(entries)
    return [run], len(entries), duplicates


def _bucket_count(input_bytes: int) -> int:
    """Buckets for this much gzip input, sized so that none needs splitting again.

    Telemetry JSONL compresses 10-30x; guessing high only makes more, smaller buckets, while a bucket over
    ``BUCKET_BYTES`` costs another pass over it.
    """
    return max(1, min(512, (input_bytes * 30) // BUCKET_BYTES + 1))


def _worker_count(workers: int | None, input_bytes: int) -> int:
    if workers is not None:
        return max(1, workers)
    if input_bytes < _PARALLEL_MIN_BYTES or not sys.platform.startswith("linux"):
        return 1
    return max(1, min(4, os.cpu_count() or 1))


class _Workers:
    """Runs the steps in ``workers`` forked processes, or in this process when there is one.

    Forking (no pickling) lets ``verify`` be any callable, a closure included; the pool is created before
    the progress bar starts its thread. Where fork is unavailable everything runs in this process.
    """

    def __init__(self, day: date, verify: Verifier | None, spill: Path, buckets: int, workers: int) -> None:
        self.job = _Job(day, verify, spill, buckets)
        self.workers = workers if "fork" in multiprocessing.get_all_start_methods() else 1
        self.pool: Any = None

    def __enter__(self) -> _Workers:
        if self.workers > 1:
            self.pool = multiprocessing.get_context("fork").Pool(self.workers, initializer=_init, initargs=(self.job,))
        else:
            _init(self.job)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
        else:
            _close_buckets()
        _init(None)

    def map(self, function: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        """``function`` over ``items``, results in order (lazily)."""
        return self.pool.imap(function, items) if self.pool is not None else map(function, items)

    def finish_scan(self) -> None:
        """Close the bucket files (each worker flushed its own after every raw file)."""
        if self.pool is None:
            _close_buckets()


def _merge(runs: list[Path]) -> Iterator[bytes]:
    """The lines of all runs in (timestamp, record_id) order, without their sort keys."""
    with ExitStack() as stack:
        files = [stack.enter_context(open(p, "rb", buffering=64 * 1024)) for p in runs]
        for entry in heapq.merge(*files):
            yield entry[_ENTRY_HEAD:]


# ---------------------------------------------------------------------------------------------------------
# output: deterministic gzip, atomic publish
# ---------------------------------------------------------------------------------------------------------


def _publish(target: Path, lines: Iterable[bytes], advance: Callable[[int], None]) -> tuple[str, int, bool]:
    """Write ``lines`` gzipped to a hidden temporary file beside ``target``, then rename it over ``target``.

    The temporary name starts with '.', so globs for ``telemetry-*.jsonl.gz`` never see it. On any error
    the temporary file is removed and ``target`` is untouched. Returns (sha256, size, changed).
    """
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    digest = sha256()
    size = 0
    try:
        with open(tmp, "xb") as out:
            for member in _gzip_members(lines, advance):
                out.write(member)
                digest.update(member)
                size += len(member)
            out.flush()
            os.fsync(out.fileno())
        new_hash = digest.hexdigest()
        if target.exists() and _file_sha256(target) == new_hash:
            tmp.unlink()
            return new_hash, size, False
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return new_hash, size, True


def _gzip_members(lines: Iterable[bytes], advance: Callable[[int], None]) -> Iterator[bytes]:
    """Gzip members of about ``MEMBER_BYTES`` of whole lines each, compressed on threads, in order.

    zlib's gzip header has mtime 0 and no file name, and members are cut at fixed points, so the same
    lines always give the same bytes. Readers (gzip, DuckDB, Athena) read concatenated members as one.
    """
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        pending: deque[tuple[Future[bytes], int]] = deque()
        for block, count in _blocks(lines):
            pending.append((pool.submit(zlib.compress, block, GZIP_LEVEL, 31), count))
            if len(pending) > 4:
                future, n = pending.popleft()
                yield future.result()
                advance(n)
        while pending:
            future, n = pending.popleft()
            yield future.result()
            advance(n)


def _blocks(lines: Iterable[bytes]) -> Iterator[tuple[bytes, int]]:
    batch: list[bytes] = []
    size = 0
    emitted = False
    for line in lines:
        batch.append(line)
        size += len(line)
        if size >= MEMBER_BYTES:
            yield b"".join(batch), len(batch)
            emitted = True
            batch, size = [], 0
    if batch or not emitted:  # an empty day still gets one (empty) member: a valid gzip file
        yield b"".join(batch), len(batch)


def _remove_leftovers(spill_parent: Path, target: Path) -> None:
    """Delete the spill folders and temporary files of runs that were killed (their process is gone)."""
    candidates = [*spill_parent.glob(".tailpipe-compact-*-*"), *target.parent.glob(f".{target.name}.tmp-*-*")]
    for path in candidates:
        pid = path.name.rsplit("-", 2)[-2]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but is not ours, or the platform cannot tell: leave its files alone
        return True
    return True


def _file_sha256(path: Path) -> str:
    digest = sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_READ_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------------------
# progress
# ---------------------------------------------------------------------------------------------------------


class _NoBar:
    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def advance(self, task: int, n: float) -> None:
        pass


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    """A rich progress bar on stderr when asked for and stderr is a terminal; otherwise a no-op."""
    if not (enabled and sys.stderr.isatty()):
        yield _NoBar()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        yield bar
