"""OTLP/HTTP wire format: request bodies in (protobuf or JSON, gzip or not), responses out.

Follows the OTLP specification (opentelemetry-proto docs/specification.md, "OTLP/HTTP"): the response
uses the request's content type; success is 200 with an Export*ServiceResponse whose ``partial_success``
is set only when something was rejected; failures carry a ``google.rpc.Status``; 400 for bodies that
cannot be decoded, 413 for bodies over the limit (before and after decompression), 415 for unsupported
content types or encodings.

OTLP/JSON differs from protobuf's canonical JSON mapping: trace and span ids are hex, not base64. They
are converted before parsing, so both formats end up as the same protobuf message and one code path reads
them.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

# google.rpc.Code values used in Status bodies.
CODE_INVALID_ARGUMENT = 3
CODE_PERMISSION_DENIED = 7
CODE_RESOURCE_EXHAUSTED = 8
CODE_UNAVAILABLE = 14
CODE_UNAUTHENTICATED = 16
_STATUS_CODES = {
    400: CODE_INVALID_ARGUMENT,
    401: CODE_UNAUTHENTICATED,
    403: CODE_PERMISSION_DENIED,
    413: CODE_RESOURCE_EXHAUSTED,
    415: CODE_INVALID_ARGUMENT,
    429: CODE_RESOURCE_EXHAUSTED,
    503: CODE_UNAVAILABLE,
}


class OtlpError(Exception):
    """A request that cannot be accepted; ``status`` is the HTTP status, the message is safe to return."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def content_type(header: str | None) -> str:
    """``PROBUF`` or ``JSON`` from a Content-Type header; OtlpError 415 otherwise."""
    media = (header or "").split(";", 1)[0].strip().lower()
    if media in (PROTOBUF, JSON):
        return media
    raise OtlpError(415, f"unsupported Content-Type {media or '(none)'!r}: use {PROTOBUF} or {JSON}")


def decompress(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """The body after ``Content-Encoding`` (gzip, deflate or none), refusing more than ``max_bytes`` out."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("identity", ""):
        return body
    if enc not in ("gzip", "deflate"):
        raise OtlpError(415, f"unsupported Content-Encoding {enc!r}: use gzip or none")
    inflater = zlib.decompressobj(wbits=31 if enc == "gzip" else 15)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error:
        raise OtlpError(400, f"request body is not valid {enc} data") from None
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise OtlpError(413, f"request body is larger than {max_bytes} bytes once decompressed")
    if not inflater.eof:
        raise OtlpError(400, f"request body is truncated {enc} data")
    return out


def parse(body: bytes, media: str, message_type: type[Message]) -> Message:
    """The Export*ServiceRequest in ``body``; OtlpError 400 (with a short reason) if it is not one."""
    if media == PROTOBUF:
        try:
            return message_type.FromString(body)
        except (DecodeError, ValueError, RuntimeError):
            raise OtlpError(400, "request body is not a valid OTLP protobuf message") from None
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise OtlpError(400, "request body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise OtlpError(400, "OTLP/JSON request must be a JSON object")
    try:
        _hex_ids_to_base64(doc)
        return json_format.ParseDict(doc, message_type(), ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, AttributeError):
        raise OtlpError(400, "request body is not a valid OTLP/JSON message") from None


_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _hex_ids_to_base64(node: Any) -> None:
    """OTLP/JSON writes ids as hex; protobuf's JSON mapping wants base64 for bytes fields."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                if value and len(value) % 2 == 0:
                    try:
                        node[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
                    except ValueError:
                        raise ValueError("bad id") from None
            elif isinstance(value, (dict, list)):
                _hex_ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids_to_base64(item)


def encode_message(message: Message, media: str) -> bytes:
    if media == PROTOBUF:
        return message.SerializeToString()
    return json_format.MessageToJson(message, indent=None).encode("utf-8")


def status_body(http_status: int, message: str, media: str) -> bytes:
    """A ``google.rpc.Status`` (code + message), in the request's format."""
    code = _STATUS_CODES.get(http_status, 2)  # 2: UNKNOWN
    if media == JSON:
        return json.dumps({"code": code, "message": message}).encode("utf-8")
    text = message.encode("utf-8")
    return bytes([0x08, code, 0x12]) + _varint(len(text)) + text  # field 1 varint, field 2 bytes


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def any_value(v: Any) -> Any:
    """A Python value for an OTLP AnyValue: str, int, float, bool, or a tuple of those; None otherwise."""
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "int_value":
        return v.int_value
    if kind == "double_value":
        return v.double_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "array_value":
        return tuple(any_value(x) for x in v.array_value.values)
    return None  # kvlist and bytes values carry nothing we read
