"""Azure cost exports (EA and MCA schemas, actual and amortized) -> Foundry / Azure OpenAI records.

Selects model token meters (MeterCategory "Foundry Models" / "Cognitive Services" / ...), parses the
abbreviated meter names into model, token kind, deployment type and unit, and turns each line into a
record. As the seed says, a model is only estimated when it is in the measured dataset (or published
by the seed); other models are written and listed with their token totals but no energy figure.
Subscription and resource ids only feed the record id (a hash); they are never written or shown.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from tailpipe_ai.carbon import resolve_model
from tailpipe_ai.semconv import attributes as sc

from . import common
from .common import Aggregator, Line, Summary, match_columns, parse_time, resolve_region_spec, tag_key

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

INTEGRATION = sc.INTEGRATION_AZURE_BILLING
ESTIMATED_KINDS = frozenset({"measured", "published"})

COLUMNS: dict[str, tuple[str, ...]] = {
    "date": ("Date", "UsageDateTime", "date", "usageDate"),
    "category": ("MeterCategory", "meterCategory"),
    "subcategory": ("MeterSubCategory", "meterSubCategory"),
    "meter": ("MeterName", "meterName"),
    "quantity": ("Quantity", "quantity", "UsageQuantity"),
    "unit": ("UnitOfMeasure", "unitOfMeasure"),
    "location": ("ResourceLocation", "resourceLocation"),
    "resource": ("ResourceId", "InstanceId", "resourceId", "InstanceName"),
    "tags": ("Tags", "tags"),
    "cost_usd": ("CostInUsd", "costInUsd", "CostInUSD"),
    "cost": ("CostInBillingCurrency", "costInBillingCurrency", "Cost", "PreTaxCost"),
    "currency": ("BillingCurrency", "billingCurrency", "BillingCurrencyCode", "billingCurrencyCode", "Currency"),
    "charge_type": ("ChargeType", "chargeType"),
    "product": ("ProductName", "productName", "Product", "product"),
    "subscription": ("SubscriptionId", "subscriptionId", "SubscriptionGuid"),
}
REQUIRED = ("date", "category", "meter", "quantity")
_KEYS = ("date", "category", "subcategory", "meter", "unit", "location", "resource", "tags", "currency",
         "charge_type", "product", "subscription")


@dataclass(frozen=True)
class _Data:
    categories: frozenset[str]
    words: dict[str, frozenset[str]]
    prefixes: dict[str, str]
    units: dict[str, float]


@lru_cache(maxsize=1)
def data() -> _Data:
    doc = tomllib.loads(resources.files(__package__).joinpath("azure_meters.toml").read_text(encoding="utf-8"))
    return _Data(
        categories=frozenset(c.lower() for c in doc["categories"]),
        words={k: frozenset(w.lower() for w in v) for k, v in doc["words"].items()},
        prefixes={k.lower(): v for k, v in doc.get("prefixes", {}).items()},
        units={k.lower(): float(v) for k, v in doc["units"].items()},
    )


@dataclass(frozen=True, slots=True)
class Meter:
    """What a meter name says. ``model`` is None when it is not a model token meter."""

    model: str | None
    token_kind: str | None = None  # input | output | cache_read
    deployment: str = "regional"  # global | data_zone | regional
    tier: str = "standard"
    unit_hint: float | None = None  # '1M' in the meter name


_SPLIT_KIND = re.compile(r"-(input|output|inp|outp)\b", re.IGNORECASE)


@lru_cache(maxsize=4096)
def parse_meter(meter: str, subcategory: str = "", product: str = "") -> Meter:
    """Parse one meter name, e.g. 'gpt-4o 1120 Inp glbl Tokens' -> gpt-4o-1120, input, global."""
    d = data()
    text = _SPLIT_KIND.sub(r" \1", meter.strip())
    words = text.split()
    low = [w.lower() for w in words]
    if not any(w.startswith(("token", "tkn")) for w in low):
        return Meter(None)
    kind_at = next((i for i, w in enumerate(low) if w in d.words["input"] or w in d.words["output"]), None)
    if kind_at is None:
        return Meter(None)
    kind = "output" if low[kind_at] in d.words["output"] else "input"
    cached = any(w in d.words["cached"] for w in low)
    if cached and kind == "input":
        kind = "cache_read"
    deployment = "regional"
    if any(w in d.words["global"] for w in low):
        deployment = "global"
    elif any(w in d.words["data_zone"] for w in low):
        deployment = "data_zone"
    tier = "batch" if any(w in d.words["batch"] for w in low) else "standard"
    unit_hint = 1e6 if "1m" in low else (1e3 if "1k" in low else None)
    skip = d.words["ignore"] | d.words["cached"]
    model_words = [w for w in low[:kind_at] if w not in skip]
    if not model_words:
        return Meter(None)
    model = "-".join(model_words)
    prefix = d.prefixes.get(subcategory.lower()) or d.prefixes.get(product.lower())
    if prefix and not model.startswith(prefix):
        model = f"{prefix}-{model}"
    return Meter(model, kind, deployment, tier, unit_hint)


class _Scan:
    def __init__(self) -> None:
        self.aggs: dict[tuple[str, ...], Aggregator] = {}
        self.cols: dict[str, str] = {}

    def choose(self, header: list[str], summary: Summary, inp: Any) -> list[str] | None:
        name = common.name_of(inp)
        if not header or all(not h.strip() for h in header):
            summary.problem(f"{name}: empty file (no header row)")
            return None
        cols = match_columns(header, COLUMNS)
        missing = [k for k in REQUIRED if k not in cols]
        if missing:
            wanted = ", ".join(f"{COLUMNS[k][0]} / {COLUMNS[k][1]}" for k in missing)
            summary.problem(f"{name}: not an Azure cost export (missing columns: {wanted}); file skipped")
            return None
        self.cols = cols
        return list(dict.fromkeys(cols.values()))

    def scan(self, opened: Any, summary: Summary, inp: Any) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        cols = self.cols
        keys = [k for k in _KEYS if k in cols]
        agg = self.aggs.setdefault(tuple(keys), Aggregator())
        wanted = pa.array(sorted(data().categories))
        for batch in opened.batches:
            summary.rows_read += batch.num_rows
            table = pa.Table.from_batches([batch])
            category = pc.utf8_lower(pc.utf8_trim_whitespace(table.column(cols["category"]).cast(pa.string())))
            mask = pc.fill_null(pc.is_in(category, value_set=wanted), False)
            kept = pc.sum(mask).as_py() or 0
            summary.skip("not a Foundry / Azure OpenAI meter", batch.num_rows - kept)
            if not kept:
                continue
            t = table.filter(mask)
            quantity, junk = common.to_float_array(t.column(cols["quantity"]))
            cost_col = cols.get("cost_usd") or cols.get("cost")
            cost = common.to_float_array(t.column(cost_col))[0] if cost_col else None
            g = pa.table({k: t.column(cols[k]).cast(pa.string()) for k in keys})
            if junk:
                summary.skip("quantity is not a number", junk)
                valid = pc.is_valid(quantity)
                g, quantity = g.filter(valid), quantity.filter(valid)
                cost = cost.filter(valid) if cost is not None else None
            agg.add(g, keys, quantity, cost)
        self.cost_in_usd = "cost_usd" in cols


def _parse_tags(text: str) -> dict[str, str]:
    """Azure Tags: JSON ('{"team": "ml"}') or the EA form without braces ('"team": "ml","env": "prod"')."""
    t = (text or "").strip()
    if not t:
        return {}
    if not t.startswith("{"):
        t = "{" + t + "}"
    try:
        value = json.loads(t)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {tag_key(k): str(v) for k, v in value.items() if isinstance(k, str) and v not in (None, "")}


def _lines_of(
    summary: Summary, layout: tuple[str, ...], agg: Aggregator, fallback_region: str | None, cost_in_usd: bool
) -> list[Line]:
    d = data()
    idx = {name: i for i, name in enumerate(layout)}
    out: list[Line] = []

    def get(key: tuple, name: str) -> str:
        i = idx.get(name)
        return (key[i] or "") if i is not None else ""

    for key, group in agg.groups.items():
        charge = get(key, "charge_type")
        if charge and charge.lower() != "usage":
            summary.skip(f"charge type {charge} (not usage)", group.rows)
            continue
        meter_name = get(key, "meter")
        unit = get(key, "unit").strip()
        m = parse_meter(meter_name, get(key, "subcategory"), get(key, "product"))
        if m.model is None:
            common.account_unknown(summary, meter_name or "(empty meter name)", unit, group)
            continue
        start = parse_time(get(key, "date"))
        if start is None:
            summary.skip("usage date missing or not a date", group.rows)
            continue
        per = d.units.get(unit.lower().replace("tokens", "").strip() or "tokens") or d.units.get(unit.lower())
        flags: list[str] = []
        if per is None and not unit and m.unit_hint:
            per = m.unit_hint
            flags.append("unit_from_meter_name")
        if per is None:
            summary.skip(f"unit of measure {unit!r} is not a token unit (meter {meter_name})", group.rows)
            common.account_unknown(summary, meter_name, unit, group)
            continue
        if m.unit_hint and per != m.unit_hint:
            summary.skip(f"unit of measure {unit!r} contradicts the meter name {meter_name!r}", group.rows)
            common.account_unknown(summary, meter_name, unit, group)
            continue
        if group.amount < 0:
            summary.skip("negative quantity (a correction line)", group.rows)
            continue
        location = get(key, "location")
        region_key = resolve_region_spec(location)
        if region_key is None and fallback_region:
            region_key = resolve_region_spec(fallback_region)
            if region_key is not None:
                flags.append("region_from_fallback")
        if m.deployment == "global":
            flags.append("routing_global")
            record_region, spec = None, None
        else:
            if m.deployment == "data_zone":
                flags.append("routing_data_zone")
            record_region, spec = region_key, region_key
        currency = get(key, "currency").upper()
        cost = group.cost if cost_in_usd or currency in ("USD", "") else None
        tags = _parse_tags(get(key, "tags"))
        identity = (
            start.isoformat(),
            get(key, "category"),
            get(key, "subcategory"),
            meter_name,
            unit,
            location,
            get(key, "resource").lower(),
            get(key, "subscription").lower(),
            charge,
            json.dumps(tags, sort_keys=True),
        )
        billing: dict[str, Any] = {
            "meter": meter_name,
            "meter_subcategory": get(key, "subcategory") or None,
            "token_kind": m.token_kind,
            "deployment": m.deployment,
            "tier": m.tier,
            "unit_of_measure": unit,
            "quantity": group.amount,
            "source_region": region_key,
            "rows": group.rows,
        }
        if cost is None and group.cost is not None:
            billing["cost"], billing["currency"] = group.cost, currency
        n = round(group.amount * per)
        provider = sc.PROVIDER_AZURE_AI_OPENAI if _is_openai(m.model) else sc.PROVIDER_AZURE_AI_INFERENCE
        line = Line(
            identity=identity,
            start=start,
            provider=provider,
            model=m.model,
            integration=INTEGRATION,
            region=record_region,
            region_spec=spec,
            cost_usd=cost,
            attributes=tags,
            flags=tuple(flags),
            billing=billing,
            rows=group.rows,
        )
        line.set_tokens(m.token_kind, n)
        if "embed" in m.model:
            line.operation, line.output_type = "embeddings", "embedding"
        summary.rows_used += group.rows
        out.append(line)
    return out


def _is_openai(model: str) -> bool:
    return model.startswith(("gpt", "o1", "o3", "o4", "text-embedding", "dall-e", "sora", "davinci", "babbage"))


def not_estimated_reason(line: Line) -> str | None:
    """Why a Foundry line is not estimated: its model is not in the measured (or seed-published) dataset."""
    match = resolve_model(line.model)
    if match.kind in ESTIMATED_KINDS and "figure_from_sibling" not in match.flags:
        return None
    return "model not in the measured dataset"


def read_azure(
    paths: list[str],
    *,
    fallback_region: str | None = None,
    s3_client: Any = None,
    on_file: Any = None,
) -> tuple[Summary, list[Line]]:
    """Read Azure cost exports (local or s3://, CSV/gzip/Parquet) into a summary and the lines to record."""
    from .sources import expand

    inputs = expand(paths, s3_client)
    scan = _Scan()
    summary = common.run("azure-billing", inputs, scan.scan, s3_client, scan.choose, on_file)
    out: list[Line] = []
    for layout, agg in scan.aggs.items():
        out.extend(_lines_of(summary, layout, agg, fallback_region, getattr(scan, "cost_in_usd", False)))
    return summary, out
