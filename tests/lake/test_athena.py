"""The shipped Athena DDL (lake/athena.sql) matches the record schema, the lake layout and the report columns."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

from tailpipe_ai.lake import report
from tailpipe_ai.lake.layout import COMPACT_PREFIX, COMPANION_PREFIX, RAW_PREFIX, raw_partition

ROOT = Path(__file__).resolve().parents[2]
DDL = (ROOT / "lake" / "athena.sql").read_text()
SCHEMA = json.loads((ROOT / "semconv" / "record.schema.json").read_text())


def tables() -> dict[str, tuple[list[tuple[str, str]], str]]:
    """{table: ([(column, type)], rest of the statement)} parsed from the DDL."""
    out = {}
    for m in re.finditer(r"CREATE EXTERNAL TABLE IF NOT EXISTS (\w+) \((.*?)\n\)(.*?);", DDL, re.S):
        columns = []
        for raw in m[2].strip().splitlines():
            name, kind = raw.strip().rstrip(",").split(" ", 1)
            columns.append((name.strip("`"), kind))
        out[m[1]] = (columns, m[3])
    return out


def athena_type(spec: dict) -> str:
    """The Athena type a JSON-schema property maps to (written from the schema, not from the DDL)."""
    ref = spec.get("$ref", "").rsplit("/", 1)[-1]
    if ref:
        refs = {"count": "bigint", "quantity": "double", "optionalString": "string", "stringMap": "map<string,string>"}
        return refs[ref]
    if "oneOf" in spec:  # signature: null or {alg, key_id, value}
        obj = next(s for s in spec["oneOf"] if s.get("type") == "object")
        return "struct<" + ",".join(f"{k}:string" for k in obj["properties"]) + ">"
    kind = spec.get("type")
    kinds = [kind] if isinstance(kind, str) else list(kind or [])
    if "boolean" in kinds:
        return "boolean"
    if "array" in kinds:
        return f"array<{spec['items']['type']}>"
    if "object" in kinds:
        return "string"  # free-form (factors): read it with json_extract
    return "string"  # strings, enums and consts


def test_raw_and_compacted_tables_have_every_schema_field_with_its_type():
    expected = [(name, athena_type(spec)) for name, spec in SCHEMA["properties"].items()]
    found = tables()
    assert found["ai_telemetry_raw"][0] == expected
    assert found["ai_telemetry"][0] == expected
    for name in ("ai_telemetry_raw", "ai_telemetry"):
        assert "org.openx.data.jsonserde.JsonSerDe" in found[name][1]


def test_raw_table_projects_the_hive_partitions_of_the_layout():
    _, rest = tables()["ai_telemetry_raw"]
    assert "PARTITIONED BY (year int, month int, day int)" in rest
    assert f"LOCATION 's3://BUCKET/PREFIX/{RAW_PREFIX}/'" in rest
    template = re.search(r"'storage.location.template' = '([^']+)'", rest)[1]
    # ${month} and ${day} are rendered with two digits, as the layout writes them.
    rendered = template.replace("${year}", "2026").replace("${month}", "03").replace("${day}", "07")
    assert rendered == f"s3://BUCKET/PREFIX/{raw_partition(date(2026, 3, 7))}"
    for column in ("month", "day"):
        assert f"'projection.{column}.digits' = '2'" in rest
    assert "'projection.enabled' = 'true'" in rest


def test_compacted_and_report_tables_point_at_their_own_prefixes():
    found = tables()
    assert f"LOCATION 's3://BUCKET/PREFIX/{COMPACT_PREFIX}/'" in found["ai_telemetry"][1]
    assert f"LOCATION 's3://BUCKET/PREFIX/{COMPANION_PREFIX}/'" in found["ai_telemetry_report"][1]
    assert "STORED AS PARQUET" in found["ai_telemetry_report"][1]
    duck = {"VARCHAR": "string", "BIGINT": "bigint", "DOUBLE": "double", "MAP(VARCHAR, VARCHAR)": "map<string,string>"}
    expected = [(name, duck[report._COLUMNS[name]]) for name in report._COMPANION_COLUMNS]
    assert found["ai_telemetry_report"][0] == expected


def test_example_queries_use_only_known_columns():
    known = set(SCHEMA["properties"]) | {"year", "month", "day", "$path"}
    queries = DDL.split("-- Example queries")[1]
    quoted = set(re.findall(r'"([^"]+)"', queries))
    assert quoted <= known
    for name in ("carbon_gco2e", "energy_wh", "attributes", "request_model", "response_model", "record_id"):
        assert name in queries
