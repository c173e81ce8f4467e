"""Where a lake lives: a local folder or an S3 prefix, behind one small interface.

Compaction, report and verify only ever need four things from a lake: list the objects under a prefix,
open one for streaming reads, publish a complete file under a name atomically, and tell DuckDB how to
read it. ``open_lake(location)`` gives a `LocalLake` for a folder (or ``file://`` URL) and an `S3Lake`
for ``s3://bucket/prefix``; callers never branch on which one they hold.

Keys are always relative to the lake root and use '/' (``ai-telemetry-raw/year=2026/.../x.gz``).

S3 configuration is boto3's own (the standard ``AWS_*`` variables, profiles, instance roles). For an
S3-compatible server (SeaweedFS, MinIO, LocalStack), set ``TAILPIPE_S3_ENDPOINT`` or
``AWS_ENDPOINT_URL_S3`` to its URL; path-style addressing is used then. Credentials are never logged
or put in an error message.

Publishing is atomic in both: a local file is written beside its target and renamed over it; an S3
object becomes visible only when its PUT (or the completion of its multipart upload) succeeds. Both
skip the write when the published object already has the same SHA-256, so a rerun changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from tailpipe_ai.exporter.durable import fsync_dir as _fsync_dir

from .layout import local_path

__all__ = ["Entry", "LakeError", "LocalLake", "S3Lake", "Storage", "file_sha256", "is_s3", "open_lake"]

SHA256_METADATA = "sha256"
"""S3 user metadata key (``x-amz-meta-sha256``) holding the hex SHA-256 of a published object."""

MULTIPART_BYTES = 8 * 1024 * 1024
"""Part size for S3 uploads; memory used by an upload is about this times the upload concurrency."""

UPLOAD_CONCURRENCY = 4


class LakeError(RuntimeError):
    """A lake location is unusable (bad URL, no access, missing bucket); the message says what to do."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One object of a lake: its key (relative to the lake root) and size in bytes."""

    key: str
    size: int


class Storage(Protocol):
    """What the lake tools need from where the lake lives."""

    location: str
    """The lake root as the user wrote it (a folder or ``s3://bucket/prefix``), for messages."""

    def list(self, prefix: str) -> list[Entry]:
        """Every object whose key starts with ``prefix`` (a folder-like prefix ending in '/'), sorted by key."""
        ...

    def open(self, key: str) -> BinaryIO:
        """A binary stream of the object (``read(n)``, context manager); OSError if it cannot be read."""
        ...

    def head(self, key: str, n: int) -> bytes:
        """The first ``n`` bytes of an object (fewer if it is shorter); OSError if it cannot be read."""
        ...

    def exists(self, key: str) -> bool: ...

    def url(self, key: str) -> str:
        """Where the object is, for messages and for DuckDB (a local path or an ``s3://`` URL)."""
        ...

    def staging_dir(self, key: str, scratch: Path) -> Path:
        """The folder to write a file that `publish` will move to ``key`` (same filesystem when local)."""
        ...

    def same(self, key: str, digest: str) -> bool:
        """True when the object ``key`` exists and its SHA-256 is ``digest`` (so publishing would change nothing)."""
        ...

    def publish(self, key: str, path: Path, digest: str) -> None:
        """Make the complete file ``path`` (SHA-256 ``digest``) the object ``key`` atomically; ``path`` is consumed."""
        ...

    def delete(self, key: str) -> None:
        """Remove an object if present."""
        ...

    def prepare_duckdb(self, con: Any) -> None:
        """Make ``con`` able to read this lake's URLs (nothing to do for a folder)."""
        ...


def is_s3(location: str | os.PathLike[str]) -> bool:
    return os.fspath(location).startswith("s3://")


def open_lake(location: str | os.PathLike[str]) -> Storage:
    """The storage of a lake location: ``s3://bucket[/prefix]``, ``file://...`` or a folder path."""
    if is_s3(location):
        return S3Lake(os.fspath(location))
    return LocalLake(location)


def file_sha256(path: Path) -> str:
    digest = sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------------
# a local folder
# ---------------------------------------------------------------------------------------------------------


class LocalLake:
    """A lake in a local folder (the default, ``./tailpipe-lake``)."""

    def __init__(self, location: str | os.PathLike[str]) -> None:
        self.root = local_path(location)
        self.location = str(self.root)

    def path(self, key: str) -> Path:
        return self.root / key

    def url(self, key: str) -> str:
        return str(self.root / key)

    def list(self, prefix: str) -> list[Entry]:
        base = self.root / prefix
        out: list[Entry] = []
        for current, dirs, files in os.walk(base):
            dirs.sort()
            rel = Path(current).relative_to(self.root).as_posix()
            for name in files:
                path = Path(current, name)
                try:
                    size = path.stat().st_size
                except OSError:  # gone meanwhile, or a dangling link: still listed, reading it reports why
                    size = 0
                out.append(Entry(f"{rel}/{name}" if rel != "." else name, size))
        out.sort(key=lambda e: e.key)
        return out

    def open(self, key: str) -> BinaryIO:
        return open(self.root / key, "rb")

    def head(self, key: str, n: int) -> bytes:
        with open(self.root / key, "rb") as f:
            return f.read(n)

    def exists(self, key: str) -> bool:
        return (self.root / key).is_file()

    def staging_dir(self, key: str, scratch: Path) -> Path:
        folder = (self.root / key).parent
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def same(self, key: str, digest: str) -> bool:
        target = self.root / key
        return target.is_file() and file_sha256(target) == digest

    def publish(self, key: str, path: Path, digest: str) -> None:
        target = self.root / key
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)  # same folder (staging_dir), so an atomic rename
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def prepare_duckdb(self, con: Any) -> None:
        return None


# ---------------------------------------------------------------------------------------------------------
# S3 (and S3-compatible servers)
# ---------------------------------------------------------------------------------------------------------


def s3_endpoint() -> str | None:
    """The S3 endpoint override: ``TAILPIPE_S3_ENDPOINT``, else ``AWS_ENDPOINT_URL_S3``, else None (AWS)."""
    return os.environ.get("TAILPIPE_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL_S3") or None


class S3Lake:
    """A lake under ``s3://bucket/prefix`` (what the Firehose stream writes to)."""

    def __init__(self, location: str) -> None:
        rest = location[len("s3://") :]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise LakeError(f"{location!r} names no bucket: use s3://BUCKET[/PREFIX]")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.location = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.endpoint = s3_endpoint()
        self._client: Any = None
        self._client_pid = 0

    # boto3 clients are not safe to share across fork: each process makes its own.
    @property
    def client(self) -> Any:
        if self._client is None or self._client_pid != os.getpid():
            self._client = self._new_client()
            self._client_pid = os.getpid()
        return self._client

    def _session(self) -> Any:
        try:
            import boto3
        except ImportError as exc:
            raise LakeError("an s3:// lake needs boto3: pip install boto3") from exc
        return boto3.session.Session()

    def _new_client(self) -> Any:
        from botocore.config import Config

        config = Config(
            s3={"addressing_style": "path"} if self.endpoint else {},
            retries={"max_attempts": 5, "mode": "standard"},
        )
        return self._session().client("s3", endpoint_url=self.endpoint, config=config)

    def key(self, key: str) -> str:
        return self.prefix + key

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def _errors(self, what: str) -> Any:
        return _S3Errors(self, what)

    def list(self, prefix: str) -> list[Entry]:
        out: list[Entry] = []
        strip = len(self.prefix)
        with self._errors(f"list {self.url(prefix)}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.key(prefix))
            for page in pages:
                for item in page.get("Contents", ()):
                    out.append(Entry(item["Key"][strip:], int(item.get("Size", 0))))
        out.sort(key=lambda e: e.key)
        return out

    def open(self, key: str) -> BinaryIO:
        with self._errors(f"read {self.url(key)}"):
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(key))["Body"]
        return _S3Stream(body, self.url(key))

    def head(self, key: str, n: int) -> bytes:
        with self._errors(f"read {self.url(key)}"):
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=self.key(key), Range=f"bytes=0-{n - 1}")["Body"]
            except Exception as exc:  # an empty object has no byte 0: S3 answers 416 InvalidRange
                if _code(exc) == "InvalidRange":
                    return b""
                raise
            with contextlib.closing(body):
                return body.read(n)

    def _metadata(self, key: str) -> dict[str, str] | None:
        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=self.key(key))
        except Exception as exc:
            if _code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return None
            with self._errors(f"read {self.url(key)}"):
                raise
        return {k.lower(): v for k, v in (answer.get("Metadata") or {}).items()}

    def exists(self, key: str) -> bool:
        return self._metadata(key) is not None

    def staging_dir(self, key: str, scratch: Path) -> Path:
        return scratch

    def same(self, key: str, digest: str) -> bool:
        """One HEAD: the SHA-256 we stored in the object's metadata when we published it."""
        existing = self._metadata(key)
        return existing is not None and existing.get(SHA256_METADATA) == digest

    def publish(self, key: str, path: Path, digest: str) -> None:
        """Upload ``path`` as ``key`` (multipart past `MULTIPART_BYTES`, streamed from the file).

        S3 makes an object visible only once its upload completes, so readers see the old object or the
        new one, never a partial one. The SHA-256 goes into the object's metadata for `same`.
        """
        from boto3.s3.transfer import TransferConfig

        try:
            config = TransferConfig(
                multipart_threshold=MULTIPART_BYTES,
                multipart_chunksize=MULTIPART_BYTES,
                max_concurrency=UPLOAD_CONCURRENCY,
            )
            extra = {"Metadata": {SHA256_METADATA: digest}, "ContentType": _content_type(key)}
            with self._errors(f"write {self.url(key)}"), open(path, "rb") as f:
                self.client.upload_fileobj(f, self.bucket, self.key(key), ExtraArgs=extra, Config=config)
        finally:
            path.unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        with self._errors(f"delete {self.url(key)}"):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(key))

    def prepare_duckdb(self, con: Any) -> None:
        """Load the pinned httpfs extension from its wheel (never downloaded) and give DuckDB our S3 settings."""
        load_httpfs(con)
        session = self._session()
        creds = session.get_credentials()
        if creds is None:
            raise LakeError(
                f"no AWS credentials found to read {self.location}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "AWS_PROFILE, or run where an instance role is available"
            )
        frozen = creds.get_frozen_credentials()
        region = session.region_name or os.environ.get("AWS_REGION") or "us-east-1"
        options = {"KEY_ID": frozen.access_key, "SECRET": frozen.secret_key, "REGION": region}
        if frozen.token:
            options["SESSION_TOKEN"] = frozen.token
        if self.endpoint:
            scheme, _, host = self.endpoint.partition("://")
            options |= {"ENDPOINT": host.rstrip("/"), "URL_STYLE": "path", "USE_SSL": scheme == "https"}
        body = ", ".join(f"{name} {_sql_literal(value)}" for name, value in options.items())
        try:
            con.execute(f"CREATE OR REPLACE TEMPORARY SECRET tailpipe_s3 (TYPE s3, {body})")
        except Exception as exc:  # the statement holds the secret: never let it reach a message
            raise LakeError(f"DuckDB refused the S3 settings for {self.location} ({type(exc).__name__})") from None


class _S3Errors(contextlib.AbstractContextManager):
    """Turn botocore errors into OSError/LakeError with a message naming the object and what to check."""

    def __init__(self, lake: S3Lake, what: str) -> None:
        self.lake, self.what = lake, what

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, (OSError, LakeError)):
            return False
        try:
            from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
        except ImportError:  # pragma: no cover
            return False
        if isinstance(exc, NoCredentialsError):
            raise LakeError(f"cannot {self.what}: no AWS credentials (set AWS_ACCESS_KEY_ID or AWS_PROFILE)") from None
        if isinstance(exc, ClientError):
            code = _code(exc)
            if code == "NoSuchBucket":
                raise LakeError(f"cannot {self.what}: bucket {self.lake.bucket!r} does not exist") from None
            if code in {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}:
                raise LakeError(
                    f"cannot {self.what}: access denied ({code}); check the credentials and policy"
                ) from None
            if code in {"NoSuchKey", "404", "NotFound"}:
                raise FileNotFoundError(f"cannot {self.what}: no such object") from None
            raise OSError(f"cannot {self.what}: {code}") from None
        if isinstance(exc, BotoCoreError):
            where = f" at {self.lake.endpoint}" if self.lake.endpoint else ""
            raise LakeError(f"cannot {self.what}: S3{where} is unreachable ({type(exc).__name__})") from None
        return False


class _S3Stream:
    """A streaming object body with file semantics (``read(n)``, context manager; errors as OSError)."""

    def __init__(self, body: Any, name: str) -> None:
        self.body, self.name = body, name

    def read(self, n: int = -1) -> bytes:
        try:
            return self.body.read(n if n >= 0 else None)
        except Exception as exc:
            raise OSError(f"reading {self.name} failed ({type(exc).__name__})") from None

    def close(self) -> None:
        self.body.close()

    def __enter__(self) -> _S3Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _content_type(key: str) -> str:
    if key.endswith(".parquet"):
        return "application/vnd.apache.parquet"
    return "application/gzip" if key.endswith(".gz") else "application/octet-stream"


def _sql_literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "'" + str(value).replace("'", "''") + "'"


# ---------------------------------------------------------------------------------------------------------
# DuckDB httpfs, offline
# ---------------------------------------------------------------------------------------------------------


def httpfs_extension_path() -> Path:
    """The httpfs extension shipped by the ``duckdb-extension-httpfs`` wheel for the installed DuckDB version."""
    import duckdb

    version = duckdb.__version__
    try:
        import duckdb_extension_httpfs as wheel
    except ImportError as exc:
        raise LakeError(
            f"reading an s3:// lake needs DuckDB's httpfs extension: pip install duckdb-extension-httpfs=={version}"
        ) from exc
    path = Path(wheel.__file__).parent / "extensions" / f"v{version}" / "httpfs.duckdb_extension"
    if not path.is_file():
        raise LakeError(
            f"duckdb-extension-httpfs does not match duckdb {version}: pip install duckdb-extension-httpfs=={version}"
        )
    return path


def load_httpfs(con: Any) -> None:
    """Load httpfs from the wheel; never let DuckDB download an extension at run time."""
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute(f"LOAD {_sql_literal(httpfs_extension_path())}")


@contextlib.contextmanager
def scratch_dir(parent: Path | None, prefix: str) -> Iterator[Path]:
    """A private temporary folder (removed afterwards), named so leftovers of dead runs can be recognised."""
    import tempfile

    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def temp_name(target_name: str) -> str:
    """A hidden temporary file name for ``target_name`` carrying our pid (see compact._remove_leftovers)."""
    return f".{target_name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
