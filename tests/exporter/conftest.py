"""Fixtures for the exporter tests: fake AWS credentials, the moto server, the fault-injecting endpoint."""

from __future__ import annotations

import itertools

import pytest

from tests.exporter.fake_firehose import FakeFirehose
from tests.servers.moto import CREDENTIALS, moto_server  # noqa: F401

_counter = itertools.count()


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Fake AWS credentials in the environment, no config files, no instance metadata lookups."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", CREDENTIALS["aws_session_token"])
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for var in list(__import__("os").environ):
        if var.startswith(("TAILPIPE_FIREHOSE", "TAILPIPE_RESIDENCY", "TAILPIPE_SINK", "TAILPIPE_SPOOL")):
            monkeypatch.delenv(var)


@pytest.fixture
def fake_firehose():
    with FakeFirehose() as fake:
        yield fake


def make_record(i: int = 0, **fields):
    """A valid record with a recognisable request_model per index."""
    from tailpipe_ai.semconv import Record

    values = dict(
        integration="sdk",
        provider="openai",
        token_accuracy="exact",
        request_model=f"gpt-test-{i}",
        input_tokens=10 + i,
        output_tokens=5,
    )
    values.update(fields)
    return Record(**values)
