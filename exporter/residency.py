"""Data residency: which Firehose stream (and AWS region, and bucket) records go to, and the guarantee that
they never go anywhere outside the configured residency.

A residency is ``eu``, ``us``, ``apac`` or one exact AWS region (``eu-central-1``). It is chosen by, highest
first: the ``residency=`` argument (``TailpipeAI(residency=...)``), ``TAILPIPE_RESIDENCY``, the config file's
``[firehose] residency``. The destination for it comes from, highest first::

    TAILPIPE_FIREHOSE_STREAM_<KEY> / TAILPIPE_FIREHOSE_REGION_<KEY> / TAILPIPE_FIREHOSE_BUCKET_<KEY>
        (KEY = EU, US, APAC, or the AWS region in capitals with '_': EU_CENTRAL_1)
    [firehose.destinations.<residency>]  stream / aws_region / bucket       (tailpipe.toml or .yaml)
    TAILPIPE_FIREHOSE_STREAM / TAILPIPE_FIREHOSE_REGION / TAILPIPE_FIREHOSE_BUCKET   (one destination)
    [firehose]  stream / aws_region / bucket

A stream may be given as a name or an ARN (whose region must agree). Without an AWS region anywhere above,
an exact-region residency is its own region; else AWS_REGION / AWS_DEFAULT_REGION.

Why an error and not a fallback: a destination outside the residency (``residency = "eu"`` with a stream
in ``us-east-1``, an ARN or endpoint naming another region, a client built for another region) is a
configuration error raised when the sink is built, before any record exists, so no code path can send a
record there. Without a residency, any region is accepted (and nothing is promised).

Why not ``TAILPIPE_REGION`` / ``region=``: those already name where model calls *run* (the carbon engine's
grid region, 'aws:eu-central-1' or 'DE'); where telemetry is *stored* is a separate decision.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tailpipe_ai.carbon.errors import ConfigError

GROUPS = {"eu": "eu-", "us": "us-", "apac": "ap-"}
"""Each named residency and the AWS region-name prefix it admits (eu-west-1, us-gov-west-1, ap-south-1...)."""

_AWS_REGION_RE = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d+$")
_REGION_IN_HOST_RE = re.compile(r"(?:^|[.-])([a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d+)\.")
_ARN_RE = re.compile(r"^arn:aws[a-z-]*:firehose:([a-z0-9-]+):\d{12}:deliverystream/([A-Za-z0-9_.-]{1,64})$")
_STREAM_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_DEST_KEYS = {"stream", "aws_region", "bucket"}
_TABLE_KEYS = _DEST_KEYS | {"residency", "endpoint_url", "destinations", "spool_dir", "spool_max_mb"}


class ResidencyError(ConfigError):
    """A destination outside the configured data residency, or a residency that cannot be understood."""


def is_aws_region(value: str) -> bool:
    return bool(_AWS_REGION_RE.match(value))


def normalize_residency(value: Any, where: str = "residency") -> str | None:
    """'EU ' -> 'eu'; an AWS region stays as it is; None/'' -> None; anything else -> ResidencyError."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ResidencyError(f"{where} must be eu, us, apac or an AWS region such as eu-central-1, got {value!r}")
    text = value.strip().lower()
    if not text:
        return None
    if text in GROUPS or is_aws_region(text):
        return text
    raise ResidencyError(f"{where} must be eu, us, apac or an AWS region such as eu-central-1, got {value!r}")


def region_allowed(aws_region: str, residency: str | None) -> bool:
    """True when `aws_region` lies inside `residency` (None admits every region)."""
    if residency is None:
        return True
    if residency in GROUPS:
        return aws_region.startswith(GROUPS[residency])
    return aws_region == residency


def check_region(aws_region: str, residency: str | None, what: str) -> None:
    """Raise ResidencyError naming `what` when `aws_region` is outside `residency`."""
    if not region_allowed(aws_region, residency):
        admits = f"AWS regions {GROUPS[residency]}*" if residency in GROUPS else f"only {residency}"
        raise ResidencyError(
            f"{what} is in AWS region {aws_region}, outside the data residency {residency!r} (which admits "
            f"{admits}); no record was sent. Point it at a destination inside the residency, or change "
            "TAILPIPE_RESIDENCY"
        )


def env_key(residency: str) -> str:
    """The suffix of the per-residency environment variables: 'eu' -> 'EU', 'eu-central-1' -> 'EU_CENTRAL_1'."""
    return residency.upper().replace("-", "_")


@dataclass(frozen=True)
class Destination:
    """Where one process's records go: a Firehose stream in one AWS region, inside `residency`."""

    stream: str
    aws_region: str
    residency: str | None = None
    bucket: str | None = None
    endpoint_url: str | None = None

    @property
    def stream_name(self) -> str:
        m = _ARN_RE.match(self.stream)
        return m.group(2) if m else self.stream

    def check(self) -> Destination:
        """Validate names and enforce the residency on the region, the stream ARN and the endpoint."""
        if not is_aws_region(self.aws_region):
            raise ResidencyError(f"Firehose aws_region {self.aws_region!r} is not an AWS region name such as eu-west-1")
        arn = _ARN_RE.match(self.stream)
        if arn is None and not _STREAM_NAME_RE.match(self.stream):
            raise ResidencyError(
                f"Firehose stream {self.stream!r} is neither a stream name (1-64 of A-Z a-z 0-9 _ . -) nor a "
                "delivery stream ARN"
            )
        if arn is not None and arn.group(1) != self.aws_region:
            raise ResidencyError(
                f"Firehose stream ARN {self.stream!r} is in {arn.group(1)} but the configured AWS region is "
                f"{self.aws_region}; make them agree"
            )
        check_region(self.aws_region, self.residency, f"Firehose stream {self.stream_name!r}")
        if self.endpoint_url:
            host = (urlsplit(self.endpoint_url).hostname or "").lower()
            m = _REGION_IN_HOST_RE.search(host + ".")
            if m and m.group(1) != self.aws_region:
                raise ResidencyError(
                    f"the Firehose endpoint {self.endpoint_url!r} names AWS region {m.group(1)}, not the "
                    f"configured {self.aws_region}; make them agree"
                )
        return self


def _firehose_table(config: Any) -> Mapping[str, Any]:
    table = getattr(config, "firehose", None) or {}
    where = f"{getattr(config, 'path', None) or 'config'} [firehose]"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table")
    for key in table:
        if key not in _TABLE_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r} (expected one of {', '.join(sorted(_TABLE_KEYS))})")
    dests = table.get("destinations", {})
    if not isinstance(dests, Mapping):
        raise ConfigError(f"{where}: destinations must be a table of residency -> {{stream, aws_region, bucket}}")
    for name, dest in dests.items():
        normalize_residency(name, f"{where} destinations key")
        if not isinstance(dest, Mapping) or set(dest) - _DEST_KEYS:
            raise ConfigError(f"{where} destinations.{name}: must be a table with keys among {sorted(_DEST_KEYS)}")
    return table


def firehose_settings(config: Any = None) -> Mapping[str, Any]:
    """The validated [firehose] table of the config file (empty when there is none)."""
    if config is None:
        from tailpipe_ai.carbon.config import get_config

        config = get_config()
    return _firehose_table(config)


def firehose_configured(env: Mapping[str, str] | None = None, config: Any = None) -> bool:
    """Whether any Firehose setting exists (environment or config file): the sink selection asks this."""
    env = os.environ if env is None else env
    if any(k.startswith(("TAILPIPE_FIREHOSE_STREAM", "TAILPIPE_RESIDENCY")) and v for k, v in env.items()):
        return True
    table = firehose_settings(config)
    return bool(table.get("stream") or table.get("destinations") or table.get("residency"))


def resolve_destination(
    residency: str | None = None, *, env: Mapping[str, str] | None = None, config: Any = None
) -> Destination:
    """The checked destination for `residency` (argument, else TAILPIPE_RESIDENCY, else the config file).

    Raises ResidencyError / ConfigError with what to set when no stream is configured or the one found is
    outside the residency.
    """
    env = os.environ if env is None else env
    table = firehose_settings(config)
    res = normalize_residency(residency, "residency=") if residency else None
    if res is None:
        res = normalize_residency(env.get("TAILPIPE_RESIDENCY"), "TAILPIPE_RESIDENCY")
    if res is None:
        res = normalize_residency(table.get("residency"), "[firehose] residency")

    layers: list[tuple[Mapping[str, Any], str]] = []
    if res is not None:
        keys = [res]
        group = next((g for g, prefix in GROUPS.items() if res.startswith(prefix)), None)
        if group and group != res:
            keys.append(group)  # an exact-region residency may use its group's destination (checked below)
        dests = table.get("destinations", {})
        for key in keys:
            suffix = "_" + env_key(key)
            layers.append((_env_layer(env, suffix), "environment (*" + suffix + ")"))
            named = next((v for k, v in dests.items() if normalize_residency(k) == key), None)
            if named:
                layers.append((named, f"[firehose.destinations.{key}]"))
    layers.append((_env_layer(env, ""), "environment"))
    layers.append(({k: table.get(k) for k in _DEST_KEYS}, "[firehose]"))

    # The stream and its region come from the same layer, so a region meant for one stream never pairs with
    # another; a layer that names only a region (or bucket) still applies to a stream found further down.
    stream = aws_region = bucket = None
    for layer, _where in layers:
        if stream is None and layer.get("stream"):
            stream = str(layer["stream"])
            aws_region = aws_region or layer.get("aws_region")
            bucket = bucket or layer.get("bucket")
            break
        aws_region = aws_region or layer.get("aws_region")
        bucket = bucket or layer.get("bucket")
    if stream is None:
        need = f"TAILPIPE_FIREHOSE_STREAM_{env_key(res)} or " if res else ""
        raise ConfigError(
            f"no Firehose stream is configured{f' for residency {res!r}' if res else ''}: set {need}"
            "TAILPIPE_FIREHOSE_STREAM, or a [firehose] stream in tailpipe.toml (see docs/operations.md)"
        )
    arn = _ARN_RE.match(stream)
    if not aws_region and arn:
        aws_region = arn.group(1)
    if not aws_region and res is not None and is_aws_region(res):
        aws_region = res
    if not aws_region:
        aws_region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if not aws_region:
        raise ConfigError(
            f"no AWS region for Firehose stream {stream!r}: set TAILPIPE_FIREHOSE_REGION (or the stream's ARN, or "
            "AWS_REGION)"
        )
    endpoint = env.get("TAILPIPE_FIREHOSE_ENDPOINT_URL") or table.get("endpoint_url") or None
    return Destination(
        stream=stream, aws_region=str(aws_region).strip().lower(), residency=res, bucket=bucket, endpoint_url=endpoint
    ).check()


def _env_layer(env: Mapping[str, str], suffix: str) -> dict[str, str | None]:
    return {
        "stream": env.get(f"TAILPIPE_FIREHOSE_STREAM{suffix}") or None,
        "aws_region": env.get(f"TAILPIPE_FIREHOSE_REGION{suffix}") or None,
        "bucket": env.get(f"TAILPIPE_FIREHOSE_BUCKET{suffix}") or None,
    }
