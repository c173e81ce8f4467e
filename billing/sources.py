"""Streaming readers for billing files: local or s3://, CSV, gzip CSV and Parquet, as Arrow record batches.

Why it looks like this: a month of CUR for a large account is gigabytes, so files are never loaded whole.
CSV is parsed by pyarrow's streaming reader on one thread (only the columns a reader asks for, every
value as a string, so one junk cell cannot fail a whole block), Parquet by ``iter_batches``. S3 objects
are streamed with boto3 ``get_object`` (Parquet needs random access, so it is spooled to a temporary
file first). Rows with the wrong number of cells are skipped and counted, never fatal.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BATCH_ROWS = 65_536
CSV_BLOCK_BYTES = 4 << 20
_HEADER_PEEK = 1 << 20
_SUFFIXES = (".csv", ".csv.gz", ".gz", ".parquet", ".snappy.parquet", ".gz.parquet")


class SourceError(ValueError):
    """A billing input cannot be opened or read (missing file, no access, not CSV/Parquet)."""


@dataclass(frozen=True, slots=True)
class Input:
    """One billing file: a local path or an S3 object. ``name`` is what messages show."""

    name: str
    kind: str  # csv | parquet
    gzip: bool
    path: Path | None = None
    bucket: str | None = None
    key: str | None = None


def _kind(name: str) -> tuple[str, bool] | None:
    low = name.lower()
    if low.endswith(".parquet"):
        return "parquet", False
    if low.endswith(".csv.gz") or low.endswith(".gz"):
        return "csv", True
    if low.endswith(".csv"):
        return "csv", False
    return None


def expand(paths: Sequence[str], s3_client: Any = None) -> list[Input]:
    """Every billing file under the given paths (files, folders, s3://bucket/prefix), in name order."""
    found: list[Input] = []
    for raw in paths:
        if raw.startswith("s3://"):
            found.extend(_s3_inputs(raw, s3_client))
            continue
        p = Path(raw)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and _kind(f.name) and not f.name.startswith("."))
            if not files:
                raise SourceError(f"no CSV, .csv.gz or Parquet files under {raw}")
            found.extend(_local(f) for f in files)
        elif p.is_file():
            found.append(_local(p))
        else:
            raise SourceError(f"no such file or folder: {raw}")
    return found


def _local(p: Path) -> Input:
    kind = _kind(p.name) or ("csv", False)  # a file named explicitly is tried as CSV
    return Input(str(p), kind[0], kind[1], path=p)


def _split_s3(url: str) -> tuple[str, str]:
    rest = url[len("s3://"):]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise SourceError(f"not an S3 location: {url!r}; use s3://bucket/prefix")
    return bucket, prefix


def s3_client_from_env() -> Any:
    """A boto3 S3 client (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL are honoured by boto3 itself)."""
    try:
        import boto3
    except ImportError:
        raise SourceError("reading s3:// needs boto3: pip install 'tailpipe-ai[billing]'") from None
    return boto3.client("s3")


def _s3_inputs(url: str, client: Any) -> list[Input]:
    bucket, prefix = _split_s3(url)
    client = client or s3_client_from_env()
    out: list[Input] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                kind = _kind(key)
                if kind is None or key.rsplit("/", 1)[-1].startswith("."):
                    continue  # manifests, metadata, folders
                out.append(Input(f"s3://{bucket}/{key}", kind[0], kind[1], bucket=bucket, key=key))
    except Exception as exc:
        raise SourceError(f"cannot list {url}: {_aws_reason(exc)}") from None
    if not out:
        raise SourceError(f"no CSV, .csv.gz or Parquet objects under {url}")
    return sorted(out, key=lambda i: i.name)


def _aws_reason(exc: Exception) -> str:
    """The error code of an AWS error (never the request or credentials), else the exception type."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    return f"{code}" if code else type(exc).__name__


class _Replay(io.RawIOBase):
    """A read-only stream that first replays bytes already read (the header peek), then the rest."""

    def __init__(self, head: bytes, rest: Any) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._head.nbytes:
            if n is None or n < 0 or n >= self._head.nbytes:
                out = bytes(self._head)
                self._head = memoryview(b"")
                if n is None or n < 0:
                    return out + self._rest.read()
                return out
            out = bytes(self._head[:n])
            self._head = self._head[n:]
            return out
        return self._rest.read(n) if n is not None and n >= 0 else self._rest.read()

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._rest.close()
        finally:
            super().close()


def _open_bytes(inp: Input, s3_client: Any) -> Any:
    """A decompressed, forward-only binary stream of a CSV input."""
    import pyarrow as pa

    if inp.path is not None:
        return pa.input_stream(str(inp.path), compression="gzip" if inp.gzip else None)
    client = s3_client or s3_client_from_env()
    try:
        body = client.get_object(Bucket=inp.bucket, Key=inp.key)["Body"]
    except Exception as exc:
        raise SourceError(f"cannot read {inp.name}: {_aws_reason(exc)}") from None
    raw = pa.PythonFile(body, mode="r")
    return pa.CompressedInputStream(raw, "gzip") if inp.gzip else raw


def _first_line(head: bytes) -> list[str]:
    text = head.decode("utf-8-sig", errors="replace")
    line = text.splitlines()[0] if text else ""
    return next(csv.reader([line]), [])


@dataclass
class Batches:
    """The header of one input and an iterator over its record batches (selected columns, as read)."""

    header: list[str]
    batches: Iterator[Any]
    junk_rows: Callable[[], int]


def read(
    inp: Input,
    choose: Callable[[list[str]], list[str] | None],
    s3_client: Any = None,
    batch_rows: int = BATCH_ROWS,
) -> Batches | None:
    """Open an input; ``choose(header)`` returns the columns to read, or None to skip the file."""
    if inp.kind == "parquet":
        return _read_parquet(inp, choose, s3_client, batch_rows)
    return _read_csv(inp, choose, s3_client)


def _read_csv(inp: Input, choose: Callable[[list[str]], list[str] | None], s3_client: Any) -> Batches | None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    stream = _open_bytes(inp, s3_client)
    try:
        head = stream.read(_HEADER_PEEK)
        # Extend to the end of the first line if the peek cut it (very wide headers).
        while head and b"\n" not in head:
            more = stream.read(_HEADER_PEEK)
            if not more:
                break
            head += more
    except (OSError, pa.ArrowInvalid, EOFError) as exc:
        stream.close()
        raise SourceError(f"cannot read {inp.name}: {_short(exc)}") from None
    header = _first_line(head)
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    columns = choose(header) if header else None
    if not columns:
        stream.close()
        return Batches(header, iter(()), lambda: 0)
    junk = [0]

    def skip_row(row: Any) -> str:
        junk[0] += 1
        return "skip"

    try:
        reader = pacsv.open_csv(
            _Replay(head, stream),
            read_options=pacsv.ReadOptions(use_threads=False, block_size=CSV_BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(invalid_row_handler=skip_row, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                include_columns=columns,
                column_types={c: pa.string() for c in columns},
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        stream.close()
        raise SourceError(f"cannot parse {inp.name} as CSV: {_short(exc)}") from None

    def batches() -> Iterator[Any]:
        try:
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except (pa.ArrowInvalid, OSError, EOFError) as exc:
                    raise SourceError(f"{inp.name}: stopped reading: {_short(exc)}") from None
                if batch.num_rows:
                    yield batch
        finally:
            stream.close()

    return Batches(header, batches(), lambda: junk[0])


def _read_parquet(
    inp: Input, choose: Callable[[list[str]], list[str] | None], s3_client: Any, batch_rows: int
) -> Batches | None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    spool = None
    try:
        if inp.path is not None:
            pf = pq.ParquetFile(str(inp.path))
        else:
            client = s3_client or s3_client_from_env()
            spool = tempfile.TemporaryFile(prefix="tailpipe-billing-")  # noqa: SIM115 - closed by the batch iterator
            try:
                client.download_fileobj(inp.bucket, inp.key, spool)
            except Exception as exc:
                raise SourceError(f"cannot read {inp.name}: {_aws_reason(exc)}") from None
            spool.seek(0)
            pf = pq.ParquetFile(spool)
    except (pa.ArrowInvalid, OSError) as exc:
        if spool is not None:
            spool.close()
        raise SourceError(f"cannot read {inp.name} as Parquet: {_short(exc)}") from None
    header = list(pf.schema_arrow.names)
    columns = choose(header)
    if not columns:
        if spool is not None:
            spool.close()
        return Batches(header, iter(()), lambda: 0)

    def batches() -> Iterator[Any]:
        try:
            for batch in pf.iter_batches(batch_size=batch_rows, columns=columns, use_threads=False):
                if batch.num_rows:
                    yield batch
        except (pa.ArrowInvalid, OSError) as exc:
            raise SourceError(f"{inp.name}: stopped reading: {_short(exc)}") from None
        finally:
            if spool is not None:
                spool.close()

    return Batches(header, batches(), lambda: 0)


def _short(exc: BaseException) -> str:
    """An Arrow/OS error in one line, without file content (Arrow quotes offending rows; we cut them)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    for marker in (": got '", " in row ", "Row #"):
        if marker in text:
            text = text.split(marker, 1)[0]
    return text[:160]


def display_name(inp: Input) -> str:
    """The name to show for an input: the file name only (paths and keys can carry account ids)."""
    return os.path.basename(inp.name) or inp.name

