"""Bedrock CUR ingestion: legacy CUR, CUR 2.0, gzip and Parquet, hand-checked energy and carbon."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest

from tailpipe_ai.billing import bedrock_cur
from tailpipe_ai.billing.common import record_lines
from tailpipe_ai.exporter.sink import MemorySink

from .expected import carbon_g, energy_wh


def run(*paths, **kw):
    summary, lines = bedrock_cur.read_cur([str(p) for p in paths], **kw)
    sink = MemorySink()
    record_lines(summary, lines, sink)
    return summary, sink.records


def by(records, model, day=None):
    return [r for r in records if r.request_model == model and (day is None or r.timestamp.startswith(day))]


def test_legacy_cur_hand_checked_per_model_and_region(fixtures):
    summary, records = run(fixtures / "legacy_cur.csv")
    assert len(records) == 9
    # Claude Sonnet 4 in eu-central-1: two input rows of one line identity are one record.
    sonnet_d1 = by(records, "claude-sonnet-4", "2025-06-01")
    assert sorted((r.input_tokens or 0, r.output_tokens or 0) for r in sonnet_d1) == [(0, 5_000_000), (10_000_000, 0)]
    assert sum(r.energy_wh for r in sonnet_d1) == pytest.approx(energy_wh("claude-sonnet-4", 15e6, "aws:eu-central-1"))
    expected_g = carbon_g("claude-sonnet-4", 15e6, "aws:eu-central-1")
    assert sum(r.carbon_gco2e for r in sonnet_d1) == pytest.approx(expected_g)
    assert {r.region for r in sonnet_d1} == {"aws:eu-central-1"}
    assert sum(r.cost_usd for r in sonnet_d1) == pytest.approx(18.0 + 12.0 + 75.0)
    assert sonnet_d1[0].attributes == {"team": "ml", "project": "search"}
    # Llama 3.3 70B in us-east-1: 2,000 x 1K input + 500,000 single output tokens (batch tier).
    llama = by(records, "llama-3.3-70b")
    assert sum(r.energy_wh for r in llama) == pytest.approx(energy_wh("llama-3.3-70b", 2.5e6, "aws:us-east-1"))
    assert sum(r.carbon_gco2e for r in llama) == pytest.approx(carbon_g("llama-3.3-70b", 2.5e6, "aws:us-east-1"))
    assert {r.extra["billing"]["tier"] for r in llama} == {"standard", "batch"}
    # Claude 3.7 Sonnet through global cross-region routing: global defaults, flagged.
    (c37,) = by(records, "claude-3-7-sonnet")
    assert c37.region is None and "routing_global" in c37.flags
    assert c37.extra["billing"]["source_region"] == "aws:us-west-2"
    assert c37.energy_wh == pytest.approx(energy_wh("claude-3-7-sonnet", 200_000, "global"))
    assert c37.carbon_gco2e == pytest.approx(carbon_g("claude-3-7-sonnet", 200_000, "global"))
    # The summary's per-model/region totals are the records' sums.
    bucket = summary.estimated[("llama-3.3-70b", "aws:us-east-1")]
    assert bucket.input_tokens == 2_000_000 and bucket.output_tokens == 500_000
    assert bucket.energy_wh == pytest.approx(energy_wh("llama-3.3-70b", 2.5e6, "aws:us-east-1"))


def test_cache_tiers_marketplace_and_media_kinds(fixtures):
    _, records = run(fixtures / "legacy_cur.csv")
    (cache,) = by(records, "claude-sonnet-4-6")
    assert cache.input_tokens == cache.cache_read_tokens == 1_000_000  # input includes cached (GenAI semconv)
    assert cache.energy_wh == pytest.approx(1e6 * 0.00245 * 1.04 * 1.08 * 1.15)  # sibling: Sonnet 4's figure
    assert "figure_from_sibling" in cache.flags
    (nova,) = by(records, "nova-2.0-lite")
    assert nova.extra["billing"]["tier"] == "flex" and nova.input_tokens == 300_000
    (haiku,) = by(records, "claude-3-haiku")
    assert haiku.input_tokens == 500_000 and "unit_assumed" in haiku.flags
    assert haiku.extra["billing"]["marketplace"] is True
    assert all(r.integration == "bedrock-cur" and r.provider == "aws.bedrock" for r in records)
    assert all(r.latency_ms is None and r.trace_id is None and r.streamed is None for r in records)


def test_skipped_and_unknown_rows_are_reported_with_reasons(fixtures):
    summary, _ = run(fixtures / "legacy_cur.csv")
    assert summary.rows_read == 16
    assert summary.skipped["not a Bedrock line item"] == 2
    assert summary.skipped["line item type Tax (not usage)"] == 1
    assert summary.skipped["usage amount is not a number"] == 1
    assert summary.skipped["malformed CSV row (wrong number of cells)"] == 1
    unknown = summary.unknown[("USE1-ProvisionedThroughput-Claude3Haiku-ModelUnits", "Hrs")]
    assert unknown.rows == 1 and unknown.amount == 1 and unknown.cost_usd == 40.0
    used = summary.rows_used + sum(summary.skipped.values()) + sum(b.rows for b in summary.unknown.values())
    assert used == summary.rows_read  # every row is accounted for


def test_worked_example_matches_tailpipe_estimate(fixtures):
    """15,000,000 Claude Sonnet 4 tokens in eu-central-1 through the CUR = `tailpipe estimate` for the same."""
    from typer.testing import CliRunner

    from tailpipe_ai.cli import app

    result = CliRunner().invoke(
        app,
        ["estimate", "--model", "claude-sonnet-4", "--tokens", "15000000", "--region", "aws:eu-central-1", "--json"],
    )
    assert result.exit_code == 0, result.output
    cli = json.loads(result.stdout)
    _, records = run(fixtures / "cur2.csv")
    sonnet = by(records, "claude-sonnet-4")
    assert sum(r.energy_wh for r in sonnet) == pytest.approx(cli["energy_wh"], rel=1e-7)
    assert sum(r.carbon_gco2e for r in sonnet) == pytest.approx(cli["carbon_gco2e"], rel=1e-7)
    assert sum(r.energy_wh for r in sonnet) == pytest.approx(55_724.76)  # the seed's figure
    for r in sonnet:  # same factors, step by step
        assert r.factors["pue"]["value"] == cli["factors"]["pue"]["value"] == 1.35
        assert r.factors["grid"]["value"] == cli["factors"]["grid"]["value"]
        assert r.factors["wh_per_token"]["value"] == cli["factors"]["wh_per_token"]["value"] == 0.00245


def test_cur2_columns_tags_and_marketplace(fixtures):
    summary, records = run(fixtures / "cur2.csv")
    assert summary.skipped["not a Bedrock line item"] == 1
    (mp,) = [r for r in records if r.extra["billing"].get("marketplace")]
    assert mp.request_model == "claude-sonnet-4-6" and mp.cache_read_tokens == 200_000
    assert mp.attributes == {"team": "ml"}  # aws-generated tags (ARNs) are not carried over
    assert "routing_global" in mp.flags
    assert all("111122223333" not in json.dumps(r.to_dict()) for r in records)  # account ids stay out


def test_record_ids_are_deterministic_and_format_independent(fixtures, tmp_path):
    _, first = run(fixtures / "cur2.csv")
    _, again = run(fixtures / "cur2.csv")
    assert [r.record_id for r in first] == [r.record_id for r in again]
    assert len({r.record_id for r in first}) == len(first)
    gz = tmp_path / "cur2.csv.gz"
    with open(fixtures / "cur2.csv", "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    _, from_gz = run(gz)
    assert sorted(r.record_id for r in from_gz) == sorted(r.record_id for r in first)
    pq_path = _to_parquet(fixtures / "cur2.csv", tmp_path / "cur2.snappy.parquet")
    _summary, from_pq = run(pq_path)
    assert sorted(r.record_id for r in from_pq) == sorted(r.record_id for r in first)
    assert sum(r.energy_wh for r in from_pq) == pytest.approx(sum(r.energy_wh for r in first))
    assert {r.request_model: r.attributes for r in from_pq} == {r.request_model: r.attributes for r in first}


def _to_parquet(csv_path, out):
    """A CUR 2.0 Parquet file as Data Exports writes it: timestamps, doubles and map columns."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    t = pacsv.read_csv(csv_path, convert_options=pacsv.ConvertOptions(strings_can_be_null=False))
    maps = pa.map_(pa.string(), pa.string())
    cols = {}
    for name in t.column_names:
        col = t.column(name)
        if name in ("product", "resource_tags"):
            col = pa.array([list(json.loads(v or "{}").items()) for v in col.to_pylist()], maps)
        elif name.endswith("_date"):
            col = col.cast(pa.timestamp("ms", tz="UTC"))
        elif name.endswith(("_amount", "_cost")):
            col = col.cast(pa.float64())
        elif not pa.types.is_string(col.type):
            col = col.cast(pa.string())
        cols[name] = col
    pq.write_table(pa.table(cols), out)
    return out


def test_usage_type_parsing():
    p = bedrock_cur.parse_usage_type
    u = p("USE1-Claude4.6Sonnet-output-tokens-cross-region-global")
    assert (u.model, u.token_kind, u.routing, u.region_code) == ("claude-sonnet-4-6", "output", "global", "USE1")
    u = p("USE1-openai.gpt-oss-120b-mantle-input-tokens-standard")
    assert (u.model, u.token_kind, u.tier) == ("openai.gpt-oss-120b", "input", "standard")
    u = p("USE1-Llama4-Maverick-17B-input-tokens-batch")
    assert (u.model, u.tier) == ("llama-4-maverick-17b", "batch")
    u = p("USW2-MP:USW2_output_tokens_global_standard-Units", "Claude Opus 4.1 (Amazon Bedrock Edition)")
    assert (u.model, u.token_kind, u.routing, u.marketplace) == ("claude-opus-4-1", "output", "global", True)
    u = p("APS3-Claude4Sonnet-cache-write-input-token-count")
    assert (u.token_kind, u.region_code) == ("cache_write", "APS3")
    u = p("USE1-NovaCanvas-1024x1024-premium-images")
    assert (u.kind, u.image_size, u.image_quality) == ("images", "1024x1024", "premium")
    u = p("USE1-NovaReel-720p-video-seconds")
    assert (u.kind, u.video_resolution) == ("video", "720p")
    assert p("USE1-Guardrails-TextUnits").kind == "unknown"


def test_region_codes_map_to_regions():
    from tailpipe_ai.billing.common import resolve_region_spec

    assert resolve_region_spec("EUC1") == "aws:eu-central-1"
    assert resolve_region_spec("APS3") == "aws:ap-south-1"
    assert resolve_region_spec("East US") == "azure:eastus"
    assert resolve_region_spec("EastUS") == "azure:eastus"
    assert resolve_region_spec("nowhere-9") is None


def test_wrong_columns_empty_and_mixed_units(tmp_path, fixtures):
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b,c\n1,2,3\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    summary, records = run(wrong, empty)
    assert records == [] and not summary.usable
    assert any("not a Cost and Usage Report" in p and "lineItem/UsageType" in p for p in summary.problems)
    mixed = tmp_path / "mixed.csv"
    rows = (fixtures / "legacy_cur.csv").read_text().splitlines()
    bad = rows[3].replace(",1M tokens,", ",Hrs,")  # an output-token line priced in hours
    mixed.write_text("\n".join([rows[0], rows[1], bad]) + "\n")
    summary, records = run(mixed)
    assert len(records) == 1 and summary.usable
    assert any("pricing unit 'Hrs' is not a tokens unit" in k for k in summary.skipped)


def test_record_id_is_a_standard_uuid5():
    import uuid

    from tailpipe_ai.billing.common import RECORD_NAMESPACE, record_id

    ident = ("2025-06-01T00:00:00+00:00", "USE1-Claude4Sonnet-input-tokens", "é")
    assert record_id("bedrock-cur", ident) == str(uuid.uuid5(RECORD_NAMESPACE, "bedrock-cur\x1f" + "\x1f".join(ident)))
