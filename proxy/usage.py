"""Usage extraction from the bytes the proxy forwards, in two halves.

On the event loop (the hot path) a scanner only looks at bytes: it decompresses a *copy* when the
response is compressed, cuts it at line ends and keeps the few `data:` lines that carry usage (found by a
substring test for the usage key, so nothing else is ever decoded). Everything else is dropped at once.

On the telemetry thread, after the last byte went to the client, `interpret()` JSON-decodes those few
lines (or the non-streamed body) and hands them to the shared provider parsers in `providers/`, which
apply each provider's rules: Anthropic usage is cumulative (overwrite, never add), Gemini's
`usageMetadata` is cumulative (last wins, thoughts counted apart), OpenAI Chat carries usage only on a
final chunk, Responses on `response.completed`, Mistral on the chunk with `finish_reason`.

Only usage, model names, ids and error *types* leave this module; never text.
"""

from __future__ import annotations

import gzip
import re
import threading
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

try:
    # Lazy parsing: a request's top-level fields read without building its messages. Claude Code sends
    # 20-300 KB a request: 85 KB took 17 us against 88 us for orjson's whole parse (1.4 KB: 0.5 against 1.7).
    import simdjson
except ImportError:  # pragma: no cover - a platform without a pysimdjson wheel: orjson reads the whole body
    simdjson = None

from tailpipe_ai.providers import anthropic as anthropic_parser
from tailpipe_ai.providers import google_genai as gemini_parser
from tailpipe_ai.providers import mistralai as mistral_parser
from tailpipe_ai.providers import openai as openai_parser
from tailpipe_ai.providers.base import CallInfo
from tailpipe_ai.semconv import attributes as sc

# Flags this module adds to records (tailpipe.flags is an open list).
FLAG_ESTIMATED_FROM_SIZE = "tokens_estimated_from_bytes"  # ~4 bytes of JSON body per token
FLAG_ESTIMATED_FROM_CHUNKS = "tokens_estimated_from_chunks"  # ~1 token per streamed content event
FLAG_UNREADABLE_ENCODING = "usage_unreadable_encoding"  # compressed with an encoding we cannot read
FLAG_TOO_LARGE = "usage_body_too_large"  # body over max_parse_bytes: forwarded, not parsed
FLAG_CLIENT_ABORTED = "client_aborted"
FLAG_UPSTREAM_FAILED = "upstream_failed"
FLAG_USAGE_CHUNK_KEPT = "usage_chunk_not_removed"  # inject mode on a compressed stream

BYTES_PER_TOKEN = 4  # the usual rule of thumb for English text and JSON (OpenAI tokenizer docs)

_USAGE_OBJECT = (b'"usage":{', b'"usage": {')


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A model-call endpoint: what a request to it means for the record."""

    route: str
    operation: str
    output_type: str
    kind: str  # chat | responses | completion | embeddings | images | messages | generate | embed
    model_in_path: str | None = None
    stream_in_path: bool = False

    @property
    def markers(self) -> tuple[bytes, ...]:
        if self.route == "gemini":
            return (b'"usageMetadata"',)
        if self.route == "anthropic":
            return (b'"usage"', b'"type":"error"')
        return _USAGE_OBJECT

    @property
    def keep_every_hit(self) -> bool:
        """Anthropic needs message_start and every message_delta in order; the others: the last wins."""
        return self.route == "anthropic"


_OPENAI = (
    ("/chat/completions", sc.OPERATION_CHAT, sc.OUTPUT_TYPE_TEXT, "chat"),
    ("/responses", sc.OPERATION_CHAT, sc.OUTPUT_TYPE_TEXT, "responses"),
    ("/completions", sc.OPERATION_TEXT_COMPLETION, sc.OUTPUT_TYPE_TEXT, "completion"),
    ("/embeddings", sc.OPERATION_EMBEDDINGS, sc.OUTPUT_TYPE_EMBEDDING, "embeddings"),
    ("/images/generations", sc.OPERATION_IMAGE_GENERATION, sc.OUTPUT_TYPE_IMAGE, "images"),
    ("/images/edits", sc.OPERATION_IMAGE_GENERATION, sc.OUTPUT_TYPE_IMAGE, "images"),
)
_MISTRAL = (
    ("/v1/chat/completions", sc.OPERATION_CHAT, sc.OUTPUT_TYPE_TEXT, "chat"),
    ("/v1/agents/completions", sc.OPERATION_CHAT, sc.OUTPUT_TYPE_TEXT, "chat"),
    ("/v1/fim/completions", sc.OPERATION_TEXT_COMPLETION, sc.OUTPUT_TYPE_TEXT, "chat"),
    ("/v1/embeddings", sc.OPERATION_EMBEDDINGS, sc.OUTPUT_TYPE_EMBEDDING, "embeddings"),
)
_GEMINI_METHODS = {
    "generateContent": (sc.OPERATION_GENERATE_CONTENT, sc.OUTPUT_TYPE_TEXT, "generate", False),
    "streamGenerateContent": (sc.OPERATION_GENERATE_CONTENT, sc.OUTPUT_TYPE_TEXT, "generate", True),
    "embedContent": (sc.OPERATION_EMBEDDINGS, sc.OUTPUT_TYPE_EMBEDDING, "embed", False),
    "batchEmbedContents": (sc.OPERATION_EMBEDDINGS, sc.OUTPUT_TYPE_EMBEDDING, "embed", False),
}
_GEMINI_PATH = re.compile(r"/models/([^/:]+):(\w+)$")


@lru_cache(maxsize=4096)
def endpoint(route: str, method: str, path: str) -> Endpoint | None:
    """The model-call endpoint a request goes to, or None for everything else (model lists,
    count_tokens, event logging, health probes: forwarded, not recorded). `path` has no query."""
    if method != "POST":
        return None
    if route == "anthropic":
        if path.rstrip("/").endswith("/v1/messages"):
            return Endpoint(route, sc.OPERATION_CHAT, sc.OUTPUT_TYPE_TEXT, "messages")
        return None
    if route == "openai":
        for suffix, operation, output, kind in _OPENAI:
            if path.endswith(suffix):
                return Endpoint(route, operation, output, kind)
        return None
    if route == "mistral":
        for suffix, operation, output, kind in _MISTRAL:
            if path.endswith(suffix):
                return Endpoint(route, operation, output, kind)
        return None
    if route == "gemini":
        m = _GEMINI_PATH.search(path)
        if m and m.group(2) in _GEMINI_METHODS:
            operation, output, kind, stream = _GEMINI_METHODS[m.group(2)]
            return Endpoint(route, operation, output, kind, model_in_path=m.group(1), stream_in_path=stream)
    return None


@lru_cache(maxsize=64)
def end_lines(ep: Endpoint) -> tuple[tuple[bytes, bytes], ...]:
    """The lines that end a stream (none where a stream just stops: Gemini), each as found at a block's
    start and after a newline: matched at a line's start only, so content quoting them never matches
    (inside JSON strings newlines are escaped). Worked out once per endpoint, not per stream.

    A client may hang up as soon as it has read such a line (the SDKs do): the stream was complete.
    """
    if ep.route == "anthropic":
        lines: tuple[bytes, ...] = (b"event: message_stop",)
    elif ep.kind == "responses":
        lines = tuple(f"event: {name}".encode() for name in openai_parser.RESPONSE_END_EVENTS)
    elif ep.route in ("openai", "mistral"):
        lines = (b"data: [DONE]",)
    else:
        lines = ()
    return tuple((line, b"\n" + line) for line in lines)


class _Decoder:
    """Incremental decompression of a copy of the response (gzip, zlib/deflate)."""

    __slots__ = ("_d",)

    def __init__(self) -> None:
        self._d = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib header, detected

    def __call__(self, data: bytes) -> bytes:
        return self._d.decompress(data)

    def flush(self) -> bytes:
        return self._d.flush()


def decoder_for(content_encoding: str | None) -> tuple[_Decoder | None, bool]:
    """(decoder or None, readable). Identity needs no decoder; br/zstd we cannot read."""
    if not content_encoding:
        return None, True
    enc = content_encoding.strip().lower()
    if enc in ("identity", ""):
        return None, True
    if enc in ("gzip", "x-gzip", "deflate"):
        return _Decoder(), True
    return None, False


HOLD_FOR_COUNT = 64 * 1024  # bytes of a stream held for a count of its events that may never be needed


class StreamScan:
    """Hot-path scanner of an SSE stream: per chunk a line-end search and a substring test per marker.

    Keeps the first `data:` line (model and id even when no usage comes) and the usage-bearing lines
    (all of them, or only the last). Counts events for the estimate when the provider sends no usage:
    lazily, since most streams report usage and counting blank lines was a third of a stream's scanning
    (~3.5 us for 4 KB). The blocks are held, by reference, up to `HOLD_FOR_COUNT` bytes, then counted.
    """

    __slots__ = (
        "_counted",
        "_decode",
        "_ends",
        "_ends_line",
        "_held",
        "_held_len",
        "_keep_all",
        "_limit",
        "_markers",
        "_pending",
        "_pending_len",
        "ended",
        "first",
        "hits",
        "overflow",
        "readable",
    )

    def __init__(self, ep: Endpoint, content_encoding: str | None, limit: int) -> None:
        self._decode, self.readable = decoder_for(content_encoding)
        self._markers = ep.markers
        self._keep_all = ep.keep_every_hit
        self._ends = end_lines(ep)
        self.ended = False  # the stream's last event went through: a hang-up after it loses nothing
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._limit = limit
        self.first: bytes | None = None
        self.hits: list[bytes] = []
        self._held: list[bytes] = []  # blocks not yet counted
        self._held_len = 0
        self._counted = 0
        self._ends_line = False  # the data counted so far ended a line
        self.overflow = False

    @property
    def events(self) -> int:
        """Events seen so far (blank-line framed, LF or CRLF as Gemini sends them)."""
        if self._held:
            self._count_held()
        return self._counted

    def _count_held(self) -> None:
        """Blank lines in the held blocks, also where one was cut between two blocks or two counts."""
        data = b"".join(self._held)
        self._held, self._held_len = [], 0
        if not data:
            return
        blank = b"\n\n" if b"\n\n" in data else b"\n\r\n"  # LF framing, or CRLF (Gemini)
        self._counted += data.count(blank)
        if self._ends_line and (data[:1] == b"\n" or data[:2] == b"\r\n"):
            self._counted += 1
        self._ends_line = data.endswith(b"\n")

    def feed(self, chunk: bytes) -> None:
        if self._decode is not None:
            chunk = self._decode(chunk)
        elif not self.readable:
            return
        if self._pending or not chunk.endswith(b"\n"):
            block = self._cut(chunk)
            if block is None:
                return
            self._block(block)
        else:  # the usual chunk: whole events, nothing pending
            self._block(chunk)

    def _cut(self, chunk: bytes) -> bytes | None:
        """The complete lines of what is pending plus `chunk`; the rest waits for the next chunk."""
        nl = chunk.rfind(b"\n")
        if nl < 0:
            if self._pending_len + len(chunk) > self._limit:
                self.overflow = True
                self._pending, self._pending_len = [], 0
            else:
                self._pending.append(chunk)
                self._pending_len += len(chunk)
            return None
        head = chunk[: nl + 1]
        block = b"".join((*self._pending, head)) if self._pending else head
        rest = chunk[nl + 1 :]
        self._pending, self._pending_len = ([rest], len(rest)) if rest else ([], 0)
        return block

    def _block(self, block: bytes) -> None:
        self._held.append(block)
        self._held_len += len(block)
        if self._held_len > HOLD_FOR_COUNT:
            self._count_held()
        if self.first is None:
            start = block.find(b"data:")
            if start >= 0:
                end = block.find(b"\n", start)
                self.first = block[start:end] if end >= 0 else block[start:]
        if not self.ended:
            for at_start, inside in self._ends:
                # rfind: the end line is the stream's last, so it is found after a short search from the end
                if block.startswith(at_start) or block.rfind(inside) >= 0:
                    self.ended = True
        if self._keep_all:
            self._keep_every_hit(block)
        else:
            self._keep_last_hit(block)

    # A usage line is found by the marker's position, then cut out between the newlines around it: no
    # split of the block into lines (a Python loop over every event), which cost ~10x the searches.
    # A marker is a JSON key with its quotes, so it never matches inside a JSON string (quotes there are
    # escaped), only in the event's own fields; the line must still be a `data:` line.

    def _keep_last_hit(self, block: bytes) -> None:
        """Only the last usage line counts (OpenAI, Mistral, Gemini): search from the block's end."""
        markers = self._markers
        end = len(block)
        while True:
            at = -1
            for marker in markers:  # a later marker only counts after the last one found: searched there
                found = block.rfind(marker, at + 1, end)
                if found > at:
                    at = found
            if at < 0:
                return
            start = block.rfind(b"\n", 0, at) + 1
            if block.startswith(b"data:", start):
                stop = block.find(b"\n", at)
                self.hits = [block[start:stop] if stop >= 0 else block[start:]]
                return
            end = start  # not a data line: look at the lines before it

    def _keep_every_hit(self, block: bytes) -> None:
        """Every usage line, in order (Anthropic: message_start, then each message_delta)."""
        found = []
        for marker in self._markers:
            at = block.find(marker)
            while at >= 0:
                found.append(at)
                at = block.find(marker, at + len(marker))
        if not found:
            return
        found.sort()
        last_start = -1
        for at in found:
            start = block.rfind(b"\n", 0, at) + 1
            if start == last_start:  # two markers on one line
                continue
            last_start = start
            if block.startswith(b"data:", start):
                stop = block.find(b"\n", at)
                self.hits.append(block[start:stop] if stop >= 0 else block[start:])

    def close(self) -> None:
        """End of stream: the decoder's tail and a last line without its newline."""
        tail = self._decode.flush() if self._decode is not None else b""
        if tail:
            self.feed(tail)
        if self._pending:
            block = b"".join(self._pending) + b"\n"
            self._pending, self._pending_len = [], 0
            self._block(block)


class BodyScan:
    """A non-streamed body: the (decompressed) bytes are kept until the telemetry thread decodes them."""

    __slots__ = ("_decode", "_limit", "_parts", "_size", "overflow", "readable")

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        self._decode, self.readable = decoder_for(content_encoding)
        self._parts: list[bytes] = []
        self._size = 0
        self._limit = limit
        self.overflow = False

    def feed(self, chunk: bytes) -> None:
        if self.overflow or not self.readable:
            return
        self._size += len(chunk)
        if self._size > self._limit:
            self.overflow = True
            self._parts = []
            return
        self._parts.append(chunk)

    def close(self) -> None:
        pass

    def body(self) -> bytes | None:
        if self.overflow or not self.readable:
            return None
        raw = b"".join(self._parts)
        self._parts = []
        if self._decode is None:
            return raw
        try:
            return self._decode(raw) + self._decode.flush()
        except zlib.error:
            self.readable = False
            return None


# ---------------------------------------------------------------------------------------------------------
# the telemetry-thread half
# ---------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    """What one response tells the record."""

    info: CallInfo
    flags: tuple[str, ...] = ()
    error_type: str | None = None
    estimated: bool = False


_SAFE_TYPE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def _safe(value: Any) -> str | None:
    """A provider error *type* (an enum like `rate_limit_error`); free text is never kept."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return value if isinstance(value, str) and _SAFE_TYPE.fullmatch(value) else None


def error_type(body: Any, status: int) -> str:
    """The provider's error type from an error body (OpenAI/Anthropic `error.type` or `error.code`, Gemini
    `error.status`, Mistral `type`), else `http_<status>`."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            for key in ("type", "status", "code"):
                found = _safe(err.get(key))
                if found:
                    return found
        found = _safe(body.get("type"))
        if found and found != "error":
            return found
    return f"http_{status}"


def _json(line: bytes) -> Any:
    payload = line[5:].strip() if line.startswith(b"data:") else line.strip()
    if not payload or payload == b"[DONE]":
        return None
    try:
        return orjson.loads(payload)
    except ValueError:
        return None


def _stream_parser(ep: Endpoint):
    if ep.route == "anthropic":
        return anthropic_parser.StreamParser()
    if ep.route == "openai":
        return openai_parser.stream_parser()
    if ep.route == "gemini":
        return gemini_parser.parse_chunk
    return mistral_parser.parse_chunk


def interpret_stream(ep: Endpoint, scan: StreamScan, complete: bool) -> Outcome:
    info: CallInfo | None = None
    flags: list[str] = []
    err: str | None = None
    if not scan.readable:
        flags.append(FLAG_UNREADABLE_ENCODING)
    if scan.overflow:
        flags.append(FLAG_TOO_LARGE)
    parse = _stream_parser(ep)
    # The usage-bearing events also name the model and the response id (every provider repeats them), so
    # the first event is only read when no usage came: one JSON decode and parse fewer per stream.
    lines = scan.hits or ([scan.first] if scan.first is not None else [])
    for line in lines:
        event = _json(line)
        if not isinstance(event, dict):
            continue
        if ep.route == "anthropic" and event.get("type") == "error":
            err = error_type(event, 200)
            continue
        parsed = parse(event)
        if parsed is None:
            continue
        if info is None:  # usually the only one: taken as it is (each parse returns a new CallInfo)
            info = parsed
        else:
            info.update(parsed)
    if info is None:
        info = CallInfo()
    estimated = False
    if err is None and (not complete or not info.has_usage):
        estimated = True
        if not info.has_usage:
            flags.append(sc.FLAG_USAGE_MISSING)
        if info.output_tokens is None and ep.output_type == sc.OUTPUT_TYPE_TEXT:
            info.output_tokens = scan.events
            flags.append(FLAG_ESTIMATED_FROM_CHUNKS)
    return Outcome(info, tuple(flags), err, estimated)


def interpret_body(ep: Endpoint, body: bytes | None, status: int, scan: BodyScan | None) -> Outcome:
    flags: list[str] = []
    if scan is not None and not scan.readable:
        flags.append(FLAG_UNREADABLE_ENCODING)
    if scan is not None and scan.overflow:
        flags.append(FLAG_TOO_LARGE)
    try:
        obj = orjson.loads(body) if body else None
    except ValueError:
        obj = None
    if status >= 400:
        return Outcome(CallInfo(), tuple(flags), error_type(obj, status))
    if isinstance(obj, dict):
        if ep.route == "openai":
            info = openai_parser.parse_images(obj) if ep.kind == "images" else openai_parser.parse_response(obj)
        elif ep.route == "anthropic":
            info = anthropic_parser.parse_response(obj)
        elif ep.route == "gemini":
            info = gemini_parser.parse_embeddings(obj) if ep.kind == "embed" else gemini_parser.parse_response(obj)
        else:
            parse = mistral_parser.parse_embeddings if ep.kind == "embeddings" else mistral_parser.parse_response
            info = parse(obj)
    else:
        info = CallInfo()
    if isinstance(obj, list) and ep.route == "gemini":  # streamGenerateContent without alt=sse: a JSON array
        for chunk in obj:
            parsed = gemini_parser.parse_chunk(chunk) if isinstance(chunk, dict) else None
            if parsed is not None:
                info.update(parsed)
    estimated = False
    if not info.has_usage and info.images is None:
        estimated = True
        flags.append(sc.FLAG_USAGE_MISSING)
        if body and ep.output_type == sc.OUTPUT_TYPE_TEXT:
            info.output_tokens = len(body) // BYTES_PER_TOKEN
            flags.append(FLAG_ESTIMATED_FROM_SIZE)
    return Outcome(info, tuple(flags), None, estimated)


def estimate_input_tokens(request_body: bytes, content_encoding: str | None) -> int | None:
    """Input tokens from the request size, when the provider reported none (~4 bytes per token)."""
    body = request_body_bytes(request_body, content_encoding)
    return None if body is None else len(body) // BYTES_PER_TOKEN


def request_body_bytes(request_body: bytes, content_encoding: str | None) -> bytes | None:
    """The request body as sent before content coding; None when the coding is unknown or corrupt."""
    if not content_encoding or content_encoding.strip().lower() == "identity":
        return request_body
    if content_encoding.strip().lower() in ("gzip", "x-gzip"):
        try:
            return gzip.decompress(request_body)
        except (OSError, EOFError, zlib.error):
            return None
    return None


def request_model(ep: Endpoint, request_body: bytes, content_encoding: str | None) -> tuple[str | None, bool]:
    """(model, stream) the request asked for: from the path (Gemini) or the JSON body. Runs on the
    telemetry thread; only the top-level fields are read."""
    if ep.model_in_path is not None:
        return ep.model_in_path, ep.stream_in_path
    body = request_body_bytes(request_body, content_encoding)
    fields = _request_fields(body) if body else None
    if fields is None:
        return None, False
    model, agent_id, stream = fields
    model = model or agent_id
    return (model if model is not None and len(model) <= 256 else None), stream


_parsers = threading.local()  # a simdjson parser is not shared between threads (Lambda records on a pool)
PARSER_KEEP_BYTES = 4 * 1024 * 1024  # a parser keeps buffers the size of its largest body: bigger ones get their own
# Below this orjson's whole parse is within 0.3 us of simdjson's (and under valgrind a quarter of its count).
LAZY_MIN_BYTES = 1024


def _request_fields(body: bytes) -> tuple[str | None, str | None, bool] | None:
    """`model`, `agent_id` (Mistral agents; None unless strings) and whether `stream` is true, of a JSON
    object; None when the body is not one."""
    if simdjson is None or len(body) < LAZY_MIN_BYTES:
        try:
            doc = orjson.loads(body)
        except ValueError:
            return None
        if not isinstance(doc, dict):
            return None
    else:
        parser = getattr(_parsers, "parser", None) if len(body) <= PARSER_KEEP_BYTES else simdjson.Parser()
        if parser is None:
            parser = _parsers.parser = simdjson.Parser()
        try:
            doc = parser.parse(body)
        except ValueError:  # not JSON, or not UTF-8 (a UnicodeDecodeError)
            return None
        if not isinstance(doc, simdjson.Object):
            return None
    # Only strings and a bool leave: nested values are views into the parser's buffer, and one kept alive
    # would make the parser refuse its next body.
    model, agent_id, stream = doc.get("model"), doc.get("agent_id"), doc.get("stream")
    return model if type(model) is str else None, agent_id if type(agent_id) is str else None, stream is True
