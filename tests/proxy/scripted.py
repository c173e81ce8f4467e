"""A raw-socket upstream that follows a script, to see exactly when the proxy closes a connection."""

from __future__ import annotations

import socket
import threading
import time

HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
    b"request-id: req_scripted\r\n\r\n"
)
START = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_s","model":"claude-x",'
    b'"usage":{"input_tokens":7,"output_tokens":1}}}\n\n'
)
STOP = (
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
    b'"usage":{"output_tokens":5}}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n'
)


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class ScriptedUpstream:
    """`mode`: hang | first-then-hang | all-then-hang | close | reset-mid-stream | silent-gap."""

    def __init__(self, mode: str, gap: float = 0.0) -> None:
        self.mode, self.gap = mode, gap
        self.closed_by_peer = threading.Event()
        self.got_request = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> ScriptedUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop = True
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _read_request(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        while len(body) < length:
            body += conn.recv(65536)
        self.got_request.set()

    def _wait_for_close(self, conn: socket.socket, timeout: float = 10.0) -> None:
        conn.settimeout(timeout)
        try:
            while conn.recv(1024):
                pass
            self.closed_by_peer.set()  # recv returned b"": the proxy closed the connection
        except (ConnectionResetError, OSError):
            self.closed_by_peer.set()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            self._read_request(conn)
            if self.mode == "hang":
                self._wait_for_close(conn)
            elif self.mode == "close":
                conn.close()
            elif self.mode == "first-then-hang":
                conn.sendall(HEAD + chunk(START))
                self._wait_for_close(conn)
            elif self.mode == "all-then-hang":  # every event, but the chunked terminator never comes
                conn.sendall(HEAD + chunk(START) + chunk(STOP))
                self._wait_for_close(conn)
            elif self.mode == "reset-mid-stream":
                conn.sendall(HEAD + chunk(START))
                time.sleep(0.05)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                conn.close()  # RST, no final chunk
            elif self.mode == "silent-gap":
                conn.sendall(HEAD + chunk(START))
                time.sleep(self.gap)
                conn.sendall(chunk(STOP) + b"0\r\n\r\n")
                self._wait_for_close(conn, timeout=2)
