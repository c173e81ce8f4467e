"""The s3_server fixture: a real, authenticated S3 server on loopback."""

from __future__ import annotations

import io

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError


def test_signed_round_trip_and_multipart(s3_server):
    bucket = s3_server.create_bucket()
    s3 = s3_server.client()
    body = bytes(range(256)) * (6 * 1024 * 1024 // 256 + 1)  # just over one 5 MiB part

    s3.upload_fileobj(io.BytesIO(body), bucket, "a/b.bin",
                      Config=TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024))
    assert s3.get_object(Bucket=bucket, Key="a/b.bin")["Body"].read() == body
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="a/")["Contents"]] == ["a/b.bin"]
    assert s3_server.endpoint_url.startswith("http://127.0.0.1:")


def test_wrong_secret_is_rejected(s3_server):
    bucket = s3_server.create_bucket()
    bad = boto3.client("s3", endpoint_url=s3_server.endpoint_url, aws_access_key_id=s3_server.access_key,
                       aws_secret_access_key="not-the-secret", region_name=s3_server.region)
    with pytest.raises(ClientError) as info:
        bad.list_objects_v2(Bucket=bucket)
    assert info.value.response["Error"]["Code"] in {"SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId"}
