"""The default sink: records into a local lake folder, in the same shape Firehose delivers to S3.

Records are queued by the caller (never blocking it; a full queue makes the caller write synchronously
rather than lose data) and a background thread encodes them into gzip JSON lines. Each file is written
under a temporary dot-name in the raw partition of its opening time (UTC) and renamed to its final
Firehose-style name when it is rolled: after `roll_seconds`, at `roll_bytes` of uncompressed data, at the
UTC day boundary, on `flush()` and on `close()` (also run at exit). Readers skip dotfiles, so they never see
half a file; the rename is atomic.

A process that dies leaves its temp file behind. The gzip stream is sync-flushed at least every second, so
everything up to the last flush is decodable; the next sink to start on the lake (or
`recover_temp_files()`) salvages the complete lines into a final file. A live writer holds an exclusive
`flock` on its temp file, so recovery never touches a file another process is still writing.

Delivery is at-least-once, like Firehose: records carry `record_id` and compaction removes duplicates.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import threading
import time
import weakref
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tailpipe_ai.lake.layout import LOCAL_STREAM, RAW_PREFIX, default_lake, local_path, raw_object_name, raw_partition
from tailpipe_ai.lake.reader import ReadStats, iter_lines
from tailpipe_ai.semconv import Record

from .durable import fsync_dir as _fsync_dir
from .lines import Signer, fields_line, record_line

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: recovery falls back to the file's age
    fcntl = None  # type: ignore[assignment]

try:
    # ISA-L's deflate (python-isal): the same gzip format at a tenth of zlib's CPU on record lines, and
    # files a quarter smaller than zlib level 3 (measured in benchmarks/README.md). Compression was a sixth of the
    # CPU the proxy spends per call.
    from isal import isal_zlib as _deflate
except ImportError:  # pragma: no cover - a platform without an isal wheel: the standard library's zlib
    _deflate = None

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

TEMP_SUFFIX = ".tmp"
_RECOVERING_SUFFIX = ".recovering"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _lock(fd: int) -> bool:
    """Take the exclusive advisory lock that marks a temp file as live; False if another holder has it."""
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def gzip_compressor(level: int) -> Any:
    """A gzip-format compressor at zlib's `level` (1 fastest .. 9 smallest): ISA-L's when installed, whose
    four levels map 1-3 -> 1, 4-6 -> 2, 7-9 -> 3 (ISA-L 1 already compresses record lines better than zlib 3),
    else zlib's own. Both write standard gzip that every reader (gzip, DuckDB, Athena) decodes."""
    if _deflate is not None:
        return _deflate.compressobj(min(3, (max(1, level) + 2) // 3), _deflate.DEFLATED, 31)
    return zlib.compressobj(level, zlib.DEFLATED, 31)


class _GzipWriter:
    """One gzip member written straight to a file descriptor.

    Lines are gathered (by reference) and compressed once `COMPRESS_BYTES` have come, or at a sync or the
    end: each call into the compressor costs about a microsecond of its own, as much as 5 lines' worth of
    compressing, and a busy proxy hands over a few lines at a time. Nothing is lost by it: what the
    compressor holds reaches the file only at the next sync flush anyway. Not a file buffer either: a forked
    child that drops its copy writes nothing."""

    COMPRESS_BYTES = 64 * 1024

    def __init__(self, path: Path, level: int) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
        self._z = gzip_compressor(level)
        self._lines: list[bytes] = []
        self._lines_len = 0
        self.bytes = 0  # uncompressed
        self.records = 0
        self.unsynced = False

    def write(self, lines: list[bytes], size: int) -> None:
        """`lines` (one record each, `size` bytes in all) go into the file at the next compression."""
        self._lines += lines
        self._lines_len += size
        self.bytes += size
        self.records += len(lines)
        self.unsynced = True
        if self._lines_len >= self.COMPRESS_BYTES:
            self._compress()

    def _compress(self) -> None:
        if self._lines:
            data = b"".join(self._lines)
            self._lines, self._lines_len = [], 0
            self._out(self._z.compress(data))

    def sync(self) -> None:
        """Make everything written so far decodable from the file (a crash then loses nothing written)."""
        self._compress()
        self._out(self._z.flush(zlib.Z_SYNC_FLUSH))
        self.unsynced = False

    def finish(self) -> None:
        """End the member (trailer with CRC and length) and force it to disk; the fd stays open."""
        self._compress()
        self._out(self._z.flush(zlib.Z_FINISH))
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def _out(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]


def _publish(writer: _GzipWriter, final: Path) -> None:
    """Finish `writer` and rename its temp file to `final` atomically (while still holding the lock)."""
    writer.finish()
    if fcntl is None:  # pragma: no cover - Windows cannot rename an open file
        writer.close()
    os.replace(writer.path, final)
    writer.close()
    _fsync_dir(final.parent)


# ---------------------------------------------------------------------------------------------------------
# recovery of temp files left by a process that stopped without closing its sink
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recovered:
    """One leftover temp file and what was salvaged from it."""

    temp: Path
    final: Path | None  # None when nothing was salvageable
    lines: int
    complete: bool  # the gzip stream was whole: nothing was lost
    partial_line: bool  # an incomplete last line was dropped

    @property
    def tail_lost(self) -> bool:
        return not self.complete or self.partial_line


def recover_temp_files(lake: str | os.PathLike[str], *, stale_seconds: float = 600.0) -> list[Recovered]:
    """Salvage the complete lines of every abandoned temp file in the lake's raw partitions.

    Files still being written (locked by a live process) are left alone. Without `flock` (Windows) a temp
    file counts as abandoned when unmodified for `stale_seconds`. Safe to run from several processes.
    """
    raw = local_path(lake) / RAW_PREFIX
    found: list[Recovered] = []
    for folder in _partitions(raw):
        try:
            names = [e.name for e in os.scandir(folder) if e.name.startswith(".")]
        except OSError:
            continue
        present = set(names)
        for name in names:
            path = folder / name
            if name.endswith(_RECOVERING_SUFFIX) and name[: -len(_RECOVERING_SUFFIX)] + TEMP_SUFFIX not in present:
                path.unlink(missing_ok=True)  # its temp file is gone: the salvage was published or empty
            elif name.endswith(".gz" + TEMP_SUFFIX):
                try:
                    result = _recover_one(path, stale_seconds)
                except OSError as exc:
                    log.warning("tailpipe: could not recover lake temp file %s (%s)", path, exc.strerror or exc)
                    continue
                if result is not None:
                    found.append(result)
    return found


def _partitions(raw: Path) -> list[Path]:
    return sorted(p for p in raw.glob("year=*/month=*/day=*") if p.is_dir())


def _recover_one(temp: Path, stale_seconds: float) -> Recovered | None:
    final = temp.with_name(temp.name[1 : -len(TEMP_SUFFIX)])
    try:
        fd = os.open(temp, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        return None
    try:
        if not _lock(fd):
            return None  # a live writer
        size = os.fstat(fd).st_size
        if fcntl is None and time.time() - os.fstat(fd).st_mtime < stale_seconds:  # pragma: no cover
            return None
        if final.exists():  # published already; the process stopped before removing the temp file
            temp.unlink(missing_ok=True)
            return None
        stats = ReadStats(max_examples=0)
        staging = temp.with_name(f".{final.name}{_RECOVERING_SUFFIX}")
        staging.unlink(missing_ok=True)
        writer = _GzipWriter(staging, 6)
        partial = False
        try:
            for _lineno, line, complete in iter_lines(temp, stats):
                if complete:
                    writer.write([line + b"\n"], len(line) + 1)
                else:
                    partial = True
            if writer.records:
                _publish(writer, final)
        finally:
            writer.close()
        if not writer.records:
            staging.unlink(missing_ok=True)
        temp.unlink(missing_ok=True)
    finally:
        os.close(fd)
    # An empty temp file is unfinished too: the writer stopped before its first sync.
    complete = size > 0 and not stats.skipped
    result = Recovered(temp, final if writer.records else None, writer.records, complete, partial)
    if result.tail_lost:
        how = "it was cut short, so records not yet flushed to it when its writer stopped are lost"
    else:
        how = "it was complete, nothing was lost"
    log.warning("tailpipe: recovered %d records from unfinished lake file %s; %s", result.lines, temp, how)
    return result


# ---------------------------------------------------------------------------------------------------------
# the sink
# ---------------------------------------------------------------------------------------------------------

_STOP = object()


class _Flush:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class LocalLakeSink:
    """Writes records into `<lake>/ai-telemetry-raw/year=/month=/day=/` as Firehose-shaped gzip JSON lines.

    `signer`, when given, signs every record as it is written (a `signing.RecordSigner`, or a function
    returning a record's dict signed; see `lines.record_line`). `clock` returns the current aware
    datetime (tests).
    `compresslevel` is on zlib's scale, 3 by default. With ISA-L (a dependency) that is its level 1: about
    ten times zlib's speed, files a quarter smaller than zlib level 3 (a tenth larger than level 6). On zlib
    alone, level 3 is as fast as level 1 and ~13% larger than level 6, a fair trade for raw files that
    compaction rewrites anyway. `recover=False` skips the start-up salvage of leftover temp files.
    Counters: `written` (records in files), `unencodable` (records that could not be encoded or signed),
    `lost` (records that could not be written: disk full, permissions), `files` (files published).
    Do not change a record after passing it to `write`: it is encoded later, on the writer thread
    (`write_fields` encodes and writes in the caller's thread).
    """

    POLL_SECONDS = 1.0  # how often an idle writer checks whether its file is due to roll
    SYNC_SECONDS = 1.0  # the longest span of written records a crash can lose
    MAX_BATCH = 2000

    def __init__(
        self,
        lake: str | os.PathLike[str] | None = None,
        *,
        roll_seconds: float = 60,
        roll_bytes: int = 5 * 1024 * 1024,
        max_queue: int = 100_000,
        signer: Signer | None = None,
        clock: Clock | None = None,
        compresslevel: int = 3,
        stream: str = LOCAL_STREAM,
        recover: bool = True,
    ) -> None:
        lake = default_lake() if lake is None else lake
        if os.fspath(lake).startswith("s3://"):
            raise ValueError(f"LocalLakeSink writes to a local folder, not {os.fspath(lake)!r}; use the Firehose sink")
        if roll_seconds <= 0 or roll_bytes <= 0:
            raise ValueError("LocalLakeSink: roll_seconds and roll_bytes must be > 0")
        self.root = local_path(lake)
        self.roll_seconds = roll_seconds
        self.roll_bytes = roll_bytes
        self._max_queue = max_queue
        self._signer = signer
        self._clock = clock or _utcnow
        self._level = compresslevel
        self._stream = stream
        self.written = 0
        self.unencodable = 0
        self.lost = 0
        self.files = 0
        self._closed = False
        self._io_error_logged = False
        self._recover = recover
        self._start()
        atexit.register(self.close)
        _LIVE.add(self)

    def _start(self) -> None:
        """Fresh state and writer thread (at construction, and in a forked child)."""
        self._lock = threading.Lock()
        self._queue: queue.Queue[object] = queue.Queue(maxsize=self._max_queue)
        self._writer: _GzipWriter | None = None
        self._final: Path | None = None
        self._opened: datetime | None = None
        self._opened_mono = 0.0
        self._synced_mono = 0.0
        self._thread = threading.Thread(target=self._run, name="tailpipe-lake-sink", daemon=True)
        self._thread.start()

    # -- caller side -------------------------------------------------------------------------------------

    def write(self, record: Record) -> None:
        """Queue a record; never blocks on I/O unless the queue is full, never raises."""
        self._enqueue(record, [record])

    def write_many(self, records: list[Record]) -> None:
        """Queue a batch of records as one item: one queue operation and one wake-up of the writer for
        the whole batch (the proxy's telemetry thread writes what it recorded since its last batch)."""
        if records:
            batch = list(records)
            self._enqueue(batch, batch)

    def write_fields(self, records: list[dict[str, Any]]) -> None:
        """Encode and append a batch of records given in their dict form (`records.record_fields`), in the
        calling thread; never raises.

        For a caller that is itself a batching background thread (the proxy's telemetry thread): its dicts
        are encoded while still in cache and no second hand-off wakes the writer thread, which kept the
        proxy ~4% below the pass-through floor's throughput (benchmarks/README.md, proxy). Each dict is
        encoded with `lines.fields_line`, under the same checks as `write`; the writer thread still rolls
        and syncs the files on time."""
        if records:
            self._write_now(records)

    def _enqueue(self, item: Record | list[Any], records: list[Any]) -> None:
        """A full queue (or a closed sink) makes the caller write synchronously rather than lose data."""
        if not self._closed:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                pass
        self._write_now(records)

    def _write_now(self, records: list[Any]) -> None:
        """Encode and append in the calling thread (published at once when the sink is closed); never raises."""
        try:
            self._write_records(records, publish=self._closed)
        except Exception as exc:  # pragma: no cover - a sink must never break the caller
            log.warning("tailpipe: lake sink failed to write records (%s)", type(exc).__name__)

    def flush(self, timeout: float | None = None) -> bool:
        """Publish everything written so far as final files; False if that did not finish in `timeout`."""
        if self._closed or not self._thread.is_alive():
            return True
        marker = _Flush()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self._queue.put(marker, timeout=timeout)
        except queue.Full:
            return False
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return marker.done.wait(left)

    def close(self) -> None:
        """Publish everything and stop the writer thread (idempotent; also registered with atexit)."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        _LIVE.discard(self)
        if self._thread.is_alive():
            with contextlib.suppress(queue.Full):  # a stuck writer: give up after the join below
                self._queue.put(_STOP, timeout=5)
            self._thread.join(timeout=10)
        with self._lock:  # synchronous writes after the thread stopped, if any
            self._roll()

    # -- writer side -------------------------------------------------------------------------------------

    def _run(self) -> None:
        if self._recover:
            self._recover = False  # once per lake per process; not again in a forked child
            try:
                recover_temp_files(self.root)
            except Exception as exc:  # pragma: no cover - recovery must not stop the writer
                log.warning("tailpipe: lake temp-file recovery failed (%s)", type(exc).__name__)
        get = self._queue.get
        while True:
            try:
                item = get(timeout=self.POLL_SECONDS)
            except queue.Empty:
                self._tick()
                continue
            items = [item]
            while len(items) < self.MAX_BATCH and item is not _STOP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                items.append(item)
            records: list[Record] = []
            marked = False  # a flush or stop marker came with them
            for i in items:
                if type(i) is list:  # a batch from write_many
                    records.extend(i)
                elif i is _STOP or type(i) is _Flush:
                    marked = True
                else:
                    records.append(i)  # type: ignore[arg-type]
            try:
                if records:
                    self._write_records(records)
                if marked:
                    with self._lock:
                        self._roll()
            except Exception as exc:  # pragma: no cover - keep the writer alive whatever happens
                log.warning("tailpipe: lake sink writer error (%s)", type(exc).__name__)
            for i in items:
                if isinstance(i, _Flush):
                    i.done.set()
                self._queue.task_done()
            if items[-1] is _STOP:
                return
            self._tick()

    def _write_records(self, records: list[Record | dict[str, Any]], publish: bool = False) -> None:
        """Encode (outside the lock: the costly part) then append under the lock."""
        signer = self._signer
        lines: list[bytes] = []
        errors: list[Exception] = []
        for record in records:
            try:
                lines.append(fields_line(record, signer) if type(record) is dict else record_line(record, signer))
            except Exception as exc:  # one bad record must not stop the others
                errors.append(exc)
        with self._lock:
            if errors:
                self._count_unencodable(errors)
            if not lines:
                return
            before = self.written
            try:
                self._append(lines)
                if publish:
                    self._roll()
            except OSError as exc:
                self._io_failed(exc, len(lines) - (self.written - before))

    def _count_unencodable(self, errors: list[Any]) -> None:
        """Count records that could not be encoded; log the first one only, by type and field, no content."""
        if not self.unencodable:
            where = getattr(errors[0], "field", None)
            log.warning(
                "tailpipe: dropped a record that cannot be encoded (%s%s); further ones are only counted in "
                "LocalLakeSink.unencodable",
                type(errors[0]).__name__,
                f" in field {where!r}" if where else "",
            )
        self.unencodable += len(errors)

    def _append(self, lines: list[bytes]) -> None:
        """Write lines, rolling first when the open file is due and whenever the next line would overflow."""
        now = self._clock()
        if self._writer is not None and self._due(now):
            self._roll()
        pending: list[bytes] = []
        size = 0
        for line in lines:
            n = len(line)
            if self._writer is None:
                self._open(now)
            elif (filled := self._writer.bytes + size) > 0 and filled + n > self.roll_bytes:
                self._put(pending, size)  # (a line longer than roll_bytes gets a file of its own)
                pending, size = [], 0
                self._roll()
                self._open(now)
            pending.append(line)
            size += n
        self._put(pending, size)
        if self._writer is not None and self._writer.bytes >= self.roll_bytes:
            self._roll()

    def _put(self, pending: list[bytes], size: int) -> None:
        if pending and self._writer is not None:
            self._writer.write(pending, size)
            self.written += len(pending)

    def _due(self, now: datetime) -> bool:
        opened = self._opened
        assert opened is not None
        return (
            (now - opened).total_seconds() >= self.roll_seconds
            or time.monotonic() - self._opened_mono >= self.roll_seconds
            or now.astimezone(timezone.utc).date() != opened.date()
        )

    def _open(self, now: datetime) -> None:
        now = now.astimezone(timezone.utc)
        folder = self.root / raw_partition(now.date())
        folder.mkdir(parents=True, exist_ok=True)
        name = raw_object_name(now, self._stream)
        writer = _GzipWriter(folder / f".{name}{TEMP_SUFFIX}", self._level)
        if not _lock(writer.fd):  # pragma: no cover - a fresh uuid name: nobody else can hold it
            writer.close()
            raise OSError(f"could not lock new lake file {writer.path}")
        self._writer, self._final, self._opened = writer, folder / name, now
        self._opened_mono = self._synced_mono = time.monotonic()

    def _roll(self) -> None:
        """Publish the open file, if any (caller holds the lock)."""
        writer, final = self._writer, self._final
        if writer is None or final is None:
            return
        self._writer = self._final = self._opened = None
        try:
            _publish(writer, final)
            self.files += 1
            self._io_error_logged = False
        except OSError as exc:
            self._abandon(writer)
            self._io_failed(exc, 0)

    def _tick(self) -> None:
        """Idle housekeeping: roll a file that is due; sync-flush written data so a crash cannot lose it."""
        with self._lock:
            if self._writer is None:
                return
            try:
                if self._due(self._clock()):
                    self._roll()
                elif self._writer.unsynced and time.monotonic() - self._synced_mono >= self.SYNC_SECONDS:
                    self._writer.sync()
                    self._synced_mono = time.monotonic()
            except OSError as exc:
                self._io_failed(exc, 0)

    def _io_failed(self, exc: OSError, records: int) -> None:
        """Count and log a write failure (once per run of failures); salvage the open file if any."""
        self.lost += records
        if self._writer is not None:
            writer, self._writer, self._final, self._opened = self._writer, None, None, None
            self._abandon(writer)
        if not self._io_error_logged:
            self._io_error_logged = True
            log.warning(
                "tailpipe: could not write records to the lake at %s (%s); check free space and permissions. "
                "Further failures are counted in LocalLakeSink.lost",
                self.root,
                exc.strerror or type(exc).__name__,
            )

    def _abandon(self, writer: _GzipWriter) -> None:
        """Give up on a file after an I/O error: salvage what reached it, or leave it for the next start."""
        with contextlib.suppress(OSError):
            writer.sync()
        writer.close()
        with contextlib.suppress(OSError):  # else it is left for the next start's recovery
            _recover_one(writer.path, 0.0)

    def _after_fork_in_child(self) -> None:
        """The child gets its own queue, thread and files; the parent's open file stays the parent's."""
        if self._writer is not None:
            self._writer.close()  # our copy of the descriptor only; nothing is written
        self._recover = False
        if not self._closed:
            self._start()


_LIVE: weakref.WeakSet[LocalLakeSink] = weakref.WeakSet()


def _reinit_after_fork() -> None:
    for sink in list(_LIVE):
        sink._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
