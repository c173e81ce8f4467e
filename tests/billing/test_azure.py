"""Azure cost exports (EA and MCA): meter parsing, measured-only estimates, hand-checked figures."""

from __future__ import annotations

import pytest

from tailpipe_ai.billing import azure
from tailpipe_ai.billing.common import record_lines
from tailpipe_ai.exporter.sink import MemorySink

from .expected import carbon_g, energy_wh


def run(*paths):
    summary, lines = azure.read_azure([str(p) for p in paths])
    sink = MemorySink()
    record_lines(summary, lines, sink, not_estimated_reason=azure.not_estimated_reason)
    return summary, sink.records


def test_ea_export_hand_checked(fixtures):
    summary, records = run(fixtures / "azure_ea.csv")
    gpt4o = [r for r in records if r.request_model == "gpt-4o-0806"]
    assert sorted((r.input_tokens or 0, r.output_tokens or 0) for r in gpt4o) == [(0, 1_000_000), (3_000_000, 0)]
    assert {r.region for r in gpt4o} == {"azure:eastus"}
    assert sum(r.energy_wh for r in gpt4o) == pytest.approx(energy_wh("gpt-4o", 4e6, "azure:eastus"))
    assert sum(r.carbon_gco2e for r in gpt4o) == pytest.approx(carbon_g("gpt-4o", 4e6, "azure:eastus"))
    assert gpt4o[0].attributes == {"team": "search", "env": "prod"}  # EA tags without braces
    assert {r.provider for r in gpt4o} == {"azure.ai.openai"}
    (o3,) = [r for r in records if r.request_model == "o3-0416"]
    assert o3.region is None and "routing_global" in o3.flags
    assert o3.energy_wh == pytest.approx(energy_wh("o3", 100_000, "global"))
    # GPT-5 is not in the measured dataset: written and listed with its tokens, no energy.
    (gpt5,) = [r for r in records if r.request_model == "gpt-5"]
    assert gpt5.energy_wh is None and gpt5.input_tokens == 2_000_000 and "not_estimated" in gpt5.flags
    assert summary.not_estimated[("gpt-5", "model not in the measured dataset")].input_tokens == 2_000_000
    assert summary.skipped["not a Foundry / Azure OpenAI meter"] == 1
    assert summary.skipped["charge type Purchase (not usage)"] == 1
    assert ("Provisioned Managed Global Unit", "1 Hour") in summary.unknown


def test_mca_export_data_zone_and_mixed_units(fixtures):
    summary, records = run(fixtures / "azure_mca.csv")
    mini = [r for r in records if r.request_model == "gpt-4o-mini-0718"]
    assert {r.region for r in mini} == {"azure:swedencentral"}
    assert all("routing_data_zone" in r.flags for r in mini)
    assert sum(r.energy_wh for r in mini) == pytest.approx(energy_wh("gpt-4o-mini", 5e6, "azure:swedencentral"))
    assert sum(r.carbon_gco2e for r in mini) == pytest.approx(carbon_g("gpt-4o-mini", 5e6, "azure:swedencentral"))
    assert sum(r.cost_usd for r in mini) == pytest.approx(1.32)
    (phi,) = [r for r in records if r.request_model == "phi-4"]
    assert phi.energy_wh is None and phi.provider == "azure.ai.inference"
    assert any("unit of measure '1 Hour' is not a token unit" in k for k in summary.skipped)
    assert all(r.timestamp == "2025-06-03T00:00:00.000000Z" for r in records)


def test_meter_names():
    p = azure.parse_meter
    assert p("gpt 4o 1120 cached Inp glbl Tokens") == azure.Meter("gpt-4o-1120", "cache_read", "global")
    m = p("5.5 ShortCo inp Dz 1M Tokens", "Azure OpenAI GPT5")
    assert (m.model, m.deployment, m.unit_hint) == ("gpt-5.5", "data_zone", 1e6)
    assert p("V4 Pro Inp glbl Tokens", "Azure Deepseek Models").model == "deepseek-v4-pro"
    assert p("Grok 4.1 Inp DZone Tokens", "Azure Grok Models").model == "grok-4.1"
    assert p("Phi-4-Input Tokens").model == "phi-4"
    assert p("D2 v3/D2s v3").model is None


def test_not_a_cost_export(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("foo,bar\n1,2\n")
    summary, records = run(bad)
    assert not records and not summary.usable
    assert any("not an Azure cost export" in p and "MeterName" in p for p in summary.problems)
