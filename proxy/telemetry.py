"""Records for proxied calls, built off the request path.

The handler hands an `Exchange` (timings, status, the scanner's few kept lines) to `ProxyTelemetry`
after the last byte went to the client; a background thread decodes usage, estimates energy and carbon
with the shared record builder (`exporter.records`), writes the record to the sink and logs one access
line (method, path without query, status, duration, model, tokens: never headers, keys or bodies).
Records stay in their dict form (`record_fields`) when the sink takes them so (the lake: `write_fields`,
encoded and written on this same thread); other sinks get `Record` objects built from it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tailpipe_ai.exporter.records import Call, estimate_call, record_fields
from tailpipe_ai.semconv import Record
from tailpipe_ai.semconv import attributes as sc
from tailpipe_ai.semconv.record import rfc3339_from_unix_ns

from . import usage
from .config import PROVIDERS, ProxyConfig

log = logging.getLogger("tailpipe.proxy")
access_log = logging.getLogger("tailpipe.proxy.access")

_TAG_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")
_MAX_TAG_VALUE = 256
_CLAUDE_CODE_HEADERS = (
    ("x-claude-code-session-id", "claude_code.session_id"),
    ("x-claude-code-agent-id", "claude_code.agent_id"),
    ("x-claude-code-parent-agent-id", "claude_code.parent_agent_id"),
)
_CLAUDE_CLI = re.compile(r"claude-cli/([0-9][0-9A-Za-z.\-+]{0,31})")
_logged: set[str] = set()


def log_once(where: str, exc: BaseException) -> None:
    """An internal failure, logged once per place with its type only (messages may quote data)."""
    if where not in _logged:
        _logged.add(where)
        log.warning("tailpipe proxy: internal error in %s (%s); traffic was not affected", where, type(exc).__name__)


def parse_tags(header: str | None) -> dict[str, str]:
    """`x-tailpipe-tags: team=search,project=rag` -> {"team": "search", "project": "rag"}.

    Keys are identifiers (letters, digits, `_.-`); malformed pairs are skipped; values are trimmed and
    capped at 256 characters."""
    tags: dict[str, str] = {}
    if not header:
        return tags
    for pair in header.split(","):
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if sep and value and _TAG_KEY.fullmatch(key):
            tags[key] = value[:_MAX_TAG_VALUE]
    return tags


def attribution(headers: dict[str, str]) -> dict[str, str]:
    """Attribution attributes from the request headers we kept (lower-case names)."""
    attrs = parse_tags(headers.get("x-tailpipe-tags"))
    for header, name in _CLAUDE_CODE_HEADERS:
        value = headers.get(header)
        if value and len(value) <= 128:
            attrs[name] = value
    agent = headers.get("user-agent") or ""
    m = _CLAUDE_CLI.search(agent) if "claude-cli/" in agent else None  # most agents are not Claude Code
    if m:
        attrs["client"] = "claude-code"
        attrs["client.version"] = m.group(1)
    return attrs


@dataclass(slots=True)
class Exchange:
    """One proxied model call as the handler saw it (metadata, timings and the scanner)."""

    endpoint: usage.Endpoint
    method: str
    path: str  # without the query string (Gemini keys may sit there)
    request_body: bytes
    request_encoding: str | None
    headers: dict[str, str]  # only the attribution headers
    start_ns: int
    t0: float
    status: int = 0
    ttfb: float | None = None
    t_end: float = 0.0
    streamed: bool = False
    scan: Any = None  # usage.StreamScan | usage.BodyScan | None
    body: bytes | None = None  # a non-streamed body read whole
    complete: bool = True
    client_aborted: bool = False
    upstream_failed: str | None = None  # exception type when the upstream broke
    extra_flags: tuple[str, ...] = ()
    submitted: bool = False


@dataclass
class ProxyTelemetry:
    """An inbox + one thread that drains it in batches: the event loop only appends.

    Waking a thread per call costs the loop a futex and a GIL hand-off per request (measured: ~0.1 ms on
    one core, as much as the rest of our per-request work). So the loop appends to a deque and wakes the
    thread only when it sleeps idle; a busy thread collects the calls of the last `batch_seconds` at once.
    The counters are written by one thread each (`_begun`: the loop, `_done`: under `_cond`), so the loop
    takes no lock either."""

    config: ProxyConfig
    sink: Any
    max_queue: int = 50_000
    batch_seconds: float = 0.02  # how long a busy telemetry thread lets calls gather (bounds record delay)
    _inbox: deque = field(default_factory=deque, init=False)
    _begun: int = field(default=0, init=False)
    _done: int = field(default=0, init=False)
    _cond: threading.Condition = field(default_factory=threading.Condition, init=False)
    _wake: threading.Event = field(default_factory=threading.Event, init=False)
    _idle: bool = field(default=True, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    dropped: int = field(default=0, init=False)

    def begin(self) -> bool:
        """A model call starts (counted, so `flush()` also waits for calls still in flight); False when
        the backlog is full: that call is then forwarded but not recorded (counted and logged once)."""
        if self._begun - self._done >= self.max_queue:
            self.dropped += 1  # never block the loop
            if self.dropped == 1:
                log.warning("tailpipe proxy: telemetry backlog full; some calls are not being recorded")
            return False
        self._begun += 1
        if self._thread is None:
            self._start_thread()
        return True

    def _start_thread(self) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tailpipe-proxy-telemetry", daemon=True)
                self._thread.start()

    def submit(self, exchange: Exchange) -> None:
        """The call ended (last byte sent): record it on the telemetry thread."""
        self._inbox.append(exchange)
        if self._idle:  # read after the append: a thread going idle re-checks the inbox after saying so
            self._idle = False
            self._wake.set()

    def done(self, count: int = 1) -> None:
        """Calls counted by `begin()` were recorded (by the telemetry thread, or synchronously on Lambda)."""
        with self._cond:
            self._done += count
            if self._done == self._begun:
                self._cond.notify_all()

    def _run(self) -> None:
        inbox = self._inbox
        while True:
            if not inbox:
                self._idle = True
                self._wake.clear()
                if not inbox:  # a submit after this point finds _idle set and wakes us
                    self._wake.wait()
                self._idle = False
                continue
            count = 0
            records = []
            while inbox:
                exchange = inbox.popleft()
                count += 1
                try:
                    records.append(self.record(exchange))
                except Exception as exc:
                    log_once("record", exc)
            self._write(records)
            self.done(count)
            time.sleep(self.batch_seconds)  # let the next calls gather: one wake-up per batch, not per call

    def _write(self, records: list[dict[str, Any]]) -> None:
        """A batch to the sink in one call: as dicts when it takes them (the lake sink, which encodes and
        writes them in this thread: no `Record` objects, no second hand-off), else as records, in one call
        when it takes batches."""
        try:
            sink = self.sink
            write_fields = getattr(sink, "write_fields", None)
            if write_fields is not None:
                write_fields(records)
                return
            batch = [Record(**fields) for fields in records]
            write_many = getattr(sink, "write_many", None)
            if write_many is not None:
                write_many(batch)
            else:
                for record in batch:
                    sink.write(record)
        except Exception as exc:
            log_once("sink", exc)

    def process(self, ex: Exchange) -> None:
        """One call recorded and written at once (Lambda, where the sink is flushed before the reply ends)."""
        self._write([self.record(ex)])

    def record(self, ex: Exchange) -> dict[str, Any]:
        """Decode usage, estimate, build the record's fields and log the access line (telemetry thread)."""
        call = self.call_of(ex)
        est, cost = estimate_call(call)
        record = record_fields(call, est, cost, rfc3339_from_unix_ns(call.start_time_ns))
        if self.config.access_log and access_log.isEnabledFor(logging.INFO):
            i = call.info
            access_log.info(
                "%s %s %d %.1fms model=%s in=%s out=%s%s",
                ex.method,
                ex.path,
                ex.status,
                call.latency_ms or 0.0,
                i.response_model or call.request_model or "-",
                "-" if i.input_tokens is None else i.input_tokens,
                "-" if i.output_tokens is None else i.output_tokens,
                " (estimated)" if call.token_accuracy == sc.TOKEN_ACCURACY_ESTIMATED else "",
            )
        return record

    def call_of(self, ex: Exchange) -> Call:
        ep = ex.endpoint
        model, _ = usage.request_model(ep, ex.request_body, ex.request_encoding)
        if ex.streamed:
            outcome = usage.interpret_stream(ep, ex.scan, ex.complete)
        else:
            body = ex.body if ex.body is not None else (ex.scan.body() if ex.scan is not None else None)
            outcome = usage.interpret_body(ep, body, ex.status, ex.scan)
        info = outcome.info
        flags = [*outcome.flags, *ex.extra_flags]
        accuracy = sc.TOKEN_ACCURACY_EXACT
        if outcome.estimated:
            accuracy = sc.TOKEN_ACCURACY_ESTIMATED
            if info.input_tokens is None and ex.status < 400:
                info.input_tokens = usage.estimate_input_tokens(ex.request_body, ex.request_encoding)
                if info.input_tokens is not None:
                    flags.append(usage.FLAG_ESTIMATED_FROM_SIZE)
        if not ex.complete:
            flags.append(sc.FLAG_STREAM_INCOMPLETE)
        if ex.client_aborted:
            flags.append(usage.FLAG_CLIENT_ABORTED)
        if ex.upstream_failed:
            flags.append(usage.FLAG_UPSTREAM_FAILED)
        status, err = "ok", outcome.error_type
        if ex.status >= 400 or err or ex.upstream_failed:
            status = "error"
            err = err or ex.upstream_failed or f"http_{ex.status}"
        # Positional, in `Call`'s field order: a keyword call to a class packs its keywords into a dict
        # (measured: 8k instructions of this call's 16 keywords, ~1% of a proxied request).
        return Call(
            PROVIDERS[ep.route],  # provider
            ep.operation,  # operation
            model,  # request_model
            self.config.integration,  # integration
            info,
            ex.start_ns,  # start_time_ns
            (ex.t_end - ex.t0) * 1000.0,  # latency_ms
            (ex.ttfb - ex.t0) * 1000.0 if ex.ttfb is not None and ex.streamed else None,  # ttft_ms
            ex.streamed,
            status,
            err,  # error_type
            accuracy,  # token_accuracy
            self.config.region,
            ep.output_type,
            attribution(ex.headers) if ex.headers else {},  # attributes
            {},  # environment
            tuple(dict.fromkeys(flags)) if flags else (),  # flags
        )

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every call begun is written (in-flight ones included), then flush the sink."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            done = self._cond.wait_for(lambda: self._done >= self._begun, timeout)
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return bool(self.sink.flush(left)) and done
        except Exception as exc:
            log_once("flush", exc)
            return False

    def close(self) -> None:
        self.flush()
        try:
            self.sink.close()
        except Exception as exc:
            log_once("close", exc)
