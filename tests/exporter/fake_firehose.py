"""A fault-injecting Firehose endpoint on 127.0.0.1, spoken to by real boto3 over real HTTP.

It answers ``Firehose_20150804.PutRecordBatch`` (JSON 1.1 protocol) and records every call: the stream
name, the AWS region the request was signed for (from the SigV4 credential scope) and each record's bytes.
`behaviour(call_number, records)` decides the answer, so a test can script partial failures (per-record
ErrorCodes), throttled calls, outages (connection dropped without a reply) and slow answers. Accepted
records are kept in `delivered`; with `lake` set, each accepted call is also written into that local lake
folder as one Firehose-shaped gzip object, so compaction can run over what "S3" received.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Accept:
    """Every record accepted."""


@dataclass
class Partial:
    """A 200 with the records at `failed` (index -> ErrorCode) rejected."""

    failed: dict[int, str]


@dataclass
class CallError:
    """The whole call fails with this HTTP status and error code."""

    status: int = 400
    code: str = "ThrottlingException"


@dataclass
class Hangup:
    """The connection is closed without an answer (endpoint unreachable)."""


@dataclass
class Slow:
    """Accept after sleeping `seconds`."""

    seconds: float


@dataclass
class Hold:
    """Accept once `release` is set (at most 30 s): an endpoint that hangs until the test lets it go."""

    release: threading.Event


Behaviour = Callable[[int, list[bytes]], object]


@dataclass
class Call:
    stream: str
    region: str | None
    records: list[bytes]
    answer: object


@dataclass
class FakeFirehose:
    behaviour: Behaviour = lambda n, records: Accept()
    lake: Path | None = None
    calls: list[Call] = field(default_factory=list)
    delivered: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                target = self.headers.get("X-Amz-Target", "")
                if not target.endswith(".PutRecordBatch"):
                    return self._reply(400, {"__type": "UnknownOperationException", "message": target})
                request = json.loads(body)
                records = [base64.b64decode(r["Data"]) for r in request["Records"]]
                scope = re.search(
                    r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/firehose/", self.headers.get("Authorization", "")
                )
                with fake._lock:
                    number = len(fake.calls)
                    answer = fake.behaviour(number, records)
                    fake.calls.append(Call(request["DeliveryStreamName"], scope and scope.group(1), records, answer))
                if isinstance(answer, Slow):
                    time.sleep(answer.seconds)
                    answer = Accept()
                if isinstance(answer, Hold):
                    answer.release.wait(30)
                    answer = Accept()
                if isinstance(answer, Hangup):
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return None
                if isinstance(answer, CallError):
                    return self._reply(answer.status, {"__type": answer.code, "message": "injected by the test"})
                failed = answer.failed if isinstance(answer, Partial) else {}
                responses = []
                kept = []
                for i, data in enumerate(records):
                    if i in failed:
                        responses.append({"ErrorCode": failed[i], "ErrorMessage": "injected by the test"})
                    else:
                        responses.append({"RecordId": uuid.uuid4().hex})
                        kept.append(data)
                fake._deliver(kept)
                return self._reply(
                    200, {"FailedPutCount": len(failed), "Encrypted": False, "RequestResponses": responses}
                )

            def _reply(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _deliver(self, kept: list[bytes]) -> None:
        with self._lock:
            self.delivered.extend(kept)
        if self.lake is not None and kept:
            from tailpipe_ai.lake.layout import raw_object_name, raw_partition

            now = datetime.now(timezone.utc)
            folder = self.lake / raw_partition(now.date())
            folder.mkdir(parents=True, exist_ok=True)
            (folder / raw_object_name(now, "fake-firehose")).write_bytes(gzip.compress(b"".join(kept)))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeFirehose:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
