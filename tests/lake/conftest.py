"""Lake tests use the real S3-compatible server (SeaweedFS) for s3:// lakes."""

from tests.servers.seaweed import s3_server  # noqa: F401
