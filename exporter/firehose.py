"""`FirehoseSink`: records to Amazon Data Firehose (PutRecordBatch), off the caller's path, never lost quietly.

How a record travels, and why:

* `write()` puts the record on a bounded in-memory queue and returns. When the queue is full it encodes the
  record and appends it to the disk spool instead (a short local append): the caller never waits on the
  network and never gets an exception.
* A background thread takes records off the queue, encodes them (signed when a signer is set) as one JSON
  line each plus ``"\\n"`` (Firehose concatenates records with no delimiter) and sends them in batches of at
  most 500 records / 4 MiB, the PutRecordBatch limits. A record over 1,000 KiB can never be delivered: it
  goes to the spool's ``dead-letter.jsonl`` and is counted (`dead_lettered`), with one warning.
* A 200 response can still report per-record failures (``FailedPutCount``, ``ErrorCode`` per entry):
  only the failed entries are sent again, after an exponential backoff with full jitter, up to
  ``attempts`` times. A throttled or failed call (``ThrottlingException``, ``ServiceUnavailableException``,
  5xx, a connection error) is retried the same way. botocore's own retries are switched off
  (``total_max_attempts=1``) so one retry policy owns the timing and calls are never retried twice over.
* What still cannot be delivered goes to the disk spool (`exporter.spool.Spool`) and the sink enters
  backlog mode: new records are appended to the spool too, and the oldest spooled batch is retried after
  an outage backoff (full jitter, growing to ``outage_cap`` seconds). When a call succeeds again the spool
  is replayed in order, each batch acknowledged (deleted) only after Firehose accepted it. A process that
  restarts on the same spool folder replays what the previous one left.
* A configuration problem (stream not found, access denied, no credentials) is treated as an outage that
  will not heal by itself: records are kept in the spool and one warning says what to check.
* `flush(timeout)` waits until everything written so far is acknowledged; `close()` (also at exit) flushes
  for ``close_timeout`` seconds, then spools whatever is left, so nothing is lost on shutdown.

Delivery is at-least-once (a timeout can hide a success): records carry ``record_id`` and compaction
removes duplicates. Logs name streams, files, counts and error codes, never a record's content.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import random
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tailpipe_ai.exporter.lines import Signer, record_line
from tailpipe_ai.exporter.residency import Destination, check_region, resolve_destination
from tailpipe_ai.exporter.spool import Spool, SpoolBusy
from tailpipe_ai.semconv import Record

log = logging.getLogger(__name__)

MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_RECORD_BYTES = 1_024_000  # 1,000 KiB, before base64

RETRYABLE_RECORD_ERRORS = frozenset({"ServiceUnavailableException", "ThrottlingException", "InternalFailure"})
"""Per-record ErrorCodes that are retried (AWS documents the first and last; throttling is treated alike)."""

CONFIG_ERRORS = frozenset(
    {
        "ResourceNotFoundException",
        "AccessDeniedException",
        "AccessDenied",
        "InvalidKMSResourceException",
        "InvalidSourceException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "MissingAuthenticationToken",
    }
)
"""Call errors that retrying will not fix: the records wait in the spool until the configuration is fixed."""

REJECTED_ERRORS = frozenset({"InvalidArgumentException", "ValidationException", "SerializationException"})
"""Call errors that reject the batch itself: its records are dead-lettered rather than retried forever."""

_WAKE = object()


def default_spool_dir(destination: Destination) -> Path:
    """``TAILPIPE_SPOOL_DIR``, else ``$XDG_CACHE_HOME/tailpipe/spool/<region>-<stream>`` (~/.cache), else the
    temp folder (Lambda)."""
    leaf = f"{destination.aws_region}-{destination.stream_name}"
    configured = os.environ.get("TAILPIPE_SPOOL_DIR")
    if configured:
        return Path(configured) / leaf
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    candidate = Path(base) / "tailpipe" / "spool" / leaf
    try:
        candidate.mkdir(parents=True, exist_ok=True)
        if os.access(candidate, os.W_OK):
            return candidate
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / "tailpipe-spool" / leaf


def make_client(destination: Destination, *, connect_timeout: float = 3.0, read_timeout: float = 10.0) -> Any:
    """A boto3 Firehose client for the destination's region, with botocore retries off (ours own the timing)."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        user_agent_extra="tailpipe-ai",
    )
    return boto3.session.Session().client(
        "firehose", region_name=destination.aws_region, endpoint_url=destination.endpoint_url, config=config
    )


class FirehoseSink:
    """Sends records to one Firehose stream; see the module docstring for the delivery guarantees.

    `destination` is a checked `residency.Destination` (see `from_env` for the usual way to get one).
    `client`: a ready boto3 Firehose client (tests, custom sessions); its region must lie inside the
    residency. `spool_dir`: the spool folder (default `default_spool_dir`). `clock` (monotonic seconds) and
    `sleep` are injectable so tests can simulate a long outage without waiting; `rng` gives the jitter.
    Counters: `sent`, `calls`, `retried_records`, `throttled`, `spooled`, `dead_lettered`, `unencodable`,
    `lost` (could not be spooled: disk error, or written after close).
    """

    def __init__(
        self,
        destination: Destination,
        *,
        client: Any = None,
        spool_dir: str | os.PathLike[str] | None = None,
        signer: Signer | None = None,
        max_queue: int = 10_000,
        linger_seconds: float = 0.2,
        max_batch_records: int = MAX_BATCH_RECORDS,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        max_record_bytes: int = MAX_RECORD_BYTES,
        attempts: int = 4,
        retry_base: float = 0.1,
        retry_cap: float = 5.0,
        outage_base: float = 1.0,
        outage_cap: float = 30.0,
        spool_max_bytes: int = 256 * 1024 * 1024,
        fsync_seconds: float | None = 1.0,
        close_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not 1 <= max_batch_records <= MAX_BATCH_RECORDS:
            raise ValueError(f"FirehoseSink: max_batch_records must be 1..{MAX_BATCH_RECORDS}")
        if not 1 <= max_batch_bytes <= MAX_BATCH_BYTES or not 1 <= max_record_bytes <= MAX_RECORD_BYTES:
            raise ValueError("FirehoseSink: batch and record byte limits must be within Firehose's (4 MiB, 1,000 KiB)")
        if attempts < 1:
            raise ValueError("FirehoseSink: attempts must be >= 1")
        self.destination = destination.check()
        if client is not None:
            client_region = getattr(getattr(client, "meta", None), "region_name", None)
            if client_region:
                check_region(client_region, destination.residency, "the Firehose client passed to FirehoseSink")
        self._client = client
        self._signer = signer
        self.max_batch_records = max_batch_records
        self.max_batch_bytes = max_batch_bytes
        self.max_record_bytes = max(1, min(max_record_bytes, max_batch_bytes))
        self.linger_seconds = linger_seconds
        self.attempts = attempts
        self.retry_base, self.retry_cap = retry_base, retry_cap
        self.outage_base, self.outage_cap = outage_base, outage_cap
        self.close_timeout = close_timeout
        self._clock = clock
        self._injected_sleep = sleep
        self._rng = rng
        self._max_queue = max_queue
        self._spool_options = {"max_bytes": spool_max_bytes, "fsync_seconds": fsync_seconds, "clock": clock}
        self.spool_dir = Path(spool_dir) if spool_dir is not None else default_spool_dir(self.destination)
        self.sent = self.calls = self.retried_records = self.throttled = 0
        self.spooled = self.unencodable = self.lost = 0
        self._dead_lettered_logged = False
        self._lost_logged = False
        self._problem: str | None = None  # the outage being reported, logged once until delivery resumes
        self._closed = False
        self.spool = self._open_spool(self.spool_dir)
        self._start()
        atexit.register(self.close)
        _LIVE.add(self)

    @classmethod
    def from_env(
        cls,
        residency: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        config: Any = None,
        **kwargs: Any,
    ) -> FirehoseSink:
        """A sink for the destination configured by environment and config file (see exporter/residency.py);
        the spool folder from ``spool_dir`` / ``[firehose] spool_dir`` / TAILPIPE_SPOOL_DIR."""
        from tailpipe_ai.exporter.residency import firehose_settings

        destination = resolve_destination(residency, env=env, config=config)
        table = firehose_settings(config)
        if "spool_dir" not in kwargs and table.get("spool_dir"):
            kwargs["spool_dir"] = Path(str(table["spool_dir"])) / f"{destination.aws_region}-{destination.stream_name}"
        env = os.environ if env is None else env
        max_mb = env.get("TAILPIPE_SPOOL_MAX_MB") or table.get("spool_max_mb")
        if "spool_max_bytes" not in kwargs and max_mb:
            try:
                kwargs["spool_max_bytes"] = int(float(max_mb) * 1024 * 1024)
            except ValueError:
                from tailpipe_ai.carbon.errors import ConfigError

                raise ConfigError(
                    f"TAILPIPE_SPOOL_MAX_MB / spool_max_mb must be a number of MiB, got {max_mb!r}"
                ) from None
        return cls(destination, **kwargs)

    # -- set-up ------------------------------------------------------------------------------------------

    def _open_spool(self, folder: Path) -> Spool:
        """Our spool; when another live process holds it, a folder of our own beside it (adopted later)."""
        try:
            spool = Spool(folder, **self._spool_options)
        except SpoolBusy:
            alt = folder.with_name(f"{folder.name}.pid{os.getpid()}")
            log.info("tailpipe: spool %s is in use by another process; this one spools to %s", folder, alt)
            return Spool(alt, **self._spool_options)
        self._adopt_orphans(spool)
        return spool

    def _adopt_orphans(self, spool: Spool) -> None:
        """Move records left in per-process spool folders (``<spool>.pid<N>``) by stopped processes into ours."""
        for other in sorted(spool.folder.parent.glob(spool.folder.name + ".pid*")):
            try:
                orphan = Spool(other, **self._spool_options)
            except (SpoolBusy, OSError):
                continue  # still alive, or unreadable
            try:
                while (batch := orphan.read(self.max_batch_records, self.max_batch_bytes)) is not None:
                    spool.append(batch.lines)
                    orphan.ack(batch)
            finally:
                orphan.close()
            if orphan.empty():
                for leftover in other.iterdir():
                    if leftover.name != "dead-letter.jsonl":
                        leftover.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    other.rmdir()

    def _start(self) -> None:
        """Fresh queue, state and worker thread (at construction, and in a forked child)."""
        self._queue: queue.Queue[object] = queue.Queue(maxsize=self._max_queue)
        self._cond = threading.Condition()
        self._outstanding = 0  # records accepted by write() and not yet delivered, spooled or dropped
        self._wake = threading.Event()
        self._probe = False
        self._stop = False
        self._failures = 0
        self._retry_at = 0.0
        self._carry: bytes | None = None
        self._thread = threading.Thread(target=self._run, name="tailpipe-firehose-sink", daemon=True)
        self._thread.start()

    # -- caller side -------------------------------------------------------------------------------------

    def write(self, record: Record) -> None:
        """Queue a record; never blocks on the network, never raises."""
        try:
            if self._closed:
                self._count_lost(1, "a record was written after the sink was closed")
                return
            with self._cond:
                self._outstanding += 1
            try:
                self._queue.put_nowait(record)
                return
            except queue.Full:
                pass
            try:
                line = self._encode(record)
                if line is not None:
                    self._to_spool([line], sync=False)  # the worker applies the fsync policy
            finally:
                self._done(1)
        except Exception as exc:  # pragma: no cover - a sink must never break the caller
            log.warning("tailpipe: Firehose sink failed to accept a record (%s)", type(exc).__name__)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record written so far is acknowledged by Firehose; False after `timeout` seconds
        (the records are then still queued or spooled, not lost)."""
        if self._closed or not self._thread.is_alive():
            return self._idle()
        self._probe = True  # skip the outage backoff once: try now
        self._nudge()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._idle():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(0.05 if left is None else min(left, 0.05))
        return True

    def close(self) -> None:
        """Flush for up to `close_timeout` seconds, then spool what is left and stop (idempotent; at exit)."""
        if self._closed:
            return
        atexit.unregister(self.close)
        _LIVE.discard(self)
        try:
            if self._thread.is_alive():
                self.flush(self.close_timeout)
            self._closed = True
            self._stop = True
            self._nudge()
            self._thread.join(timeout=max(self.close_timeout, 5.0))
            self._spool_queue()  # if the worker could not (stuck in a call), keep the rest on disk
        finally:
            self._closed = True
            with contextlib.suppress(Exception):
                self.spool.close()
            left = self.spool.pending
            if left:
                log.warning(
                    "tailpipe: %d records could not be delivered to Firehose stream %s before shutdown; they are "
                    "kept in %s and sent by the next process using it",
                    left,
                    self.destination.stream_name,
                    self.spool.folder,
                )

    @property
    def dead_lettered(self) -> int:
        return self.spool.dead_lettered

    @property
    def dropped(self) -> int:
        """Records dropped because the spool reached its size limit (oldest first)."""
        return self.spool.dropped

    # -- helpers shared by both sides --------------------------------------------------------------------

    def _idle(self) -> bool:
        return self._outstanding == 0 and not self._spool_pending()

    def _spool_pending(self) -> bool:
        return self.spool.pending > 0

    def _nudge(self) -> None:
        self._wake.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_WAKE)

    def _done(self, n: int) -> None:
        with self._cond:
            self._outstanding -= n
            self._cond.notify_all()

    def _encode(self, record: Any) -> bytes | None:
        """One JSON line (signed if configured), or None when it cannot be encoded or can never be sent."""
        try:
            line = record_line(record, self._signer)
        except Exception as exc:  # one bad record must not stop the others
            if not self.unencodable:
                where = getattr(exc, "field", None)
                log.warning(
                    "tailpipe: dropped a record that cannot be encoded (%s%s); further ones are only counted in "
                    "FirehoseSink.unencodable",
                    type(exc).__name__,
                    f" in field {where!r}" if where else "",
                )
            self.unencodable += 1
            return None
        if len(line) > self.max_record_bytes:
            self._dead_letter([line], f"larger than Firehose's per-record limit of {self.max_record_bytes} bytes")
            return None
        return line

    def _dead_letter(self, lines: list[bytes], why: str) -> None:
        try:
            self.spool.dead_letter(lines)
        except (OSError, ValueError):
            self._count_lost(len(lines), "the dead-letter file could not be written")
            return
        if not self._dead_lettered_logged:
            self._dead_lettered_logged = True
            log.warning(
                "tailpipe: %d record(s) can never be delivered to Firehose (%s); kept in %s, not sent. Further ones "
                "are counted in FirehoseSink.dead_lettered",
                len(lines),
                why,
                self.spool.folder / "dead-letter.jsonl",
            )

    def _to_spool(self, lines: list[bytes], sync: bool = True) -> None:
        try:
            self.spool.append(lines, sync=sync)
            self.spooled += len(lines)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            self._count_lost(len(lines), f"the spool could not be written ({reason})")

    def _count_lost(self, n: int, why: str) -> None:
        self.lost += n
        if not self._lost_logged:
            self._lost_logged = True
            log.warning("tailpipe: lost %d record(s): %s. Further losses are counted in FirehoseSink.lost", n, why)

    def _spool_queue(self) -> int:
        """Move everything queued to the spool (backlog mode and shutdown); returns how many records."""
        moved: list[bytes] = []
        taken = 0
        if self._carry is not None:
            moved.append(self._carry)
            self._carry = None
            taken += 1
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _WAKE:
                continue
            taken += 1
            line = self._encode(item)
            if line is not None:
                moved.append(line)
        if moved:
            self._to_spool(moved)
        if taken:
            self._done(taken)
        return taken

    # -- worker side -------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop:
            try:
                if self._spool_pending():
                    self._backlog_step()
                else:
                    self._direct_step()
            except Exception as exc:  # pragma: no cover - keep the worker alive whatever happens
                log.warning("tailpipe: Firehose sink worker error (%s)", type(exc).__name__)
                self._pause(1.0)
            with contextlib.suppress(OSError):
                self.spool.sync_due()
            with self._cond:
                self._cond.notify_all()
        with contextlib.suppress(Exception):
            self._spool_queue()
        with self._cond:
            self._cond.notify_all()

    def _direct_step(self) -> None:
        """Spool empty: collect a batch from the queue (lingering briefly to fill it) and send it."""
        lines, taken = self._collect()
        if not lines:
            if taken:
                self._done(taken)
            return
        undelivered, outage = self._send(lines)
        if undelivered:
            self._to_spool(undelivered)
        if outage:
            self._schedule_retry()
        else:
            self._resumed()
        self._done(taken)

    def _collect(self) -> tuple[list[bytes], int]:
        lines: list[bytes] = []
        size = 0
        taken = 0
        if self._carry is not None:
            lines.append(self._carry)
            size = len(self._carry)
            self._carry = None
            taken += 1
        deadline = None
        while len(lines) < self.max_batch_records and not self._stop:
            if lines and deadline is None:
                deadline = time.monotonic() + self.linger_seconds
            timeout = 0.5 if deadline is None else deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _WAKE:
                if lines or self._probe:
                    break
                continue
            taken += 1
            line = self._encode(item)
            if line is None:
                continue
            if lines and size + len(line) > self.max_batch_bytes:
                self._carry = line  # starts the next batch (its record stays counted as outstanding)
                taken -= 1
                break
            lines.append(line)
            size += len(line)
        self._probe = False
        return lines, taken

    def _backlog_step(self) -> None:
        """Spool not empty: append new records to it (keeps order) and send its oldest batch when due."""
        self._spool_queue()
        wait = self._retry_at - self._clock()
        if wait > 0 and not self._probe:
            self._pause(min(wait, 1.0))
            return
        self._probe = False
        batch = self.spool.read(self.max_batch_records, self.max_batch_bytes)
        if batch is None:
            return
        undelivered, outage = self._send(batch.lines)
        if not outage and not undelivered and self.spool.pending == len(batch.lines):
            self._resumed()  # the spool's last batch is delivered: said before the ack, which ends a flush()
        if len(undelivered) < len(batch.lines):  # some (or all) delivered: the batch leaves the spool
            if undelivered:
                self._to_spool(undelivered)  # the stubborn few go to the back of the line
            self.spool.ack(batch)
        if outage:
            self._schedule_retry()
        elif self.spool.empty():
            self._resumed()

    def _resumed(self) -> None:
        if self._problem is not None:
            log.warning(
                "tailpipe: delivery to Firehose stream %s resumed; any spooled records were replayed",
                self.destination.stream_name,
            )
            self._problem = None
        self._failures = 0
        self._retry_at = 0.0

    def _schedule_retry(self) -> None:
        self._failures += 1
        ceiling = min(self.outage_cap, self.outage_base * 2 ** min(self._failures - 1, 30))
        self._retry_at = self._clock() + self._rng() * ceiling
        with contextlib.suppress(OSError):
            self.spool.sync()

    def _pause(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self._injected_sleep is not None:
            self._injected_sleep(seconds)
        else:
            self._wake.wait(seconds)
            self._wake.clear()

    def _backoff(self, retry: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**retry)]."""
        return self._rng() * min(self.retry_cap, self.retry_base * 2 ** min(retry, 30))

    def _get_client(self) -> Any:
        if self._client is None:
            self._client = make_client(self.destination)
        return self._client

    def _send(self, lines: list[bytes]) -> tuple[list[bytes], bool]:
        """Deliver `lines` (<= one batch); returns (lines not delivered, whether delivery looks down)."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

        pending = lines
        problem = "no attempt made"
        for attempt in range(self.attempts):
            if attempt:
                self._pause(self._backoff(attempt - 1))
                if self._stop:
                    break
            try:
                self.calls += 1
                response = self._get_client().put_record_batch(
                    DeliveryStreamName=self.destination.stream_name, Records=[{"Data": line} for line in pending]
                )
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
                if code in CONFIG_ERRORS:
                    self._report(f"{code}: check the stream name, its region and the producer's IAM policy")
                    return pending, True
                if code in REJECTED_ERRORS:
                    self._dead_letter(pending, f"Firehose rejected the batch with {code}")
                    return [], False
                self.throttled += 1
                problem = code
                continue
            except (NoCredentialsError, NoRegionError) as exc:
                self._report(f"{type(exc).__name__}: configure AWS credentials for the producer")
                return pending, True
            except (BotoCoreError, OSError) as exc:  # connection refused/closed, timeouts, DNS
                problem = type(exc).__name__
                continue
            failed = [
                pending[i] for i, entry in enumerate(response.get("RequestResponses") or []) if entry.get("ErrorCode")
            ]
            if not failed and response.get("FailedPutCount"):
                self._report("FailedPutCount without per-record error codes")
                return pending, True  # cannot tell which failed: resend them all
            self.sent += len(pending) - len(failed)
            if not failed:
                return [], False
            self.retried_records += len(failed)
            codes = sorted({str(e.get("ErrorCode")) for e in response["RequestResponses"] if e.get("ErrorCode")})
            problem = f"{len(failed)} records failed with {', '.join(codes)}"
            pending = failed
        self._report(problem)
        return pending, True

    def _report(self, what: str) -> None:
        """Log an outage once (until delivery resumes): what happened and where the records wait."""
        if self._problem is None:
            self._problem = what
            log.warning(
                "tailpipe: cannot deliver to Firehose stream %s in %s (%s); records are kept in the spool at %s "
                "and replayed in order when delivery works again",
                self.destination.stream_name,
                self.destination.aws_region,
                what,
                self.spool.folder,
            )

    # -- fork --------------------------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        """The child gets its own queue, thread, client and spool folder; the parent's stay the parent's."""
        if self._closed:
            return
        self._client = None  # boto3 clients are not fork-safe
        self.spool = Spool(self.spool_dir.with_name(f"{self.spool_dir.name}.pid{os.getpid()}"), **self._spool_options)
        self._start()


_LIVE: weakref.WeakSet[FirehoseSink] = weakref.WeakSet()


def _reinit_after_fork() -> None:
    for sink in list(_LIVE):
        with contextlib.suppress(Exception):
            sink._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
