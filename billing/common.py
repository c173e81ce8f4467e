"""What the Bedrock and Azure readers share: streaming aggregation, the import summary, and records.

Why it looks like this: a billing file has millions of rows but few distinct line identities (hour or
day x usage type x tags x ...), so rows are grouped in Arrow, batch by batch (vectorised, one core), and
only the groups reach Python. Each group becomes one ``tailpipe.record/1`` record whose ``record_id`` is
a UUIDv5 of the line's identity (never of its amounts): importing the same file twice yields the same
ids, and the lake's dedup by ``record_id`` keeps one copy.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tailpipe_ai.carbon import CarbonError, estimate, resolve_region
from tailpipe_ai.exporter.records import Call, build_record, usage_of
from tailpipe_ai.providers import CallInfo
from tailpipe_ai.semconv.record import Record, rfc3339_utc

from .sources import Input, SourceError, display_name, read

RECORD_NAMESPACE = uuid.UUID("6f0b7c1e-2a4d-5b8e-9c3f-7a1d2e4b6c80")
"""Namespace of billing record ids (uuid5 over the line identity). Never change it: ids must stay stable."""

METHOD_DEFAULT = "flat"
"""Billing lines carry no request counts, so the shape method's per-request term cannot be applied."""


class BillingError(ValueError):
    """A billing import found nothing usable (wrong file type, wrong columns, empty file)."""


# ---------------------------------------------------------------------------------------------- columns


def match_columns(header: Sequence[str], spec: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Map canonical names to the header's own spelling (case and separators ignored)."""
    norm = {_norm(h): h for h in header}
    out: dict[str, str] = {}
    for canon, names in spec.items():
        for name in names:
            hit = norm.get(_norm(name))
            if hit is not None:
                out[canon] = hit
                break
    return out


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9:]", "", name.strip().lstrip("\ufeff").lower())


# ---------------------------------------------------------------------------------------------- numbers


def to_float_array(column: Any) -> tuple[Any, int]:
    """A string column as float64 (empty -> null); junk values become null and are counted."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_floating(column.type) or pa.types.is_integer(column.type) or pa.types.is_decimal(column.type):
        return pc.cast(column, pa.float64()), 0
    text = pc.utf8_trim_whitespace(column.cast(pa.string()))
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    try:
        return pc.cast(text, pa.float64()), 0
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        values: list[float | None] = []
        junk = 0
        for v in text.to_pylist():
            if v is None:
                values.append(None)
                continue
            try:
                f = float(v)
                if not math.isfinite(f):
                    raise ValueError
                values.append(f)
            except ValueError:
                values.append(None)
                junk += 1
        return pa.array(values, pa.float64()), junk


# ---------------------------------------------------------------------------------------------- aggregation


@dataclass(slots=True)
class Group:
    """Sums of one line identity across every row that shares it."""

    amount: float = 0.0
    cost: float | None = None
    rows: int = 0


class Aggregator:
    """Groups rows by key columns and sums amount and cost, one Arrow batch at a time."""

    def __init__(self) -> None:
        self.groups: dict[tuple, Group] = {}
        # Key values repeat across lines (the same hour, usage type, region, resource, tags): each distinct
        # value is kept once, so a group's key costs a tuple of references, not its own copies. (Key
        # columns hold strings, timestamps and nulls: no two values of different types compare equal.)
        self._values: dict[Any, Any] = {}

    def add(self, table: Any, keys: list[str], amount: Any, cost: Any | None) -> None:
        import pyarrow as pa

        cols = {k: table.column(k) for k in keys}
        cols["__amount"] = amount
        cols["__cost"] = cost if cost is not None else pa.nulls(table.num_rows, pa.float64())
        t = pa.table(cols)
        grouped = t.group_by(keys, use_threads=False).aggregate(
            [("__amount", "sum"), ("__cost", "sum"), ("__amount", "count", _count_all())]
        )
        one = self._values.setdefault
        key_lists = [[one(v, v) for v in grouped.column(k).to_pylist()] for k in keys]
        sums = grouped.column("__amount_sum").to_pylist()
        costs = grouped.column("__cost_sum").to_pylist()
        counts = grouped.column("__amount_count").to_pylist()
        groups = self.groups
        for i, key in enumerate(zip(*key_lists, strict=True)):
            g = groups.get(key)
            if g is None:
                g = groups[key] = Group()
            g.amount += sums[i] or 0.0
            if costs[i] is not None:
                g.cost = (g.cost or 0.0) + costs[i]
            g.rows += counts[i]


def _count_all() -> Any:
    import pyarrow.compute as pc

    return pc.CountOptions(mode="all")


# ---------------------------------------------------------------------------------------------- summary


@dataclass
class Bucket:
    """Totals of one (model, region) or one unknown usage type / meter."""

    lines: int = 0
    rows: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    images: int = 0
    video_seconds: float = 0.0
    amount: float = 0.0
    energy_wh: float = 0.0
    carbon_gco2e: float = 0.0
    cost_usd: float | None = None

    def add_cost(self, cost: float | None) -> None:
        if cost is not None:
            self.cost_usd = (self.cost_usd or 0.0) + cost

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class Summary:
    """What an import did: every row is accounted for as used, skipped (with the reason) or unknown."""

    source: str
    files: int = 0
    rows_read: int = 0
    rows_used: int = 0
    records: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> rows
    estimated: dict[tuple[str, str], Bucket] = field(default_factory=dict)  # (model, region) -> totals
    not_estimated: dict[tuple[str, str], Bucket] = field(default_factory=dict)  # (model, why) -> totals
    unknown: dict[tuple[str, str], Bucket] = field(default_factory=dict)  # (usage type / meter, unit) -> totals
    problems: list[str] = field(default_factory=list)
    days: set = field(default_factory=set)

    def skip(self, reason: str, rows: int = 1) -> None:
        if rows:
            self.skipped[reason] += rows

    def problem(self, message: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(message)

    @property
    def usable(self) -> bool:
        return self.rows_used > 0

    def total(self, which: str = "estimated") -> Bucket:
        t = Bucket()
        for b in getattr(self, which).values():
            for k in ("lines", "rows", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
                setattr(t, k, getattr(t, k) + getattr(b, k))
            t.images += b.images
            t.video_seconds += b.video_seconds
            t.energy_wh += b.energy_wh
            t.carbon_gco2e += b.carbon_gco2e
            t.add_cost(b.cost_usd)
        return t

    def to_dict(self) -> dict[str, Any]:
        def rows(d: dict[tuple[str, str], Bucket], a: str, b: str) -> list[dict[str, Any]]:
            return [{a: k[0], b: k[1], **v.to_dict()} for k, v in sorted(d.items())]

        return {
            "source": self.source,
            "files": self.files,
            "rows_read": self.rows_read,
            "rows_used": self.rows_used,
            "records": self.records,
            "estimated": rows(self.estimated, "model", "region"),
            "not_estimated": rows(self.not_estimated, "model", "reason"),
            "unknown": rows(self.unknown, "usage_type", "unit"),
            "skipped": dict(sorted(self.skipped.items())),
            "problems": list(self.problems),
            "days": sorted(d.isoformat() for d in self.days),
            "total": self.total().to_dict(),
        }


# ---------------------------------------------------------------------------------------------- lines -> records


@dataclass(slots=True)
class Line:
    """One billing line, interpreted: what a reader hands over to become a record."""

    identity: tuple[str, ...]
    start: datetime
    provider: str
    model: str
    integration: str
    region: str | None  # the region key written into the record
    region_spec: str | None  # what the carbon engine resolves (None: global defaults)
    operation: str = "chat"
    output_type: str | None = "text"
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    images: int | None = None
    image_size: str | None = None
    image_quality: str | None = None
    video_seconds: float | None = None
    video_resolution: str | None = None
    cost_usd: float | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    billing: dict[str, Any] = field(default_factory=dict)
    estimate: bool = True
    rows: int = 1

    def set_tokens(self, kind: str | None, n: int) -> None:
        """Put a token line's count where its kind goes: input counts include cached ones (GenAI semconv),
        so cache reads and writes are input tokens too."""
        if kind == "output":
            self.output_tokens = n
            return
        self.input_tokens = n
        if kind == "cache_read":
            self.cache_read_tokens = n
        elif kind == "cache_write":
            self.cache_write_tokens = n


class Memo:
    """A per-import cache of a one-argument function (few distinct values repeat across many lines)."""

    __slots__ = ("_cache", "_fn")

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self._fn = fn
        self._cache: dict[Any, Any] = {}

    def __call__(self, value: Any) -> Any:
        try:
            return self._cache[value]
        except KeyError:
            out = self._cache[value] = self._fn(value)
            return out
        except TypeError:  # unhashable
            return self._fn(value)


_rfc3339_cache: dict[datetime, str] = {}


def rfc3339(dt: datetime) -> str:
    """rfc3339_utc, cached (billing lines share their hour or day boundaries)."""
    out = _rfc3339_cache.get(dt)
    if out is None:
        if len(_rfc3339_cache) > 100_000:
            _rfc3339_cache.clear()
        out = _rfc3339_cache[dt] = rfc3339_utc(dt)
    return out


_NS_BYTES = RECORD_NAMESPACE.bytes


def record_id(integration: str, identity: Iterable[str]) -> str:
    """A stable id per billing line: the same line imported twice gets the same id.

    Exactly ``str(uuid.uuid5(RECORD_NAMESPACE, name))`` (tested), without the UUID object's overhead.
    """
    name = integration + "\x1f" + "\x1f".join(identity)
    d = bytearray(hashlib.sha1(_NS_BYTES + name.encode("utf-8")).digest()[:16])
    d[6] = (d[6] & 0x0F) | 0x50
    d[8] = (d[8] & 0x3F) | 0x80
    h = d.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def to_record(line: Line, method: str = METHOD_DEFAULT, config: Any = None) -> tuple[Record, Any]:
    """The record of a line, with its estimate (None when the line is not estimated)."""
    info = CallInfo(
        input_tokens=line.input_tokens,
        output_tokens=line.output_tokens,
        cache_read_tokens=line.cache_read_tokens,
        cache_write_tokens=line.cache_write_tokens,
        images=line.images,
        image_size=line.image_size,
        image_quality=line.image_quality,
        video_seconds=line.video_seconds,
        video_resolution=line.video_resolution,
    )
    call = Call(
        provider=line.provider,
        operation=line.operation,
        request_model=line.model,
        integration=line.integration,
        info=info,
        token_accuracy="exact",
        region=line.region,
        output_type=line.output_type,
        attributes=line.attributes,
        flags=line.flags,
    )
    est = None
    if line.estimate:
        usage = usage_of(call)
        usage.requests = None  # a billing line aggregates an unknown number of calls
        if line.images and line.operation == "image_generation":
            usage.input_tokens = usage.output_tokens = None
        est = estimate(usage, region=line.region_spec, method=method, config=config)
    rec = build_record(call, est, line.cost_usd, rfc3339(line.start))
    rec.record_id = record_id(line.integration, line.identity)
    rec.streamed = None
    rec.extra["billing"] = line.billing
    return rec, est


def account(summary: Summary, line: Line, est: Any, why_not: str | None = None) -> None:
    """Add a line to the summary's per-model tables."""
    if est is not None:
        key = (line.model, line.region or "global")
        b = summary.estimated.setdefault(key, Bucket())
    else:
        b = summary.not_estimated.setdefault((line.model, why_not or "not estimated"), Bucket())
    b.lines += 1
    b.rows += line.rows
    b.input_tokens += line.input_tokens or 0
    b.output_tokens += line.output_tokens or 0
    b.cache_read_tokens += line.cache_read_tokens or 0
    b.cache_write_tokens += line.cache_write_tokens or 0
    b.images += line.images or 0
    b.video_seconds += line.video_seconds or 0.0
    b.add_cost(line.cost_usd)
    if est is not None:
        b.energy_wh += est.energy_wh
        b.carbon_gco2e += est.carbon_gco2e
    summary.days.add(line.start.date())


def account_unknown(summary: Summary, label: str, unit: str, group: Group) -> None:
    b = summary.unknown.setdefault((label, unit or "-"), Bucket())
    b.lines += 1
    b.rows += group.rows
    b.amount += group.amount
    b.add_cost(group.cost)


# ---------------------------------------------------------------------------------------------- helpers


_TS_FORMATS = ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%d", "%m/%d/%Y", "%Y/%m/%d")


def parse_time(value: Any) -> datetime | None:
    """A billing timestamp (ISO 8601 / CUR / Azure US dates / Arrow timestamps) as aware UTC, else None."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        dt = None
        for fmt in _TS_FORMATS:
            try:
                dt = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        if dt is None:
            return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def resolve_region_spec(spec: str | None) -> str | None:
    """The canonical region key of a region spec ('EUC1', 'eu-central-1', 'East US'), or None if unknown."""
    if not spec or not spec.strip():
        return None
    try:
        return resolve_region(spec.strip()).key
    except CarbonError:
        return None


_TAG_KEY = re.compile(r"[^A-Za-z0-9_.\-]+")


def tag_key(key: str) -> str:
    """A cost-allocation tag key as an attribution name ('user:team' / 'user_team' -> 'team')."""
    k = key.strip()
    for prefix in ("user:", "user_"):
        if k.lower().startswith(prefix):
            k = k[len(prefix):]
            break
    return _TAG_KEY.sub("_", k)[:64]


def run(
    source: str,
    inputs: Sequence[Input],
    scan: Callable[[Any, Summary, Input], None],
    s3_client: Any = None,
    choose: Callable[[list[str], Summary, Input], list[str] | None] | None = None,
    on_file: Callable[[Input], None] | None = None,
) -> Summary:
    """Read every input with ``choose`` (columns) and ``scan`` (batches); bad files are reported, not fatal."""
    summary = Summary(source)
    for inp in inputs:
        if on_file is not None:
            on_file(inp)
        try:
            opened = read(inp, lambda header, i=inp: choose(header, summary, i) if choose else header, s3_client)
            if opened is None:
                continue
            summary.files += 1
            scan(opened, summary, inp)
            junk = opened.junk_rows()
            if junk:
                summary.rows_read += junk
                summary.skip("malformed CSV row (wrong number of cells)", junk)
        except SourceError as exc:
            summary.problem(str(exc))
    return summary


def iter_sorted(lines: Iterable[Line]) -> Iterator[Line]:
    """Lines in time order, so a day-partitioned writer keeps one day open at a time."""
    return iter(sorted(lines, key=lambda line: (line.start, line.identity)))


def name_of(inp: Input) -> str:
    return display_name(inp)


def record_lines(
    summary: Summary,
    lines: Iterable[Line],
    sink: Any | None,
    *,
    method: str = METHOD_DEFAULT,
    config: Any = None,
    not_estimated_reason: Callable[[Line], str | None] | None = None,
) -> None:
    """Estimate every line, account it in the summary and (unless ``sink`` is None) write its record."""
    for line in iter_sorted(lines):
        why = not_estimated_reason(line) if not_estimated_reason else None
        if why:
            line.estimate = False
            line.flags = (*line.flags, "not_estimated")
            line.billing["not_estimated"] = why
        rec, est = to_record(line, method=method, config=config)
        account(summary, line, est, why)
        summary.records += 1
        if sink is not None:
            sink.write(rec)
