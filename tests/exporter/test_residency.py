"""Data residency: destination resolution, the never-outside-the-residency guarantee, sink selection."""

from __future__ import annotations

import pytest

from tailpipe_ai.carbon.config import load_config
from tailpipe_ai.carbon.errors import ConfigError
from tailpipe_ai.exporter import sink as sink_module
from tailpipe_ai.exporter.firehose import FirehoseSink
from tailpipe_ai.exporter.residency import (
    Destination,
    ResidencyError,
    firehose_configured,
    normalize_residency,
    region_allowed,
    resolve_destination,
)
from tests.exporter.conftest import make_record
from tests.exporter.fake_firehose import FakeFirehose

THREE = {
    "TAILPIPE_FIREHOSE_STREAM_EU": "telemetry-eu",
    "TAILPIPE_FIREHOSE_REGION_EU": "eu-central-1",
    "TAILPIPE_FIREHOSE_STREAM_US": "telemetry-us",
    "TAILPIPE_FIREHOSE_REGION_US": "us-east-2",
    "TAILPIPE_FIREHOSE_STREAM_APAC": "telemetry-apac",
    "TAILPIPE_FIREHOSE_REGION_APAC": "ap-southeast-2",
}


@pytest.mark.parametrize(
    ("given", "expected"),
    [("EU", "eu"), (" us ", "us"), ("apac", "apac"), ("eu-central-1", "eu-central-1"), ("", None)],
)
def test_normalize(given, expected):
    assert normalize_residency(given) == expected


@pytest.mark.parametrize("bad", ["europe", "mars-1", "EU-WEST", 3])
def test_normalize_rejects(bad):
    with pytest.raises(ResidencyError, match="eu, us, apac or an AWS region"):
        normalize_residency(bad)


@pytest.mark.parametrize(
    ("region", "residency", "ok"),
    [
        ("eu-west-1", "eu", True),
        ("eu-central-2", "eu", True),
        ("us-east-1", "eu", False),
        ("us-gov-west-1", "us", True),
        ("ca-central-1", "us", False),
        ("ap-southeast-2", "apac", True),
        ("me-central-1", "apac", False),
        ("eu-west-1", "eu-west-1", True),
        ("eu-west-2", "eu-west-1", False),
        ("sa-east-1", None, True),
    ],
)
def test_region_allowed(region, residency, ok):
    assert region_allowed(region, residency) is ok


@pytest.mark.parametrize(
    ("residency", "stream", "region"),
    [
        ("eu", "telemetry-eu", "eu-central-1"),
        ("us", "telemetry-us", "us-east-2"),
        ("apac", "telemetry-apac", "ap-southeast-2"),
    ],
)
def test_each_residency_picks_its_stream(residency, stream, region):
    dest = resolve_destination(env={**THREE, "TAILPIPE_RESIDENCY": residency})
    assert (dest.stream, dest.aws_region, dest.residency) == (stream, region, residency)


def test_argument_beats_environment():
    assert resolve_destination("us", env={**THREE, "TAILPIPE_RESIDENCY": "eu"}).stream == "telemetry-us"


def test_exact_region_residency_uses_its_group_destination_only_if_inside():
    env = dict(THREE)
    assert resolve_destination("eu-central-1", env=env).stream == "telemetry-eu"
    with pytest.raises(ResidencyError, match=r"outside the data residency .eu-west-1."):
        resolve_destination("eu-west-1", env=env)


def test_destination_outside_residency_is_a_configuration_error():
    env = {"TAILPIPE_RESIDENCY": "eu", "TAILPIPE_FIREHOSE_STREAM": "telemetry", "TAILPIPE_FIREHOSE_REGION": "us-east-1"}
    with pytest.raises(ResidencyError) as info:
        resolve_destination(env=env)
    message = str(info.value)
    assert "us-east-1" in message and "'eu'" in message and "no record was sent" in message


def test_sink_refuses_a_destination_or_client_outside_the_residency(tmp_path, aws_env):
    with pytest.raises(ResidencyError):
        FirehoseSink(Destination("s", "us-west-2", residency="eu"), spool_dir=tmp_path)
    import boto3

    us_client = boto3.session.Session().client("firehose", region_name="us-east-1")
    with pytest.raises(ResidencyError, match="client"):
        FirehoseSink(Destination("s", "eu-west-1", residency="eu"), client=us_client, spool_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # refused before any spool file or thread existed


def test_arn_and_endpoint_must_agree_with_the_region():
    arn = "arn:aws:firehose:us-east-1:123456789012:deliverystream/telemetry"
    with pytest.raises(ResidencyError, match="outside the data residency"):
        resolve_destination(env={"TAILPIPE_RESIDENCY": "eu", "TAILPIPE_FIREHOSE_STREAM": arn})
    with pytest.raises(ResidencyError, match="ARN"):
        resolve_destination(env={"TAILPIPE_FIREHOSE_STREAM": arn, "TAILPIPE_FIREHOSE_REGION": "eu-west-1"})
    dest = resolve_destination(env={"TAILPIPE_FIREHOSE_STREAM": arn})  # region taken from the ARN
    assert (dest.aws_region, dest.stream_name) == ("us-east-1", "telemetry")
    env = {
        **THREE,
        "TAILPIPE_RESIDENCY": "eu",
        "TAILPIPE_FIREHOSE_ENDPOINT_URL": "https://firehose.us-east-1.amazonaws.com",
    }
    with pytest.raises(ResidencyError, match="endpoint"):
        resolve_destination(env=env)
    env["TAILPIPE_FIREHOSE_ENDPOINT_URL"] = "https://firehose.eu-central-1.amazonaws.com"
    assert resolve_destination(env=env).endpoint_url.endswith("eu-central-1.amazonaws.com")


def test_missing_stream_says_what_to_set():
    with pytest.raises(ConfigError, match="TAILPIPE_FIREHOSE_STREAM_APAC"):
        resolve_destination(env={"TAILPIPE_RESIDENCY": "apac"})
    with pytest.raises(ConfigError, match="no AWS region"):
        resolve_destination(env={"TAILPIPE_FIREHOSE_STREAM": "x"})


def test_config_file_destinations(tmp_path):
    (tmp_path / "tailpipe.toml").write_text(
        """
method = "flat"
[firehose]
residency = "eu"
spool_max_mb = 64
[firehose.destinations.eu]
stream = "cfg-eu"
aws_region = "eu-north-1"
bucket = "acme-telemetry-eu"
[firehose.destinations.us]
stream = "cfg-us"
aws_region = "us-west-2"
"""
    )
    config = load_config(env={}, cwd=tmp_path)
    assert config.method == "flat"  # the carbon keys still load beside [firehose]
    dest = resolve_destination(env={}, config=config)
    assert (dest.stream, dest.aws_region, dest.bucket) == ("cfg-eu", "eu-north-1", "acme-telemetry-eu")
    assert resolve_destination(env={"TAILPIPE_RESIDENCY": "us"}, config=config).stream == "cfg-us"
    # environment beats the file, and is still held to the residency
    env = {"TAILPIPE_FIREHOSE_STREAM_EU": "env-eu", "TAILPIPE_FIREHOSE_REGION_EU": "eu-west-3"}
    assert resolve_destination(env=env, config=config).stream == "env-eu"
    assert firehose_configured(env={}, config=config)


def test_config_file_yaml_and_bad_keys(tmp_path):
    (tmp_path / "tailpipe.yaml").write_text("firehose:\n  stream: y\n  aws_region: ap-south-1\n  colour: red\n")
    config = load_config(env={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        resolve_destination(env={}, config=config)
    (tmp_path / "tailpipe.yaml").write_text("firehose:\n  destinations:\n    mars: {stream: x}\n")
    with pytest.raises(ResidencyError):
        resolve_destination(env={}, config=load_config(env={}, cwd=tmp_path))


def test_records_only_reach_the_residency_stream(aws_env, tmp_path, monkeypatch):
    with FakeFirehose() as fake:
        env = {**THREE, "TAILPIPE_FIREHOSE_ENDPOINT_URL": fake.endpoint_url}
        for residency in ("us", "eu"):
            sink = FirehoseSink.from_env(
                residency,
                env=env,
                config=load_config(env={}, cwd=tmp_path),
                spool_dir=tmp_path / residency,
                linger_seconds=0.01,
            )
            for i in range(5):
                sink.write(make_record(i))
            assert sink.flush(10)
            sink.close()
        seen = [(c.stream, c.region, len(c.records)) for c in fake.calls]
    us = [s for s in seen if s[0] == "telemetry-us"]
    eu = [s for s in seen if s[0] == "telemetry-eu"]
    assert us and eu and len(us) + len(eu) == len(seen)
    assert {r for _, r, _ in us} == {"us-east-2"} and {r for _, r, _ in eu} == {"eu-central-1"}  # signed for
    assert sum(n for *_, n in us) == sum(n for *_, n in eu) == 5


def test_tailpipe_ai_residency_argument(aws_env, tmp_path, monkeypatch):
    from tailpipe_ai import TailpipeAI

    for key, value in THREE.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TAILPIPE_SPOOL_DIR", str(tmp_path))
    monkeypatch.setenv("TAILPIPE_FIREHOSE_REGION_EU", "us-east-1")  # misconfigured: EU stream in a US region
    with pytest.raises(ResidencyError, match="outside the data residency"):
        TailpipeAI(residency="eu")
    tp = TailpipeAI(residency="apac")
    try:
        assert isinstance(tp.sink, FirehoseSink) and tp.sink.destination.aws_region == "ap-southeast-2"
    finally:
        tp.sink.close()
    with pytest.raises(ValueError, match="without lake="):
        TailpipeAI(residency="us", lake=tmp_path)


@pytest.fixture
def fresh_default(monkeypatch, tmp_path):
    monkeypatch.setattr(sink_module, "_default_sink", None)
    monkeypatch.setenv("TAILPIPE_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("TAILPIPE_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.delenv("TAILPIPE_SIGNING_KEYS", raising=False)
    monkeypatch.delenv("TAILPIPE_API_KEY", raising=False)
    made = []

    def get():
        made.append(sink_module.default_sink())
        return made[-1]

    yield get
    for s in made:
        s.close()


def test_default_sink_stays_local_without_firehose_config(aws_env, fresh_default):
    from tailpipe_ai.exporter.local_lake import LocalLakeSink

    assert type(fresh_default()) is LocalLakeSink


def test_default_sink_is_firehose_when_a_stream_is_set(aws_env, fresh_default, monkeypatch):
    monkeypatch.setenv("TAILPIPE_FIREHOSE_STREAM", "telemetry")
    monkeypatch.setenv("TAILPIPE_FIREHOSE_REGION", "eu-west-1")
    sink = fresh_default()
    assert isinstance(sink, FirehoseSink) and sink.destination.stream == "telemetry"


def test_tailpipe_sink_variable_decides(aws_env, fresh_default, monkeypatch):
    from tailpipe_ai.exporter.local_lake import LocalLakeSink

    monkeypatch.setenv("TAILPIPE_FIREHOSE_STREAM", "telemetry")
    monkeypatch.setenv("TAILPIPE_FIREHOSE_REGION", "eu-west-1")
    monkeypatch.setenv("TAILPIPE_SINK", "local")
    assert type(fresh_default()) is LocalLakeSink
    assert sink_module.wants_firehose({"TAILPIPE_SINK": "firehose"})
    with pytest.raises(ConfigError, match="TAILPIPE_SINK must be one of local, firehose"):
        sink_module.wants_firehose({"TAILPIPE_SINK": "kafka"})
