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

from .layout import compacted_name, companion_name, raw_partition
from .reader import CORRUPT_GZIP, TRUNCATED, Lines
from .storage import Entry, LocalLake, Storage, file_sha256, open_lake, temp_name

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
    path: Path | str
    """The published file (``<lake>/ai-telemetry/telemetry-YYYYMMDD.jsonl.gz``; an ``s3://`` URL on S3)."""
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
    companion: str | None = None
    """The Parquet companion published by this run (None: unchanged, or not written)."""
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
    companion: bool = True,
) -> CompactResult:
    """Compact the records of ``day`` (UTC) into ``<lake>/ai-telemetry/telemetry-YYYYMMDD.jsonl.gz``.

    Reads the raw partitions of day-1, day and day+1; keeps valid records timestamped on ``day``, the first
    copy of each ``record_id``, sorted by (timestamp, record_id); publishes atomically. ``verify`` (optional)
    gets each record as a dict and returns 'ok' to keep it or a verdict naming why not. ``workers``: processes
    scanning raw files (default: one per CPU, up to 4; 1 scans in this process). ``tmp_dir`` holds the spill
    files (default: a hidden folder inside the lake, so spilling never fills a RAM-backed /tmp; the system
    temporary folder for an S3 lake). ``lake`` is a folder or ``s3://bucket/prefix`` (see ``lake.storage``).
    ``companion`` also publishes the narrow Parquet file `tailpipe report` reads (needs DuckDB; skipped
    without it).
    Raises CompactError when there is nothing to read; problems in the input are counted, not raised.
    """
    started = time.monotonic()
    storage = open_lake(lake)
    key = compacted_name(day)
    target: Path | str = storage.path(key) if isinstance(storage, LocalLake) else storage.url(key)
    result = CompactResult(day=day, path=target)
    entries = _raw_files(storage, day)
    if not entries:
        raise CompactError(
            f"no raw files for {day:%Y-%m-%d} in {storage.location} (looked in {raw_partition(day)} and the "
            "partitions of the days either side); nothing was compacted and any existing compacted file was left "
            "as it is"
        )
    total = sum(e.size for e in entries)
    try:
        if tmp_dir is not None:
            spill_parent = Path(tmp_dir)
        elif isinstance(storage, LocalLake):
            spill_parent = storage.root
        else:
            spill_parent = Path(tempfile.gettempdir())
        staging = storage.staging_dir(key, spill_parent)
        _remove_leftovers(spill_parent, staging, key.rsplit("/", 1)[-1])
        spill = Path(tempfile.mkdtemp(prefix=f".tailpipe-compact-{os.getpid()}-", dir=spill_parent))
    except OSError as exc:
        raise CompactError(
            f"cannot write to {storage.location} (or its spill folder): {exc}; check the path and its permissions"
        ) from exc
    buckets = _bucket_count(total)
    try:
        pool = _Workers(day, verify, spill, buckets, _worker_count(workers, total), storage)
        with pool, _progress(progress) as bar:
            reading = bar.add_task(f"reading {day:%Y-%m-%d}", total=total)
            for entry, part in zip(entries, pool.map(_scan_file, enumerate(e.key for e in entries)), strict=True):
                result.add(part)
                bar.advance(reading, entry.size)
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
            writing = bar.add_task(f"writing {key.rsplit('/', 1)[-1]}", total=result.records)
            tmp, digest, size = _write_gzip(staging, key, _merge(runs), lambda n: bar.advance(writing, n))
            try:
                result.phases["writing"] = time.monotonic() - started - sum(result.phases.values())
                result.changed = _publish(storage, day, key, tmp, digest, spill if companion else None, result)
            finally:
                tmp.unlink(missing_ok=True)
            result.phases["publishing"] = time.monotonic() - started - sum(result.phases.values())
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    result.sha256, result.bytes_written = digest, size
    result.seconds = time.monotonic() - started
    return result


# ---------------------------------------------------------------------------------------------------------
# input: raw files -> (line, record) pairs
# ---------------------------------------------------------------------------------------------------------


def _raw_files(storage: Storage, day: date) -> list[Entry]:
    """The raw objects of day-1..day+1 in first-seen order (partition day, then name); hidden names left out."""
    out: list[Entry] = []
    for d in (day - timedelta(days=1), day, day + timedelta(days=1)):
        prefix = raw_partition(d)
        for entry in storage.list(prefix):
            name = entry.key[len(prefix):]
            if name.endswith(".gz") and "/" not in name and not name.startswith((".", "_")):
                out.append(entry)
    return out


def _iter_day_records(
    storage: Storage, keys: Iterable[str], result: CompactResult, skip: Callable[[bytes], bool] | None = None
) -> Iterator[tuple[str, int, bytes, dict[str, Any]]]:
    """Yield (path, line number, line, parsed JSON object) for every good line of gzip JSONL files, in order.

    This is the seam for ``lake.reader``: problems go to ``result`` (counts and messages) instead of being
    raised. A corrupt gzip stream keeps the lines decoded before the damage; a truncated file keeps its
    complete lines and counts the partial last one as a bad line; multi-member gzip files are read whole.
    ``skip(line)`` true drops a line before it is parsed (the caller counts it).
    """
    for key in keys:
        result.files += 1
        path = storage.url(key)
        for line_no, line in _iter_lines(storage, key, path, result):
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


def _iter_lines(storage: Storage, key: str, path: str, result: CompactResult) -> Iterator[tuple[int, bytes]]:
    """Numbered non-empty lines of one raw gzip object (``lake.reader.Lines``), damage counted in ``result``."""
    try:
        fh = storage.open(key)
    except OSError as exc:
        result.bad_files += 1
        result.note(f"{path}: cannot read it ({exc.strerror or exc}); nothing could be read from it")
        return
    with fh:
        lines = Lines(fh, path, max_line=_MAX_LINE, read_size=_READ_CHUNK, inflate_step=_INFLATE_LIMIT)
        for line_no, line, _complete in lines:
            result.lines += 1
            if line is None:
                result.bad_lines += 1
                result.note(f"{path} line {line_no}: longer than {_MAX_LINE:,} bytes; skipped")
                continue
            if line[-1] in _TRAILING_SPACE:
                line = line.rstrip(b" \t\r")
            yield line_no, line
    damage = lines.damage
    if damage is None and not lines.empty:
        return
    result.bad_files += 1
    if damage is None:
        result.note(f"{path}: empty file, not gzip; nothing could be read from it")
        return
    problem = {
        CORRUPT_GZIP: f"corrupt gzip data ({damage.detail})",
        TRUNCATED: "gzip stream ends early (truncated file?)",
    }.get(damage.reason, f"cannot read it ({damage.detail})")
    line_no = damage.line - 1
    kept = f"kept the {line_no:,} lines before it" if line_no else "nothing could be read from it"
    result.note(f"{path}: {problem}; {kept}")
    if damage.cut:
        result.lines += 1
        result.bad_lines += 1
        result.note(f"{path} line {damage.line}: cut off by the damage above; skipped")


_TRAILING_SPACE = frozenset(b" \t\r")


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
    pairs: Iterable[tuple[str, int, bytes, dict[str, Any]]],
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
    storage: Storage
    files: dict[int, Any] = field(default_factory=dict)  # this process's open bucket files


_job: _Job | None = None  # set in each worker (and in this process when there are none) by _init


def _init(job: _Job | None) -> None:
    global _job
    _job = job


def _scan_file(item: tuple[int, str]) -> CompactResult:
    """Scan one raw object into this process's buckets; return its counts and problems."""
    number, key = item
    job = _job
    assert job is not None
    part = CompactResult(day=job.day, path=job.storage.url(key))
    records = _iter_day_records(job.storage, [key], part, skip=_other_day_skipper(job.day, part))
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

    def __init__(
        self, day: date, verify: Verifier | None, spill: Path, buckets: int, workers: int, storage: Storage
    ) -> None:
        self.job = _Job(day, verify, spill, buckets, storage)
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


def _write_gzip(
    staging: Path, key: str, lines: Iterable[bytes], advance: Callable[[int], None]
) -> tuple[Path, str, int]:
    """Write ``lines`` gzipped to a hidden temporary file in ``staging``: (its path, SHA-256, size).

    The temporary name starts with '.', so globs for ``telemetry-*.jsonl.gz`` never see it; on an error
    it is removed.
    """
    tmp = staging / temp_name(key.rsplit("/", 1)[-1])
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
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, digest.hexdigest(), size


def _publish(
    storage: Storage, day: date, key: str, tmp: Path, digest: str, scratch: Path | None, result: CompactResult
) -> bool:
    """Publish the compacted file (and its Parquet companion when ``scratch`` is given); True if it changed.

    Order matters for readers: the old companion is removed before the new day file replaces the old one,
    and the new companion is published after it, so a companion never describes other bytes than the day
    file beside it (a crash in between leaves no companion, and report reads the JSONL).
    """
    changed = not storage.same(key, digest)
    companion_key = companion_name(day)
    parquet = None
    if scratch is not None and (changed or not storage.exists(companion_key)):
        parquet = _build_companion(tmp, storage.staging_dir(companion_key, scratch), result)
    try:
        if changed:
            storage.delete(companion_key)
            storage.publish(key, tmp, digest)
        if parquet is not None:
            storage.publish(companion_key, parquet, file_sha256(parquet))
            result.companion = storage.url(companion_key)
    finally:
        if parquet is not None:
            parquet.unlink(missing_ok=True)
    return changed


def _build_companion(jsonl: Path, folder: Path, result: CompactResult) -> Path | None:
    """The narrow Parquet copy of a compacted day for `tailpipe report`; None (with a note) if it cannot be made."""
    try:
        from .report import write_companion
    except ImportError:  # pragma: no cover - report imports nothing optional at module level
        return None
    out = folder / temp_name("companion.parquet")
    try:
        if write_companion(jsonl, out):
            return out
    except Exception as exc:  # the JSONL is the source of truth: a missing companion only makes report slower
        result.note(f"Parquet companion not written ({type(exc).__name__}); tailpipe report reads the JSONL instead")
    out.unlink(missing_ok=True)
    return None


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


def _remove_leftovers(spill_parent: Path, staging: Path, name: str) -> None:
    """Delete the spill folders and temporary files of runs that were killed (their process is gone)."""
    candidates = [*spill_parent.glob(".tailpipe-compact-*-*"), *staging.glob(f".{name}.tmp-*-*")]
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
