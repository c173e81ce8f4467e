"""Where records go. Every integration writes `Record`s to a `Sink`; sinks never block the caller.

The default is the local lake (`exporter.local_lake.LocalLakeSink`: Firehose-shaped, gzip, rolled and
atomically renamed files). `JsonlSink` is a plain alternative for debugging: newline-delimited JSON (the
lines of `exporter.lines`, as every sink writes them), one uncompressed file per UTC day, written by a
background thread from a bounded queue, flushed at exit.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from tailpipe_ai.semconv import Record

from .lines import record_line

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Receives records; `write` must return at once and never raise into the caller."""

    def write(self, record: Record) -> None: ...

    def flush(self, timeout: float | None = None) -> bool: ...

    def close(self) -> None: ...


class MemorySink:
    """Keeps records in a list (tests, notebooks)."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self._lock = threading.Lock()

    def write(self, record: Record) -> None:
        with self._lock:
            self.records.append(record)

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        pass


class NullSink:
    """Drops records (spans and metrics only)."""

    def write(self, record: Record) -> None:
        pass

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        pass


_STOP = object()


class JsonlSink:
    """Appends records as JSON lines to `<folder>/records-YYYYMMDD.jsonl` from a background thread.

    The queue is bounded (`max_queue`); when it is full the record is written synchronously rather than
    lost, so a burst slows the caller slightly instead of dropping data.
    """

    def __init__(self, folder: str | os.PathLike[str], max_queue: int = 10_000) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._write_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="tailpipe-jsonl-sink", daemon=True)
        self._closed = False
        self._thread.start()
        atexit.register(self.close)

    def write(self, record: Record) -> None:
        if self._closed:
            self._append([record])
            return
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._append([record])

    def _path(self, record: Record) -> Path:
        day = record.timestamp[:10].replace("-", "")
        return self.folder / f"records-{day}.jsonl"

    def _append(self, records: list[Record]) -> None:
        with self._write_lock:
            by_path: dict[Path, list[bytes]] = {}
            for r in records:
                try:
                    by_path.setdefault(self._path(r), []).append(record_line(r))
                except Exception as exc:  # a malformed record must not stop the others
                    log.warning("tailpipe: dropped a malformed record (%s)", type(exc).__name__)
            for path, lines in by_path.items():
                with open(path, "ab") as fh:
                    fh.write(b"".join(lines))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[Record] = []
            stop = item is _STOP
            if not stop:
                batch.append(item)  # type: ignore[arg-type]
            while not stop:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                else:
                    batch.append(nxt)  # type: ignore[arg-type]
            if batch:
                try:
                    self._append(batch)
                except OSError as exc:
                    log.warning("tailpipe: could not write records to %s: %s", self.folder, exc.strerror)
            for _ in range(len(batch) + (1 if item is _STOP or stop else 0)):
                self._queue.task_done()
            if stop:
                return

    def flush(self, timeout: float | None = None) -> bool:
        if self._closed:
            return True
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout=5)


def signer_from_env(api_key: str | None = None):
    """A `RecordSigner` from TAILPIPE_SIGNING_KEYS and/or a tenant API key, else None."""
    from tailpipe_ai.exporter.signing import Keyring, RecordSigner

    ring = Keyring.from_env()
    if api_key:
        derived = Keyring.from_api_key(api_key)
        ring = ring.with_verify_keys(derived) if ring is not None else derived
    return RecordSigner(ring) if ring is not None else None


_default_sink: Sink | None = None
_default_lock = threading.Lock()


SINK_KINDS = ("local", "firehose")


def wants_firehose(env: Mapping[str, str] | None = None) -> bool:
    """`TAILPIPE_SINK` = local | firehose decides; unset, Firehose is chosen when a stream or residency is
    configured (TAILPIPE_FIREHOSE_STREAM*, TAILPIPE_RESIDENCY, or [firehose] in the config file)."""
    env = os.environ if env is None else env
    kind = (env.get("TAILPIPE_SINK") or "").strip().lower()
    if kind:
        if kind not in SINK_KINDS:
            from tailpipe_ai.carbon.errors import ConfigError

            raise ConfigError(f"TAILPIPE_SINK must be one of {', '.join(SINK_KINDS)}, got {kind!r}")
        return kind == "firehose"
    from tailpipe_ai.carbon.errors import ConfigError
    from tailpipe_ai.exporter.residency import firehose_configured

    try:
        return firehose_configured(env)
    except ConfigError:  # a broken config file is reported by the carbon engine; records stay local
        return False


def default_sink() -> Sink:
    """The process-wide sink, created on first use: Firehose when configured (`wants_firehose`, see
    docs/operations.md), else the local lake (`TAILPIPE_LAKE`, default ./tailpipe-lake). Records are signed
    when TAILPIPE_SIGNING_KEYS or TAILPIPE_API_KEY is set."""
    global _default_sink
    with _default_lock:
        if _default_sink is None:
            signer = signer_from_env(os.environ.get("TAILPIPE_API_KEY") or None)
            if wants_firehose():
                from tailpipe_ai.exporter.firehose import FirehoseSink

                _default_sink = FirehoseSink.from_env(signer=signer)
            else:
                from tailpipe_ai.exporter.local_lake import LocalLakeSink

                _default_sink = LocalLakeSink(signer=signer)
        return _default_sink
