"""s3:// inputs streamed with boto3 from a real S3 server (SeaweedFS on loopback)."""

from __future__ import annotations

import gzip

import pytest

from tailpipe_ai.billing import bedrock_cur
from tailpipe_ai.billing.sources import SourceError


def test_cur_prefix_on_s3_gzip_csv(s3_server, fixtures):
    bucket = s3_server.create_bucket()
    s3 = s3_server.client()
    body = gzip.compress((fixtures / "cur2.csv").read_bytes())
    s3.put_object(Bucket=bucket, Key="cur/2025-06/part-1.csv.gz", Body=body)
    s3.put_object(Bucket=bucket, Key="cur/2025-06/part-2.csv", Body=(fixtures / "legacy_cur.csv").read_bytes())
    s3.put_object(Bucket=bucket, Key="cur/2025-06/manifest.json", Body=b"{}")
    summary, lines = bedrock_cur.read_cur([f"s3://{bucket}/cur/"], s3_client=s3)
    local, local_lines = bedrock_cur.read_cur([str(fixtures / "cur2.csv"), str(fixtures / "legacy_cur.csv")])
    assert summary.files == 2 and summary.rows_read == local.rows_read
    assert sorted(line.identity for line in lines) == sorted(line.identity for line in local_lines)


def test_s3_errors_are_clear(s3_server):
    bucket = s3_server.create_bucket()
    with pytest.raises(SourceError, match=r"no CSV, \.csv\.gz or Parquet objects under"):
        bedrock_cur.read_cur([f"s3://{bucket}/nothing/"], s3_client=s3_server.client())
    with pytest.raises(SourceError, match="cannot list s3://no-such-bucket-x/: NoSuchBucket"):
        bedrock_cur.read_cur(["s3://no-such-bucket-x/"], s3_client=s3_server.client())
