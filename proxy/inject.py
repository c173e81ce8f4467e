"""The opt-in "minimal modification" mode for OpenAI Chat Completions streams.

OpenAI streams carry usage only when the request sets `stream_options.include_usage`. With
`inject_openai_stream_usage` on, the proxy sets it on streamed chat requests that did not, and removes
what that changes in the answer: the extra usage-only chunk before `data: [DONE]` and the
`"usage":null` member it adds to every other chunk, so the client sees the stream it asked for.
Off by default: it rewrites the request body (re-serialised JSON) and each response event.
"""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any


def with_include_usage(body: bytes, content_encoding: str | None) -> bytes | None:
    """The request body with `stream_options.include_usage` set, uncompressed; None when the request
    is not a stream, already asks for usage, or is not a JSON object we can read."""
    try:
        raw = gzip.decompress(body) if content_encoding and content_encoding.lower() in ("gzip", "x-gzip") else body
        obj: Any = json.loads(raw)
    except (ValueError, OSError, EOFError, zlib.error):
        return None
    if not isinstance(obj, dict) or obj.get("stream") is not True:
        return None
    options = obj.get("stream_options")
    if options is None:
        options = {}
    if not isinstance(options, dict) or "include_usage" in options:
        return None  # the client decided itself (nothing to hide then)
    obj["stream_options"] = {**options, "include_usage": True}
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


class UsageChunkStripper:
    """Removes the injected usage chunk and `"usage":null` members from an SSE byte stream.

    Works on whole events (split at blank lines), so it holds back at most one partial event."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def __call__(self, chunk: bytes) -> bytes:
        data = self._pending + chunk if self._pending else chunk
        end = data.rfind(b"\n\n")
        if end < 0:
            self._pending = data
            return b""
        self._pending = data[end + 2 :]
        return self._strip(data[: end + 2])

    def flush(self) -> bytes:
        rest, self._pending = self._pending, b""
        return self._strip(rest) if rest else b""

    @staticmethod
    def _strip(events: bytes) -> bytes:
        if b'"choices":[]' in events and b'"usage":{' in events:
            kept = [e for e in events.split(b"\n\n") if not (b'"choices":[]' in e and b'"usage":{' in e)]
            events = b"\n\n".join(kept)
        return events.replace(b',"usage":null', b"").replace(b'"usage":null,', b"")
