"""`moto_server`: one real moto server (AWS API emulator) on a free loopback port for the test session.

Use it from a conftest.py or a test module::

    from tests.servers.moto import moto_server  # noqa: F401

    def test_x(moto_server):
        s3 = moto_server.client("s3")                      # boto3 client, fake credentials, this endpoint
        monkeypatch.setenv(...) for k, v in moto_server.env().items()   # for code that builds its own clients

Why a fixture object rather than environment variables set for the whole session: fake AWS credentials in
``os.environ`` would leak into every other test. `env()` gives the variables for a test to set with
``monkeypatch`` when the code under test makes its own clients.

The server is shared by the whole session: give buckets and streams unique names (`unique()`), or call
`reset()` (moto's own reset API) in a test that needs an empty account. Note what moto does not emulate
for Firehose (see /work/shared/reference/pipeline.md): each put is written at once as one S3 object,
uncompressed, with ``!{...}`` prefix expressions kept literally and ``FailedPutCount`` always 0.
"""

from __future__ import annotations

import socket
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

REGION = "eu-west-1"
CREDENTIALS = {
    "aws_access_key_id": "testing-access-key",
    "aws_secret_access_key": "testing-secret-key",
    "aws_session_token": "testing-session-token",
}


@dataclass
class MotoServer:
    endpoint_url: str
    region: str = REGION
    credentials: dict[str, str] = field(default_factory=lambda: dict(CREDENTIALS))

    def client(self, service: str, region: str | None = None, **kwargs: Any) -> Any:
        """A boto3 client for `service` talking to this server with fake credentials."""
        import boto3

        return boto3.session.Session(**self.credentials).client(
            service, region_name=region or self.region, endpoint_url=self.endpoint_url, **kwargs
        )

    def env(self) -> dict[str, str]:
        """Environment variables that point code building its own boto3 clients at fake credentials."""
        return {
            "AWS_ACCESS_KEY_ID": self.credentials["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": self.credentials["aws_secret_access_key"],
            "AWS_SESSION_TOKEN": self.credentials["aws_session_token"],
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def reset(self) -> None:
        """Forget every resource (moto's reset API)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    @staticmethod
    def unique(prefix: str) -> str:
        """A resource name no other test uses: '<prefix>-<8 hex>' (lowercase, valid for buckets and streams)."""
        return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _wait_listening(host: str, port: int, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto server did not start listening on {host}:{port}") from None
            time.sleep(0.02)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """Start moto's threaded server on 127.0.0.1 (a free port chosen by the OS); stop it after the session."""
    moto_server_mod = pytest.importorskip("moto.moto_server.threaded_moto_server")
    server = moto_server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        _wait_listening(host, port)
        yield MotoServer(endpoint_url=f"http://{host}:{port}")
    finally:
        server.stop()
