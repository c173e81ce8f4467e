"""Fixtures for the billing tests: the committed sample files and the real S3 server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers.seaweed import s3_server  # noqa: F401

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES
