"""AWS Cost and Usage Reports (legacy CUR and CUR 2.0 / Data Exports) -> Bedrock records.

Selects Bedrock line items (product codes AmazonBedrock / AmazonBedrockService, and Marketplace
"Amazon Bedrock Edition" products), parses each usage type into model, token kind, tier, routing and
billing region, normalises amounts by pricing unit, and turns every line (hour or day x usage type x
tags x ...) into one record. Unknown usage types are reported with their totals, never dropped silently.
Account ids and resource ARNs only feed the record id (a hash); they are never written or shown.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from tailpipe_ai.semconv import attributes as sc

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from . import common
from .common import Aggregator, Line, Summary, match_columns, parse_time, resolve_region_spec, tag_key

INTEGRATION = sc.INTEGRATION_BEDROCK_CUR
PROVIDER = sc.PROVIDER_AWS_BEDROCK
BEDROCK_PRODUCT_CODES = ("AmazonBedrock", "AmazonBedrockService")
USAGE_LINE_TYPES = frozenset({"usage", "discountedusage", "savingsplancoveredusage", ""})

COLUMNS: dict[str, tuple[str, ...]] = {
    "start": ("lineItem/UsageStartDate", "line_item_usage_start_date"),
    "end": ("lineItem/UsageEndDate", "line_item_usage_end_date"),
    "product_code": ("lineItem/ProductCode", "line_item_product_code"),
    "usage_type": ("lineItem/UsageType", "line_item_usage_type"),
    "amount": ("lineItem/UsageAmount", "line_item_usage_amount"),
    "unit": ("pricing/unit", "pricing_unit"),
    "cost": ("lineItem/UnblendedCost", "line_item_unblended_cost"),
    "currency": ("lineItem/CurrencyCode", "line_item_currency_code"),
    "line_type": ("lineItem/LineItemType", "line_item_line_item_type"),
    "operation": ("lineItem/Operation", "line_item_operation"),
    "region": ("product/regionCode", "product_region_code", "product/region"),
    "product_name": ("product/ProductName", "product_product_name"),
    "product_map": ("product",),
    "account": ("lineItem/UsageAccountId", "line_item_usage_account_id"),
    "resource": ("lineItem/ResourceId", "line_item_resource_id"),
    "tags_map": ("resource_tags",),
}
REQUIRED = ("start", "usage_type", "amount", "product_code")
_TAG_PREFIXES = ("resourcetags/user:", "resource_tags_user_")


# ---------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class _Data:
    models: dict[str, str]
    product_names: dict[str, str]
    rules: tuple[tuple[re.Pattern[str], str], ...]
    units: dict[str, dict[str, float]]


@lru_cache(maxsize=1)
def data() -> _Data:
    raw = resources.files(__package__).joinpath("bedrock_usage_types.toml").read_text(encoding="utf-8")
    doc = tomllib.loads(raw)
    return _Data(
        models={k.lower(): v for k, v in doc.get("models", {}).items()},
        product_names={k.lower(): v for k, v in doc.get("product_names", {}).items()},
        rules=tuple((re.compile(r["pattern"]), r["template"]) for r in doc.get("rules", [])),
        units={kind: {k.lower(): float(v) for k, v in table.items()} for kind, table in doc.get("units", {}).items()},
    )


# ---------------------------------------------------------------------------------------------- usage types


@dataclass(frozen=True, slots=True)
class UsageType:
    """What a Bedrock usage type says. ``kind``: tokens | images | video | unknown."""

    kind: str
    model: str | None = None
    token_kind: str | None = None  # input | output | cache_read | cache_write
    tier: str = "standard"  # standard | batch | priority | flex | reserved
    routing: str = "in-region"  # in-region | cross-region | global
    region_code: str | None = None
    marketplace: bool = False
    image_size: str | None = None
    image_quality: str | None = None
    video_resolution: str | None = None


_REGION_PREFIX = re.compile(r"^([A-Z]{2,3}\d?)-(.+)$")
_NATIVE_TOKENS = re.compile(
    r"^(?P<model>.+?)-(?:mantle-)?(?P<kind>input-tokens?|output-tokens?|cache-read-input-token-count|"
    r"cache-write-input-token-count|cache-read-input-tokens?|cache-write-input-tokens?|cache-read-tokens?|"
    r"cache-write-tokens?)(?:-(?P<rest>.*))?$",
    re.IGNORECASE,
)
_MP_DIMENSION = re.compile(r"^(?:[A-Z]{2,3}\d?_)?(?P<dim>.+?)(?:-units?)?$", re.IGNORECASE)
_MEDIA = re.compile(r"^(?P<model>.+?)-(?P<rest>.*?)(?P<kind>images?|image-count|video-seconds?|videos?)(?:-.*)?$", re.I)
_SIZE = re.compile(r"(\d{3,4})x(\d{3,4})")
_RES = re.compile(r"(\d{3,4})p\b")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=\d)(?<![vV]\d)|(?<=\d)(?=[A-Z][a-z])")
_TIERS = ("batch", "priority", "flex", "reserved")


def _kind_of(text: str) -> str | None:
    t = text.lower().replace("_", "").replace("-", "")
    if "cacheread" in t:
        return "cache_read"
    if "cachewrite" in t:
        return "cache_write"
    if t.startswith("input") or "inputtoken" in t:
        return "input"
    if t.startswith("output") or "outputtoken" in t or "responsetoken" in t:
        return "output"
    return None


def _tier_routing(text: str) -> tuple[str, str]:
    t = text.lower()
    tier = next((x for x in _TIERS if x in t), "standard")
    if "global" in t:
        routing = "global"
    elif "cross-region" in t or "crossregion" in t:
        routing = "cross-region"
    else:
        routing = "in-region"
    return tier, routing


@lru_cache(maxsize=4096)
def parse_usage_type(usage_type: str, product_name: str = "") -> UsageType:
    """Parse one usage type (cached: a CUR has few distinct ones)."""
    ut = usage_type.strip()
    m = _REGION_PREFIX.match(ut)
    code, rest = (m.group(1), m.group(2)) if m else (None, ut)
    if rest.upper().startswith("MP:"):
        dm = _MP_DIMENSION.match(rest[3:])
        dim = dm.group("dim") if dm else rest[3:]
        kind = _kind_of(dim)
        if kind is None:
            return UsageType("unknown", region_code=code, marketplace=True)
        tier, routing = _tier_routing(dim)
        return UsageType(
            "tokens",
            model=model_from_product_name(product_name),
            token_kind=kind,
            tier=tier,
            routing=routing,
            region_code=code,
            marketplace=True,
        )
    m = _NATIVE_TOKENS.match(rest)
    if m:
        tier, routing = _tier_routing(m.group("rest") or "")
        return UsageType(
            "tokens",
            model=model_from_token(m.group("model")),
            token_kind=_kind_of(m.group("kind")),
            tier=tier,
            routing=routing,
            region_code=code,
        )
    m = _MEDIA.match(rest)
    if m and "token" not in rest.lower():
        tier, routing = _tier_routing(rest)
        size = _SIZE.search(rest)
        res = _RES.search(rest)
        kind = "video" if "video" in m.group("kind").lower() else "images"
        quality = next((q for q in ("premium", "standard", "hd") if q in rest.lower()), None)
        return UsageType(
            kind,
            model=model_from_token(m.group("model")),
            tier=tier,
            routing=routing,
            region_code=code,
            image_size=f"{size.group(1)}x{size.group(2)}" if size and kind == "images" else None,
            image_quality=quality if kind == "images" else None,
            video_resolution=f"{res.group(1)}p" if res and kind == "video" else None,
        )
    return UsageType("unknown", region_code=code)


def model_from_token(token: str) -> str:
    """A usage type's model token ('Claude4Sonnet', 'Llama3-3-70B') as a model id for the resolver."""
    d = data()
    hit = d.models.get(token.lower())
    if hit:
        return hit
    for pattern, template in d.rules:
        m = pattern.match(token)
        if m:
            out = template
            for i, g in enumerate(m.groups(), start=1):
                out = out.replace("{" + str(i) + "}", g or "")
            return re.sub(r"-{2,}", "-", out).strip("-").lower()
    if "." in token and not token[0].isdigit() and token.split(".", 1)[0].islower():
        return token.lower()  # vendor.model ids of bedrock-mantle ('openai.gpt-oss-120b'): the resolver strips vendors
    return _CAMEL.sub("-", token).lower()


def model_from_product_name(name: str) -> str | None:
    """'Claude Sonnet 4.6 (Amazon Bedrock Edition)' -> 'claude-sonnet-4-6'."""
    base = re.sub(r"\s*\(.*?\)\s*$", "", name or "").strip()
    if not base:
        return None
    return data().product_names.get(base.lower()) or re.sub(r"\s+", "-", base.lower())


# ---------------------------------------------------------------------------------------------- reading


class _Scan:
    """Column choice and batch scanning of one CUR import."""

    def __init__(self) -> None:
        self.aggs: dict[tuple[str, ...], Aggregator] = {}
        self.cols: dict[str, str] = {}
        self.tag_cols: list[str] = []

    def choose(self, header: list[str], summary: Summary, inp: Any) -> list[str] | None:
        name = common.name_of(inp)
        if not header or all(not h.strip() for h in header):
            summary.problem(f"{name}: empty file (no header row)")
            return None
        cols = match_columns(header, COLUMNS)
        missing = [k for k in REQUIRED if k not in cols]
        if missing:
            wanted = ", ".join(f"{COLUMNS[k][0]} / {COLUMNS[k][1]}" for k in missing)
            summary.problem(f"{name}: not a Cost and Usage Report (missing columns: {wanted}); file skipped")
            return None
        tags = [h for h in header if h.lower().startswith(_TAG_PREFIXES)]
        self.cols = cols
        self.tag_cols = tags
        return list(dict.fromkeys([*cols.values(), *tags]))

    def scan(self, opened: Any, summary: Summary, inp: Any) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        cols, tags = self.cols, self.tag_cols
        keys = [k for k in _KEY_ORDER if k in cols] + ["product_name", "tags_map"]
        tag_names = [f"tag:{_tag_name(t)}" for t in tags]
        layout = (*keys, *tag_names)
        agg = self.aggs.setdefault(layout, Aggregator())
        for batch in opened.batches:
            summary.rows_read += batch.num_rows
            table = pa.Table.from_batches([batch])
            mask = pc.is_in(table.column(cols["product_code"]), value_set=pa.array(BEDROCK_PRODUCT_CODES))
            pname = _product_name(table, cols)
            if pname is not None:
                mask = pc.or_(mask, pc.match_substring(pname, "Bedrock Edition"))
            mask = pc.fill_null(mask, False)
            kept = pc.sum(mask).as_py() or 0
            summary.skip("not a Bedrock line item", batch.num_rows - kept)
            if not kept:
                continue
            t = table.filter(mask)
            amount, junk = common.to_float_array(t.column(cols["amount"]))
            cost = common.to_float_array(t.column(cols["cost"]))[0] if "cost" in cols else None
            out: dict[str, Any] = {}
            for k in keys:
                if k == "product_name":
                    out[k] = pname.filter(mask) if pname is not None else pa.array([""] * kept, pa.string())
                elif k == "tags_map":
                    out[k] = _tags_as_text(t.column(cols[k])) if k in cols else pa.array([""] * kept, pa.string())
                else:
                    out[k] = t.column(cols[k])
            for name, col in zip(tag_names, tags, strict=True):
                out[name] = t.column(col)
            g = pa.table(out)
            if junk:
                summary.skip("usage amount is not a number", junk)
                valid = pc.is_valid(amount)
                g, amount = g.filter(valid), amount.filter(valid)
                cost = cost.filter(valid) if cost is not None else None
            agg.add(g, list(layout), amount, cost)


_KEY_ORDER = ("start", "end", "product_code", "usage_type", "unit", "line_type", "operation", "region", "account",
              "resource", "currency")


def _tag_name(header: str) -> str:
    low = header.lower()
    if low.startswith("resource_tags_user_"):
        return tag_key(header[len("resource_tags_user_"):])
    return tag_key(header.split(":", 1)[-1])


def _product_name(table: Any, cols: dict[str, str]) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    if "product_name" in cols:
        return pc.fill_null(table.column(cols["product_name"]).cast(pa.string()), "")
    if "product_map" in cols:
        col = table.column(cols["product_map"])
        if pa.types.is_map(col.type):
            return pc.fill_null(pc.map_lookup(col, "product_name", "first").cast(pa.string()), "")
        extracted = pc.extract_regex(col.cast(pa.string()), r'"product_name"\s*:\s*"(?P<n>[^"]*)"')
        return pc.fill_null(pc.struct_field(extracted, "n"), "")
    return None


def _tags_as_text(col: Any) -> Any:
    """CUR 2.0 resource_tags as canonical JSON text (CSV gives JSON text already; Parquet a map)."""
    import pyarrow as pa

    if pa.types.is_map(col.type):
        return pa.array(
            [json.dumps(dict(v), sort_keys=True) if v else "" for v in col.to_pylist()], pa.string()
        )
    return col.cast(pa.string())


def _parse_tags(text: str) -> dict[str, str]:
    if not text or not text.strip() or text.strip() in ("{}", "null"):
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    out = {}
    for k, v in value.items():
        if isinstance(k, str) and k.lower().startswith(("user:", "user_")) and v not in (None, ""):
            out[tag_key(k)] = str(v)
    return out


# ---------------------------------------------------------------------------------------------- lines


def lines(summary: Summary, scan: _Scan, fallback_region: str | None) -> list[Line]:
    """Interpret every aggregated group; unknown usage types and non-usage line types go to the summary."""
    out: list[Line] = []
    for layout, agg in scan.aggs.items():
        out.extend(_lines_of(summary, layout, agg, fallback_region))
    return out


def _lines_of(summary: Summary, layout: tuple[str, ...], agg: Aggregator, fallback_region: str | None) -> list[Line]:
    d = data()
    out: list[Line] = []
    idx = {name: i for i, name in enumerate(layout)}
    tag_names = [n for n in layout if n.startswith("tag:")]

    def get(key: tuple, name: str) -> Any:
        i = idx.get(name)
        return key[i] if i is not None else None

    # Few distinct values repeat across many lines: parse each once.
    times = common.Memo(parse_time)
    regions = common.Memo(lambda spec: resolve_region_spec(spec) if spec else None)
    tag_memo: dict[tuple, tuple[dict[str, str], str]] = {}

    for key, group in agg.groups.items():
        line_type = str(get(key, "line_type") or "")
        if line_type.lower() not in USAGE_LINE_TYPES:
            summary.skip(f"line item type {line_type} (not usage)", group.rows)
            continue
        usage_type = str(get(key, "usage_type") or "")
        product_name = str(get(key, "product_name") or "")
        unit = str(get(key, "unit") or "").strip()
        start = times(get(key, "start"))
        if start is None:
            summary.skip("usage start date missing or not a date", group.rows)
            continue
        ut = parse_usage_type(usage_type, product_name)
        if ut.kind == "unknown" or not ut.model:
            common.account_unknown(summary, usage_type or "(empty usage type)", unit, group)
            continue
        flags: list[str] = []
        table = {"tokens": "tokens", "images": "images", "video": "seconds"}[ut.kind]
        per = d.units.get(table, {}).get(unit.lower())
        if per is None and ut.kind == "tokens":
            per = d.units.get("assumed", {}).get(unit.lower())
            if per is not None:
                flags.append("unit_assumed")
        if per is None and not unit and ut.kind == "tokens":
            per, flags = 1.0, [*flags, "unit_missing_assumed_tokens"]
        if per is None:
            summary.skip(f"pricing unit {unit!r} is not a {table} unit (usage type {usage_type})", group.rows)
            common.account_unknown(summary, usage_type, unit, group)
            continue
        if group.amount < 0:
            summary.skip("negative usage amount (a correction line)", group.rows)
            continue
        quantity = group.amount * per
        region_key = regions(str(get(key, "region") or "")) or regions(ut.region_code or "")
        if region_key is None and fallback_region:
            region_key = regions(fallback_region)
            if region_key is not None:
                flags.append("region_from_fallback")
        if ut.routing == "global":
            flags.append("routing_global")
            record_region, spec = None, None
        else:
            if ut.routing == "cross-region":
                flags.append("routing_cross_region")
            record_region, spec = region_key, region_key
        tag_key_ = (get(key, "tags_map"), *(get(key, n) for n in tag_names))
        hit = tag_memo.get(tag_key_)
        if hit is None:
            tags = _parse_tags(str(get(key, "tags_map") or ""))
            for name in tag_names:
                value = get(key, name)
                if value not in (None, ""):
                    tags[name[4:]] = str(value)
            hit = tag_memo[tag_key_] = (tags, json.dumps(tags, sort_keys=True))
        tags, tags_json = dict(hit[0]), hit[1]
        currency = str(get(key, "currency") or "USD").upper()
        cost = group.cost if currency in ("USD", "") else None
        end = times(get(key, "end"))
        identity = tuple(
            str(x)
            for x in (
                start.isoformat(),
                end.isoformat() if end else "",
                get(key, "product_code"),
                usage_type,
                unit,
                line_type,
                get(key, "operation"),
                get(key, "region"),
                product_name,
                get(key, "account"),
                get(key, "resource"),
                tags_json,
            )
        )
        billing = {
            "usage_type": usage_type,
            "tier": ut.tier,
            "routing": ut.routing,
            "pricing_unit": unit,
            "usage_amount": group.amount,
            "source_region": region_key,
            "period_end": common.rfc3339(end) if end else None,
            "rows": group.rows,
        }
        if ut.marketplace:
            billing["marketplace"] = True
        if currency not in ("USD", ""):
            billing["cost"] = group.cost
            billing["currency"] = currency
        line = Line(
            identity=identity,
            start=start,
            provider=PROVIDER,
            model=ut.model,
            integration=INTEGRATION,
            region=record_region,
            region_spec=spec,
            cost_usd=cost,
            attributes=tags,
            flags=tuple(flags),
            billing=billing,
            rows=group.rows,
        )
        n = round(quantity)
        if ut.kind == "tokens":
            line.set_tokens(ut.token_kind, n)
            line.operation = "embeddings" if "embed" in ut.model else "chat"
            line.output_type = "embedding" if line.operation == "embeddings" else "text"
            billing["token_kind"] = ut.token_kind
        elif ut.kind == "images":
            line.images, line.image_size, line.image_quality = n, ut.image_size, ut.image_quality
            line.operation, line.output_type = "image_generation", "image"
        else:
            line.video_seconds, line.video_resolution = quantity, ut.video_resolution
            line.operation, line.output_type = "video_generation", "video"
        summary.rows_used += group.rows
        out.append(line)
    return out


def read_cur(
    paths: list[str],
    *,
    fallback_region: str | None = None,
    s3_client: Any = None,
    on_file: Any = None,
) -> tuple[Summary, list[Line]]:
    """Read CUR files (local or s3://, CSV/gzip/Parquet) into a summary and the lines to record."""
    from .sources import expand

    inputs = expand(paths, s3_client)
    scan = _Scan()
    summary = common.run("bedrock-cur", inputs, scan.scan, s3_client, scan.choose, on_file)
    return summary, lines(summary, scan, fallback_region)
