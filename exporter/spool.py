"""A durable, bounded, append-only FIFO of encoded records on disk: the Firehose sink's backlog.

Why it looks like this:

* Records are JSON lines (one record per line, newline-terminated) appended to numbered segment files
  (``seg-000000000001.jsonl``, ...). Appending whole lines with one ``write`` keeps every segment a valid
  JSON-lines file except, after a crash, a half-written last line: recovery truncates it (counted, logged).
* Reading never removes anything. `read()` hands out the oldest unacknowledged lines; `ack()` advances a
  cursor past them (persisted in ``cursor``) and deletes segments that are fully acknowledged. A crash
  between sending and acknowledging re-sends that batch: delivery is at-least-once, and records carry
  ``record_id`` so compaction removes the duplicates.
* ``fsync_seconds`` is the durability policy: 0 syncs after every append (safest, slowest), N > 0 syncs at
  most every N seconds and on close (a crash of the machine, not of the process, can lose the last N
  seconds), None leaves it to the OS.
* The spool is bounded by ``max_bytes``. When an append would exceed it, the **oldest segments are
  dropped**, with a warning and the count in `dropped`: during a long outage the most recent records are
  kept. One line larger than the whole bound is refused (counted the same way).
* Records that can never be delivered (larger than Firehose accepts) go to ``dead-letter.jsonl`` beside the
  segments, bounded by ``max_dead_letter_bytes``; they are kept for inspection, never replayed.
* One process owns a spool folder at a time (an exclusive ``flock`` on ``.lock``); a second one gets
  `SpoolBusy` and should use another folder.

Log lines and errors name files and counts, never a record's content.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .durable import fsync_dir as _fsync_dir

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process lock
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

_SEGMENT_RE = re.compile(r"^seg-(\d{12})\.jsonl$")
CURSOR_NAME = "cursor"
DEAD_LETTER_NAME = "dead-letter.jsonl"
LOCK_NAME = ".lock"
_READ_CHUNK = 1 << 20


class SpoolBusy(RuntimeError):
    """Another live process owns this spool folder."""


@dataclass(frozen=True)
class Batch:
    """Consecutive unacknowledged lines of one segment, and where they end (for `Spool.ack`)."""

    lines: list[bytes]
    segment: int
    end: int

    @property
    def size(self) -> int:
        return sum(len(line) for line in self.lines)


def _segment_name(seq: int) -> str:
    return f"seg-{seq:012d}.jsonl"


class Spool:
    """Durable FIFO of newline-terminated byte lines in ``folder`` (see the module docstring).

    Thread-safe: callers may append while a background thread reads and acknowledges.
    Counters: `pending` (lines not yet acknowledged), `dropped` (lines dropped to stay under `max_bytes`),
    `truncated` (half-written lines removed at recovery), `dead_lettered`, `dead_letter_dropped`.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        max_bytes: int = 256 * 1024 * 1024,
        segment_bytes: int = 8 * 1024 * 1024,
        fsync_seconds: float | None = 1.0,
        max_dead_letter_bytes: int = 64 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_bytes <= 0 or segment_bytes <= 0:
            raise ValueError("Spool: max_bytes and segment_bytes must be > 0")
        if fsync_seconds is not None and fsync_seconds < 0:
            raise ValueError("Spool: fsync_seconds must be >= 0, or None to leave syncing to the OS")
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.segment_bytes = min(segment_bytes, max_bytes)
        self.fsync_seconds = fsync_seconds
        self.max_dead_letter_bytes = max_dead_letter_bytes
        self._clock = clock
        self._lock = threading.RLock()
        self.pending = 0
        self.dropped = 0
        self.truncated = 0
        self.dead_lettered = 0
        self.dead_letter_dropped = 0
        self._full_logged = False
        self._tail_fd = -1
        self._tail_seq = 0
        self._tail_size = 0
        self._unsynced = False
        self._dir_unsynced = False
        self._synced_at = clock()
        self._closed = False
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._take_lock()
        try:
            self._recover()
        except BaseException:
            self._release_lock()
            raise

    # -- opening -----------------------------------------------------------------------------------------

    def _take_lock(self) -> int:
        fd = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise SpoolBusy(
                    f"the spool folder {self.folder} is in use by another process; give each process its own "
                    "spool folder (TAILPIPE_SPOOL_DIR)"
                ) from None
        return fd

    def _release_lock(self) -> None:
        if self._lock_fd >= 0:
            fd, self._lock_fd = self._lock_fd, -1
            os.close(fd)  # closing the descriptor releases the flock

    def _recover(self) -> None:
        """Find the segments, drop a half-written tail line, restore the cursor, count what is pending."""
        self._sizes: dict[int, int] = {}
        for entry in os.scandir(self.folder):
            m = _SEGMENT_RE.match(entry.name)
            if m:
                self._sizes[int(m.group(1))] = entry.stat().st_size
        for seq in sorted(self._sizes):
            self._sizes[seq] = self._drop_partial_tail(seq, self._sizes[seq])
        self._head_seq, self._head_off = self._read_cursor()
        self.pending = sum(
            self._count_lines(seq, self._head_off if seq == self._head_seq else 0) for seq in self._sizes
        )
        self._tail_seq = max(self._sizes, default=0)
        # Always write to a fresh segment: recovered segments stay read-only.

    def _drop_partial_tail(self, seq: int, size: int) -> int:
        if size == 0:
            return 0
        path = self.folder / _segment_name(seq)
        with open(path, "rb+") as fh:
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return size
            keep = self._last_newline_end(fh, size)
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
        self.truncated += 1
        log.warning(
            "tailpipe: spool segment %s ended in a half-written record (its writer stopped mid-write); "
            "dropped that record (%d bytes), kept the %d bytes before it",
            path,
            size - keep,
            keep,
        )
        return keep

    @staticmethod
    def _last_newline_end(fh, size: int) -> int:
        pos = size
        while pos > 0:
            start = max(0, pos - _READ_CHUNK)
            fh.seek(start)
            chunk = fh.read(pos - start)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                return start + idx + 1
            pos = start
        return 0

    def _read_cursor(self) -> tuple[int, int]:
        first = min(self._sizes, default=0)
        try:
            text = (self.folder / CURSOR_NAME).read_text(encoding="ascii").split()
            seq, off = int(text[0]), int(text[1])
        except (OSError, ValueError, IndexError, UnicodeDecodeError):
            return first, 0
        if seq not in self._sizes:  # its segment was acknowledged and deleted: start at the next one
            later = [s for s in self._sizes if s > seq]
            return (min(later), 0) if later else (first, 0)
        for older in [s for s in self._sizes if s < seq]:  # left by a crash between cursor write and unlink
            self._unlink_segment(older)
        if not 0 <= off <= self._sizes[seq] or (off and not self._ends_line(seq, off)):
            log.warning(
                "tailpipe: spool cursor in %s was damaged; replaying segment %d from its start",
                self.folder,
                seq,
            )
            return seq, 0
        return seq, off

    def _ends_line(self, seq: int, off: int) -> bool:
        with open(self.folder / _segment_name(seq), "rb") as fh:
            fh.seek(off - 1)
            return fh.read(1) == b"\n"

    def _count_lines(self, seq: int, start: int) -> int:
        count = 0
        with open(self.folder / _segment_name(seq), "rb") as fh:
            fh.seek(start)
            while chunk := fh.read(_READ_CHUNK):
                count += chunk.count(b"\n")
        return count

    # -- writing -----------------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Bytes held in segment files (acknowledged parts of the head segment included)."""
        with self._lock:
            return sum(self._sizes.values())

    def __len__(self) -> int:
        return self.pending

    def empty(self) -> bool:
        return self.pending == 0

    def append(self, lines: list[bytes], *, sync: bool = True) -> int:
        """Append newline-terminated lines in order; returns how many were stored (refused ones are counted
        in `dropped`). `sync=False` never waits for the disk (callers on a request path); the fsync policy
        is then applied by the next `sync_due()`. Raises OSError when the disk refuses the write."""
        if not lines:
            return 0
        with self._lock:
            if self._closed:
                raise ValueError(f"the spool in {self.folder} is closed")
            stored = 0
            start = 0
            while start < len(lines):
                if self._tail_fd < 0 or self._tail_size >= self.segment_bytes:
                    self._open_tail()
                room = self.segment_bytes - self._tail_size
                end, size = start, 0
                while end < len(lines) and (end == start or size + len(lines[end]) <= room):
                    size += len(lines[end])
                    end += 1
                chunk = lines[start:end]
                if size > self.max_bytes:  # a single line larger than the whole spool
                    self._count_dropped(len(chunk), "a record is larger than the whole spool")
                    start = end
                    continue
                self._make_room(size)
                self._write_tail(b"".join(chunk))
                self.pending += len(chunk)
                stored += len(chunk)
                start = end
        if sync:
            self.sync_due()
        return stored

    def _open_tail(self) -> None:
        if self._tail_fd >= 0:
            self._sync_tail()
            os.close(self._tail_fd)
        self._tail_seq += 1
        path = self.folder / _segment_name(self._tail_seq)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_BINARY", 0)
        self._tail_fd = os.open(path, flags, 0o600)
        self._tail_size = 0
        self._sizes[self._tail_seq] = 0
        if len(self._sizes) == 1:
            self._head_seq, self._head_off = self._tail_seq, 0
        self._dir_unsynced = True

    def _write_tail(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._tail_fd, view) :]
        self._tail_size += len(data)
        self._sizes[self._tail_seq] = self._tail_size
        self._unsynced = True

    def _make_room(self, incoming: int) -> None:
        """Drop the oldest segments until `incoming` more bytes fit under max_bytes (the policy when full)."""
        while sum(self._sizes.values()) + incoming > self.max_bytes:
            oldest = min(self._sizes)
            if oldest == self._tail_seq:  # only the open segment is left: start another, then drop this one
                self._open_tail()
                continue
            lost = self._count_lines(oldest, self._head_off if oldest == self._head_seq else 0)
            self._unlink_segment(oldest)
            self.pending -= lost
            if oldest == self._head_seq:
                self._head_seq, self._head_off = min(self._sizes), 0
                self._write_cursor()
            self._count_dropped(lost, f"the spool reached its limit of {self.max_bytes} bytes")

    def _count_dropped(self, n: int, why: str) -> None:
        self.dropped += n
        if not self._full_logged:
            self._full_logged = True
            log.warning(
                "tailpipe: dropped %d of the oldest unsent records from the spool in %s: %s. Further drops are "
                "counted in Spool.dropped; raise the limit (TAILPIPE_SPOOL_MAX_MB) or restore delivery",
                n,
                self.folder,
                why,
            )

    def _unlink_segment(self, seq: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.folder / _segment_name(seq))
        self._sizes.pop(seq, None)

    def sync_due(self) -> None:
        """Apply the fsync policy: sync if `fsync_seconds` have passed since the last sync (0: always)."""
        if self.fsync_seconds is not None and self._clock() - self._synced_at >= self.fsync_seconds:
            self.sync()

    def sync(self) -> None:
        """Force appended lines (and new segment names) to disk now. The fsync runs outside the lock, on a
        duplicate descriptor, so appends from other threads never wait for the disk."""
        with self._lock:
            if self._closed or not (self._unsynced or self._dir_unsynced):
                return
            fd = os.dup(self._tail_fd) if self._tail_fd >= 0 and self._unsynced else -1
            folder_too, self._unsynced, self._dir_unsynced = self._dir_unsynced, False, False
            self._synced_at = self._clock()
        try:
            if fd >= 0:
                os.fsync(fd)
            if folder_too:
                _fsync_dir(self.folder)
        finally:
            if fd >= 0:
                os.close(fd)

    def _sync_tail(self) -> None:
        """Sync under the lock (closing and rolling segments)."""
        if self._tail_fd >= 0 and self._unsynced:
            os.fsync(self._tail_fd)
        if self._dir_unsynced:
            _fsync_dir(self.folder)
        self._unsynced = self._dir_unsynced = False
        self._synced_at = self._clock()

    # -- reading -----------------------------------------------------------------------------------------

    def read(self, max_records: int, max_bytes: int) -> Batch | None:
        """The oldest unacknowledged lines (at most `max_records` and `max_bytes`, but always at least one
        line), all from one segment; None when nothing is pending. Does not remove them: see `ack`."""
        with self._lock:
            while self.pending > 0 and self._sizes:
                seq, off = self._head_seq, self._head_off
                size = self._sizes.get(seq)
                if size is None or off >= size:
                    if not self._advance_head():
                        return None
                    continue
                with open(self.folder / _segment_name(seq), "rb") as fh:
                    fh.seek(off)
                    data = fh.read(min(size - off, max(max_bytes, 1)))
                    lines = data.split(b"\n")[:-1]  # the last piece is empty or incomplete
                    if not lines:  # one line longer than max_bytes: read it whole
                        fh.seek(off)
                        line = fh.readline()
                        if not line.endswith(b"\n"):
                            return self._skip_damaged(seq, size)
                        return Batch([line], seq, off + len(line))
                out: list[bytes] = []
                total = 0
                for raw in lines[:max_records]:
                    line = raw + b"\n"
                    if out and total + len(line) > max_bytes:
                        break
                    out.append(line)
                    total += len(line)
                return Batch(out, seq, off + total)
            return None

    def _advance_head(self) -> bool:
        later = [s for s in self._sizes if s > self._head_seq]
        if not later:
            return False
        if self._head_seq in self._sizes and self._head_seq != self._tail_seq:
            self._unlink_segment(self._head_seq)
        self._head_seq, self._head_off = min(later), 0
        return True

    def _skip_damaged(self, seq: int, size: int) -> None:  # pragma: no cover - appends write whole lines
        log.warning("tailpipe: spool segment %d in %s has an unterminated line; skipping its rest", seq, self.folder)
        self._head_off = size
        return None

    def ack(self, batch: Batch) -> None:
        """The lines of `batch` were delivered: move the cursor past them; delete segments fully done."""
        with self._lock:
            if self._closed or batch.segment != self._head_seq or batch.end <= self._head_off:
                return  # its segment was dropped meanwhile (spool full), or acknowledged already
            self.pending -= len(batch.lines)
            self._head_off = batch.end
            if self._head_off >= self._sizes.get(self._head_seq, 0):
                if self._head_seq == self._tail_seq:
                    if self._tail_fd >= 0:  # everything delivered: start afresh on the next append
                        os.close(self._tail_fd)
                        self._tail_fd = -1
                    self._unlink_segment(self._head_seq)
                    self._head_off = 0
                    self._head_seq = self._tail_seq + 1
                else:
                    self._advance_head()
            self._write_cursor()

    def _write_cursor(self) -> None:
        tmp = self.folder / f".{CURSOR_NAME}.tmp"
        tmp.write_text(f"{self._head_seq} {self._head_off}\n", encoding="ascii")
        os.replace(tmp, self.folder / CURSOR_NAME)

    # -- dead letters ------------------------------------------------------------------------------------

    def dead_letter(self, lines: list[bytes]) -> int:
        """Keep records that can never be delivered in ``dead-letter.jsonl`` (bounded); returns how many."""
        with self._lock:
            path = self.folder / DEAD_LETTER_NAME
            try:
                used = path.stat().st_size
            except FileNotFoundError:
                used = 0
            kept = []
            for line in lines:
                if used + len(line) > self.max_dead_letter_bytes:
                    self.dead_letter_dropped += 1
                    continue
                kept.append(line)
                used += len(line)
            if kept:
                with open(path, "ab") as fh:
                    fh.write(b"".join(kept))
                    fh.flush()
                    os.fsync(fh.fileno())
            self.dead_lettered += len(kept)
            return len(kept)

    # -- closing -----------------------------------------------------------------------------------------

    def close(self) -> None:
        """Sync, persist the cursor and release the folder (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._sync_tail()
                if self._tail_fd >= 0:
                    os.close(self._tail_fd)
                    self._tail_fd = -1
                if self._sizes:
                    self._write_cursor()
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.folder / CURSOR_NAME)
                _fsync_dir(self.folder)
            finally:
                self._release_lock()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
