"""FirehoseSink against moto's server: a real delivery stream writing to a real (emulated) S3 bucket.

moto writes each accepted PutRecordBatch as one uncompressed S3 object at once, so the objects count the
calls and their lines count the records.
"""

from __future__ import annotations

import json

from tailpipe_ai.exporter.firehose import FirehoseSink
from tailpipe_ai.exporter.residency import resolve_destination
from tests.exporter.conftest import make_record


def make_stream(moto_server):
    bucket, stream = moto_server.unique("raw"), moto_server.unique("telemetry")
    s3 = moto_server.client("s3")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": moto_server.region})
    firehose = moto_server.client("firehose")
    firehose.create_delivery_stream(
        DeliveryStreamName=stream,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose-delivery",
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": "ai-telemetry-raw/",
            "BufferingHints": {"SizeInMBs": 5, "IntervalInSeconds": 60},
            "CompressionFormat": "GZIP",
        },
    )
    return s3, bucket, stream


def read_objects(s3, bucket):
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def test_records_reach_s3_through_moto(moto_server, aws_env, monkeypatch, tmp_path):
    for key, value in moto_server.env().items():
        monkeypatch.setenv(key, value)
    s3, bucket, stream = make_stream(moto_server)
    env = {
        "TAILPIPE_RESIDENCY": "eu",
        "TAILPIPE_FIREHOSE_STREAM_EU": stream,
        "TAILPIPE_FIREHOSE_REGION_EU": moto_server.region,
        "TAILPIPE_FIREHOSE_ENDPOINT_URL": moto_server.endpoint_url,
    }
    sink = FirehoseSink(resolve_destination(env=env), spool_dir=tmp_path / "spool", linger_seconds=1.0)
    records = [make_record(i) for i in range(501)]
    for r in records:
        sink.write(r)
    assert sink.flush(30)
    sink.close()
    objects = read_objects(s3, bucket)
    assert len(objects) == 2  # 500 + 1: two PutRecordBatch calls
    assert all(k.startswith("ai-telemetry-raw/") for k in objects)
    lines = [line for body in objects.values() for line in body.splitlines()]
    got = [json.loads(line)["record_id"] for line in lines]
    assert len(got) == 501 and set(got) == {r.record_id for r in records}
    assert all(body.endswith(b"\n") for body in objects.values())  # newline after every record
    assert sink.sent == 501 and sink.spool.empty()


def test_missing_stream_on_moto_keeps_records(moto_server, aws_env, monkeypatch, tmp_path):
    for key, value in moto_server.env().items():
        monkeypatch.setenv(key, value)
    env = {
        "TAILPIPE_FIREHOSE_STREAM": moto_server.unique("absent"),
        "TAILPIPE_FIREHOSE_REGION": moto_server.region,
        "TAILPIPE_FIREHOSE_ENDPOINT_URL": moto_server.endpoint_url,
    }
    sink = FirehoseSink(resolve_destination(env=env), spool_dir=tmp_path / "spool", close_timeout=0.5)
    sink.write(make_record(0))
    assert not sink.flush(1.0)
    sink.close()
    assert sink.spool.pending == 1  # ResourceNotFoundException: kept for when the stream exists
