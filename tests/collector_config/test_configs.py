"""Static checks of collector-config/*.yaml (no otelcol binary can run here: reference/pipeline.md 2.8).

Valid YAML; only real component types and keys; every pipeline wired (each referenced id defined, each
defined component used, connectors used on both sides); in every traces pipeline a content-deleting
processor before export; the content deletions in sync with tailpipe_ai.semconv's denylist.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tailpipe_ai.semconv import attributes as sc

ROOT = Path(__file__).resolve().parents[2] / "collector-config"
CONFIGS = sorted(ROOT.glob("*.yaml"))

# Known otelcol-contrib component types and their top-level config keys, as checked in each component's
# README / config.go (open-telemetry/opentelemetry-collector and -contrib, v0.1xx), via reference/pipeline.md
# section 2 and the `search` tool:
#   receiver/otlpreceiver/config.md; processor/memorylimiterprocessor/README.md;
#   processor/batchprocessor/README.md; processor/attributesprocessor/README.md;
#   processor/transformprocessor/README.md; processor/filterprocessor/README.md;
#   processor/resourceprocessor/README.md; connector/signaltometricsconnector/README.md (+config.schema.yaml);
#   exporter/otlphttpexporter/README.md ("otlphttp", newer alias "otlp_http"); exporter/otlpexporter/README.md;
#   exporter/prometheusexporter/README.md; exporter/debugexporter/README.md.
_OTLP_HTTP_KEYS = {
    "endpoint",
    "traces_endpoint",
    "metrics_endpoint",
    "logs_endpoint",
    "headers",
    "compression",
    "encoding",
    "timeout",
    "retry_on_failure",
    "sending_queue",
    "tls",
}
KNOWN = {
    "receivers": {"otlp": {"protocols"}},
    "processors": {
        "memory_limiter": {
            "check_interval",
            "limit_mib",
            "spike_limit_mib",
            "limit_percentage",
            "spike_limit_percentage",
        },
        "batch": {"timeout", "send_batch_size", "send_batch_max_size", "metadata_keys", "metadata_cardinality_limit"},
        "attributes": {"actions", "include", "exclude"},
        "transform": {"error_mode", "trace_statements", "metric_statements", "log_statements"},
        "filter": {"error_mode", "traces", "metrics", "logs"},
        "resource": {"attributes"},
    },
    "connectors": {"signaltometrics": {"spans", "datapoints", "logs", "profiles", "error_mode"}},
    "exporters": {
        "otlphttp": _OTLP_HTTP_KEYS,
        "otlp_http": _OTLP_HTTP_KEYS,  # the same exporter under its newer name
        "otlp": {
            "endpoint",
            "tls",
            "headers",
            "compression",
            "timeout",
            "retry_on_failure",
            "sending_queue",
            "balancer_name",
        },
        "prometheus": {
            "endpoint",
            "namespace",
            "const_labels",
            "send_timestamps",
            "metric_expiration",
            "resource_to_telemetry_conversion",
            "enable_open_metrics",
            "add_metric_suffixes",
        },
        "debug": {"verbosity", "sampling_initial", "sampling_thereafter"},
    },
}
ATTRIBUTE_ACTIONS = {"insert", "update", "upsert", "delete", "hash", "extract", "convert"}
OTLP_PROTOCOLS = {"grpc", "http"}
FILTER_TRACES = {"span", "spanevent"}
FILTER_METRICS = {"metric", "datapoint"}
STTM_METRIC_KEYS = {
    "name",
    "description",
    "unit",
    "conditions",
    "attributes",
    "include_resource_attributes",
    "sum",
    "gauge",
    "histogram",
    "exponential_histogram",
}
CONTENT_PROCESSORS = ("attributes/drop_content", "transform/drop_content", "filter/drop_content_events")


def load(path):
    return yaml.safe_load(path.read_text())


def ctype(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def test_there_are_configs():
    assert {p.name for p in CONFIGS} >= {"agent.yaml", "claude-code.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_components_and_keys_are_real(path):
    doc = load(path)
    assert set(doc) <= {"receivers", "processors", "connectors", "exporters", "extensions", "service"}
    for kind in ("receivers", "processors", "connectors", "exporters"):
        for cid, conf in (doc.get(kind) or {}).items():
            assert ctype(cid) in KNOWN[kind], f"{path.name}: unknown {kind[:-1]} type {cid!r}"
            unknown = set(conf or {}) - KNOWN[kind][ctype(cid)]
            assert not unknown, f"{path.name}: {cid} has unknown keys {unknown}"
    for cid, conf in (doc.get("processors") or {}).items():
        if ctype(cid) == "attributes":
            for action in conf["actions"]:
                assert action["action"] in ATTRIBUTE_ACTIONS
                assert "key" in action or "pattern" in action
                if "pattern" in action:
                    re.compile(action["pattern"])
        if ctype(cid) == "filter":
            assert set(conf.get("traces", {})) <= FILTER_TRACES
            assert set(conf.get("metrics", {})) <= FILTER_METRICS
        if ctype(cid) == "transform":
            for group in conf["trace_statements"]:
                assert group["context"] in {"resource", "scope", "span", "spanevent"}
    for cid, conf in (doc.get("receivers") or {}).items():
        if ctype(cid) == "otlp":
            assert set(conf["protocols"]) <= OTLP_PROTOCOLS
    for conf in (doc.get("connectors") or {}).values():
        for metric in conf.get("spans", []):
            assert set(metric) <= STTM_METRIC_KEYS
            assert sum(k in metric for k in ("sum", "gauge", "histogram", "exponential_histogram")) == 1
    for cid, conf in (doc.get("exporters") or {}).items():
        if ctype(cid) in ("otlphttp", "otlp_http") and "compression" in conf:
            assert conf["compression"] in {"gzip", "none", "zstd", "snappy", "zlib", "deflate", "lz4"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_pipelines_are_wired(path):
    doc = load(path)
    pipelines = doc["service"]["pipelines"]
    assert pipelines
    connectors = set(doc.get("connectors") or {})
    used = {"receivers": set(), "processors": set(), "exporters": set()}
    connector_in, connector_out = set(), set()
    for name, pipe in pipelines.items():
        assert name.split("/", 1)[0] in {"traces", "metrics", "logs"}, name
        assert pipe.get("receivers") and pipe.get("exporters"), f"{name} needs receivers and exporters"
        for rid in pipe["receivers"]:
            assert rid in (doc.get("receivers") or {}) or rid in connectors, f"{name}: undefined receiver {rid}"
            (connector_out if rid in connectors else used["receivers"]).add(rid)
        for pid in pipe.get("processors", []):
            assert pid in (doc.get("processors") or {}), f"{name}: undefined processor {pid}"
            used["processors"].add(pid)
        for eid in pipe["exporters"]:
            assert eid in (doc.get("exporters") or {}) or eid in connectors, f"{name}: undefined exporter {eid}"
            (connector_in if eid in connectors else used["exporters"]).add(eid)
    for kind in used:
        unused = set(doc.get(kind) or {}) - used[kind]
        assert not unused, f"{path.name}: defined but unused {kind}: {unused}"
    assert connectors == connector_in == connector_out, "each connector must export from one and feed another"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_content_is_deleted_in_every_traces_pipeline_before_export(path):
    doc = load(path)
    for name, pipe in doc["service"]["pipelines"].items():
        if not name.startswith("traces"):
            continue
        processors = pipe.get("processors", [])
        for required in CONTENT_PROCESSORS:
            assert required in processors, f"{name}: {required} missing"
        # processors run before exporters by construction; they must also run before batch/queueing
        assert max(processors.index(p) for p in CONTENT_PROCESSORS) < processors.index("batch")


def test_content_deletions_match_the_semconv_denylist():
    doc = load(ROOT / "agent.yaml")
    actions = doc["processors"]["attributes/drop_content"]["actions"]
    keys = {a["key"] for a in actions if "key" in a}
    patterns = [re.compile(a["pattern"]) for a in actions if "pattern" in a]
    assert keys == set(sc.CONTENT_ATTRIBUTES)
    for prefix in sc.CONTENT_ATTRIBUTE_PREFIXES:
        sample = prefix + ("0.content" if prefix.endswith(".") else ".0.content")
        assert any(p.match(sample) for p in patterns), prefix
        assert any(p.match(prefix.rstrip(".") + ("." if prefix.endswith(".") else "") + "x") for p in patterns)
    assert not any(p.match("gen_ai.request.model") or p.match("gen_ai.usage.input_tokens") for p in patterns)
    events = doc["processors"]["filter/drop_content_events"]["traces"]["spanevent"]
    text = " ".join(events)
    for event in ("gen_ai.choice", "gen_ai.client.inference.operation.details"):
        assert event in text
    ottl = re.search(r'IsMatch\(name, "(.+?)"\)', events[0]).group(1).replace("\\\\", "\\")
    for name in ("gen_ai.user.message", "gen_ai.system.message", "gen_ai.assistant.message", "gen_ai.tool.message"):
        assert re.match(ottl, name), name


def test_claude_code_config_forwards_only_token_usage_without_identity():
    doc = load(ROOT / "claude-code.yaml")
    assert set(doc["service"]["pipelines"]) == {"metrics"}  # no logs: Claude Code's events can hold prompts
    flt = doc["processors"]["filter/token_usage_only"]["metrics"]["metric"]
    assert flt == ['name != "claude_code.token.usage"']
    deleted = {a["key"] for a in doc["processors"]["attributes/drop_identity"]["actions"]}
    assert {"user.email", "user.account_uuid"} <= deleted
    exporter = doc["exporters"]["otlphttp/tailpipe"]
    assert exporter["headers"]["Authorization"].startswith("Bearer ${env:")
