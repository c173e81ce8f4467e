"""The telemetry record tailpipe.record/1: dataclass, hand validation, JSON encoding and JSON Schema."""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import sys
import uuid
from types import MappingProxyType

import jsonschema
import pytest

from tailpipe_ai.semconv import (
    FIELD_NAMES,
    REQUIRED_FIELDS,
    SCHEMA,
    Record,
    RecordError,
    decode,
    load_schema,
    new_record_id,
    parse_rfc3339,
    rfc3339_from_unix_ns,
    rfc3339_utc,
    schema_path,
    utc_now_rfc3339,
)

FORMAT_CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER


@pytest.fixture(scope="module")
def validator():
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=FORMAT_CHECKER)


def minimal_record() -> Record:
    return Record(integration="sdk", provider="openai", token_accuracy="exact")


def full_record() -> Record:
    return Record(
        record_id="0b7c3f5e-6a1d-4b8e-9c2f-1a2b3c4d5e6f",
        timestamp="2026-05-01T12:34:56.789012Z",
        integration="proxy",
        provider="anthropic",
        request_model="claude-sonnet-4-latest",
        response_model="claude-sonnet-4-20250514",
        operation="chat",
        output_type="text",
        input_tokens=15_000,
        output_tokens=1_200,
        cache_read_tokens=10_000,
        cache_write_tokens=2_000,
        reasoning_tokens=300,
        images=None,
        image_size=None,
        image_quality=None,
        video_seconds=None,
        video_resolution=None,
        latency_ms=1834.5,
        ttft_ms=412.0,
        streamed=True,
        status="ok",
        error_type=None,
        token_accuracy="exact",
        region="eu-west-1",
        environment={"service.name": "checkout", "deployment.environment.name": "prod"},
        attributes={"team": "payments", "project": "équipe-α"},
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        span_id="00f067aa0ba902b7",
        energy_wh=0.041,
        energy_wh_min=0.03,
        energy_wh_max=0.05,
        carbon_gco2e=0.0136,
        carbon_gco2e_min=0.01,
        carbon_gco2e_max=0.017,
        cost_usd=0.063,
        factors={"pue": {"value": 1.35, "source": "seed"}, "dataset_version": "2026.05", "pse": 1.04},
        flags=["model_unknown"],
        signature={"alg": "HMAC-SHA256", "key_id": "k1", "value": "c2lnbmF0dXJl"},
    )


# ---------------------------------------------------------------------------------------------------------
# schema file and dataclass agree
# ---------------------------------------------------------------------------------------------------------


def test_schema_file_is_shipped():
    path = schema_path()
    assert path.name == "record.schema.json"
    assert path.is_file()
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema == load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["schema"]["const"] == SCHEMA == "tailpipe.record/1"
    assert schema["additionalProperties"] is True


def test_dataclass_fields_match_schema_properties():
    schema = load_schema()
    dataclass_fields = [f.name for f in dataclasses.fields(Record) if f.name != "extra"]
    assert list(FIELD_NAMES) == dataclass_fields
    assert set(dataclass_fields) == set(schema["properties"])
    assert list(schema["properties"]) == dataclass_fields  # same order, for readers of the schema
    assert set(REQUIRED_FIELDS) == set(schema["required"])


def test_dataclass_is_slotted_and_keyword_only():
    assert hasattr(Record, "__slots__")
    with pytest.raises(TypeError):
        Record("sdk", "openai", "exact")  # type: ignore[misc]
    # Fields without a default are exactly the required ones a producer must choose.
    no_default = {
        f.name
        for f in dataclasses.fields(Record)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    assert no_default == {"integration", "provider", "token_accuracy"}
    assert no_default <= set(REQUIRED_FIELDS)


def test_format_checker_checks_date_time_and_uuid():
    # jsonschema checks "date-time" only when rfc3339-validator is installed (a dev dependency).
    assert "date-time" in FORMAT_CHECKER.checkers, "pip install rfc3339-validator"
    assert "uuid" in FORMAT_CHECKER.checkers


# ---------------------------------------------------------------------------------------------------------
# to_dict / encode / decode
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [minimal_record, full_record])
def test_to_dict_validates_against_json_schema(make, validator):
    data = make().to_dict()
    errors = [e.message for e in validator.iter_errors(data)]
    assert errors == []


def test_to_dict_omits_nothing():
    data = minimal_record().to_dict()
    assert list(data) == list(FIELD_NAMES)
    assert data["input_tokens"] is None
    assert data["environment"] == {} and data["flags"] == [] and data["signature"] is None


def test_defaults():
    r = minimal_record()
    assert r.schema == SCHEMA
    assert uuid.UUID(r.record_id).version == 4
    assert parse_rfc3339(r.timestamp)
    assert r.status == "ok"
    assert r.validate() is r


def test_to_dict_copies_containers():
    r = full_record()
    data = r.to_dict()
    data["environment"]["x"] = "y"
    data["factors"]["pue"]["value"] = 9
    data["flags"].append("z")
    assert "x" not in r.environment
    assert r.factors["pue"]["value"] == 1.35
    assert r.flags == ["model_unknown"]


def test_view_is_to_dict_sharing_the_containers():
    r = dataclasses.replace(full_record(), extra={"later_field": [1], "flags": "never over a field"})
    view, data = r.view(), r.to_dict()
    assert view == data and list(view) == list(data) == [*FIELD_NAMES, "later_field"]
    assert view["factors"] is r.factors and view["later_field"] is r.extra["later_field"]
    assert view["flags"] == ["model_unknown"]


@pytest.mark.parametrize("make", [minimal_record, full_record])
def test_round_trip(make):
    r = make()
    encoded = r.encode()
    assert isinstance(encoded, bytes)
    assert decode(encoded) == r
    assert Record.decode(encoded.decode("utf-8")) == r
    assert Record.from_dict(r.to_dict()) == r


def test_encode_is_compact_single_line_utf8():
    r = full_record()
    r.attributes["note"] = "line\nbreak\u2028sep\u2029para\x85nel"
    encoded = r.encode()
    assert not encoded.endswith(b"\n")
    assert b"\n" not in encoded and b"\r" not in encoded
    text = encoded.decode("utf-8")
    assert len(text.splitlines()) == 1
    assert ", " not in text and '": ' not in text
    assert "équipe-α".encode() in encoded  # UTF-8, not \u escapes
    assert decode(encoded) == r


def test_unknown_fields_are_preserved(validator):
    data = full_record().to_dict()
    data["future_field"] = {"nested": [1, 2, 3]}
    data["another"] = "x"
    r = Record.from_dict(data)
    assert r.extra == {"future_field": {"nested": [1, 2, 3]}, "another": "x"}
    out = json.loads(r.encode())
    assert out["future_field"] == {"nested": [1, 2, 3]}
    assert out["another"] == "x"
    assert out == data
    assert validator.is_valid(out)
    assert decode(r.encode()) == r


def test_from_dict_copies_containers():
    data = full_record().to_dict()
    data["later"] = {"a": [1]}
    r = Record.from_dict(data)
    data["environment"]["x"] = "y"
    data["later"]["a"].append(2)
    assert "x" not in r.environment
    assert r.extra == {"later": {"a": [1]}}


def test_integral_float_counts_are_normalized():
    data = minimal_record().to_dict()
    data["input_tokens"] = 12.0
    r = Record.from_dict(data)
    assert r.input_tokens == 12 and type(r.input_tokens) is int


def test_mappings_are_accepted():
    data = minimal_record().to_dict()
    data["environment"] = MappingProxyType({"service.name": "svc"})
    r = Record.from_dict(MappingProxyType(data))
    assert r.environment == {"service.name": "svc"} and type(r.environment) is dict


def test_timestamp_variants_accepted(validator):
    for ts in ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00+00:00", "2026-01-01t00:00:00.1z"):
        data = minimal_record().to_dict()
        data["timestamp"] = ts
        assert Record.from_dict(data).timestamp == ts
        assert validator.is_valid(data), ts


# ---------------------------------------------------------------------------------------------------------
# bad input: hand validation and the JSON Schema agree, and the message names the field
# ---------------------------------------------------------------------------------------------------------

BAD_VALUES = [
    ("input_tokens", -1),
    ("input_tokens", 1.5),
    ("input_tokens", True),
    ("input_tokens", "10"),
    ("output_tokens", -5),
    ("cache_read_tokens", -1),
    ("cache_write_tokens", [1]),
    ("reasoning_tokens", -2),
    ("images", -1),
    ("video_seconds", -0.5),
    ("latency_ms", -0.1),
    ("ttft_ms", "fast"),
    ("energy_wh", "1"),
    ("energy_wh_min", -1e-9),
    ("carbon_gco2e", False),
    ("cost_usd", -0.01),
    ("record_id", "not-a-uuid"),
    ("record_id", "0B7C3F5E-6A1D-4B8E-9C2F-1A2B3C4D5E6F"),
    ("record_id", 123),
    ("timestamp", "2026-01-01T00:00:00+02:00"),
    ("timestamp", "2026-13-01T00:00:00Z"),
    ("timestamp", "2026-02-30T00:00:00Z"),
    ("timestamp", "2016-12-31T23:59:60Z"),
    ("timestamp", "2026-01-01 00:00:00Z"),
    ("timestamp", "yesterday"),
    ("timestamp", 1767225600),
    ("integration", "browser"),
    ("integration", None),
    ("provider", ""),
    ("provider", None),
    ("operation", ""),
    ("operation", 3),
    ("output_type", "smell"),
    ("request_model", 4),
    ("region", ["eu-west-1"]),
    ("streamed", "yes"),
    ("streamed", 1),
    ("status", "failed"),
    ("token_accuracy", "guess"),
    ("token_accuracy", None),
    ("trace_id", "4BF92F3577B34DA6A3CE929D0E0E4736"),
    ("trace_id", "0" * 32),
    ("trace_id", "abc"),
    ("span_id", "00f067aa0ba902b"),
    ("span_id", "0" * 16),
    ("environment", {"service.name": 1}),
    ("environment", None),
    ("attributes", ["team"]),
    ("factors", None),
    ("factors", []),
    ("flags", "model_unknown"),
    ("flags", [1]),
    ("flags", None),
    ("signature", {"alg": "HMAC-SHA256"}),
    ("signature", "abc"),
]


@pytest.mark.parametrize(("field", "value"), BAD_VALUES)
def test_bad_field_raises_record_error_naming_the_field(field, value, validator):
    data = full_record().to_dict()
    data[field] = value
    assert not validator.is_valid(data), "the JSON Schema should reject this too"
    with pytest.raises(RecordError) as info:
        Record.from_dict(data)
    assert repr(field) in str(info.value)
    assert info.value.field == field
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(("field", "value"), BAD_VALUES)
def test_bad_field_is_refused_at_encode(field, value):
    r = full_record()
    setattr(r, field, value)
    with pytest.raises(RecordError) as info:
        r.encode()
    assert repr(field) in str(info.value)


def test_wrong_schema_value_is_named(validator):
    data = minimal_record().to_dict()
    data["schema"] = "tailpipe.record/2"
    assert not validator.is_valid(data)
    with pytest.raises(RecordError) as info:
        Record.from_dict(data)
    assert "tailpipe.record/2" in str(info.value)
    assert "'schema'" in str(info.value)
    assert info.value.field == "schema"


@pytest.mark.parametrize("field", REQUIRED_FIELDS)
def test_missing_required_field(field, validator):
    data = minimal_record().to_dict()
    del data[field]
    assert not validator.is_valid(data)
    with pytest.raises(RecordError) as info:
        Record.from_dict(data)
    assert repr(field) in str(info.value)
    assert "missing" in str(info.value)


def test_optional_fields_may_be_absent(validator):
    data = {name: value for name, value in minimal_record().to_dict().items() if name in REQUIRED_FIELDS}
    assert validator.is_valid(data)
    r = Record.from_dict(data)
    assert r.input_tokens is None and r.environment == {} and r.flags == []


@pytest.mark.parametrize("value", [[], "record", 3, None])
def test_non_dict_is_refused(value):
    with pytest.raises(RecordError, match="record: expected a JSON object"):
        Record.from_dict(value)  # type: ignore[arg-type]
    with pytest.raises(RecordError, match="record: expected a JSON object"):
        decode(json.dumps(value))


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"{not json", "record: invalid JSON"),
        (b"", "record: invalid JSON"),
        (b'{"schema": "tailpipe.record/1",', "record: invalid JSON"),
        (b"\xff\xfe{}", "record: not valid UTF-8"),
        ('{"schema":"tailpipe.record/1","energy_wh":NaN}', "record: invalid JSON"),
        ('{"schema":"tailpipe.record/1","energy_wh":Infinity}', "record: invalid JSON"),
    ],
)
def test_bad_json_is_refused(payload, match):
    with pytest.raises(RecordError, match=match):
        decode(payload)


def test_decode_refuses_other_types():
    with pytest.raises(RecordError, match="record: expected bytes or str"):
        decode(42)  # type: ignore[arg-type]


def test_encode_refuses_nan_and_unencodable_values():
    r = minimal_record()
    r.energy_wh = math.nan
    with pytest.raises(RecordError, match="'energy_wh'"):
        r.encode()
    r = minimal_record()
    r.factors = {"pue": math.inf}
    with pytest.raises(RecordError, match="'factors'"):
        r.encode()
    r = minimal_record()
    r.factors = {"when": object()}
    with pytest.raises(RecordError, match="'factors'"):
        r.encode()
    r = minimal_record()
    r.extra = {"later": math.nan}
    with pytest.raises(RecordError, match="'later'"):
        r.encode()


def test_extra_may_not_shadow_a_field():
    r = minimal_record()
    r.extra = {"provider": "other"}
    with pytest.raises(RecordError, match="'provider'"):
        r.encode()


def test_error_messages_are_bounded():
    data = minimal_record().to_dict()
    data["provider"] = 12345
    data["request_model"] = "x" * 10_000
    with pytest.raises(RecordError) as info:
        Record.from_dict(data)
    assert len(str(info.value)) < 300
    data["provider"] = "openai"
    data["input_tokens"] = "y" * 10_000
    with pytest.raises(RecordError) as info:
        Record.from_dict(data)
    assert len(str(info.value)) < 300


# ---------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------


def test_new_record_id():
    ids = {new_record_id() for _ in range(100)}
    assert len(ids) == 100
    for rid in ids:
        assert str(uuid.UUID(rid)) == rid
        assert uuid.UUID(rid).version == 4


def test_record_ids_are_the_uuids_of_their_random_bytes(monkeypatch):
    """The batch formats each 16 random bytes as `uuid.UUID(bytes=..., version=4)` does: every byte in its
    place, the version and variant bits set."""
    from tailpipe_ai.semconv import record as record_module

    drawn: list[bytes] = []

    def urandom(n: int) -> bytes:
        drawn.append(bytes((i * 7 + 13) % 256 for i in range(n)))
        return drawn[-1]

    monkeypatch.setattr(record_module.os, "urandom", urandom)
    ids = record_module._id_batch()
    (raw,) = drawn
    assert len(ids) == len(raw) // 16 == record_module._ID_BATCH
    for k, rid in enumerate(ids):
        assert rid == str(uuid.UUID(bytes=raw[16 * k : 16 * k + 16], version=4)), k


def test_timestamps():
    now = utc_now_rfc3339()
    assert now.endswith("Z")
    assert parse_rfc3339(now).utcoffset().total_seconds() == 0
    assert rfc3339_from_unix_ns(0) == "1970-01-01T00:00:00.000000Z"
    assert rfc3339_from_unix_ns(1_767_225_600_123_456_789) == "2026-01-01T00:00:00.123456Z"
    aware = parse_rfc3339("2026-01-01T00:00:00.5+00:00")
    assert rfc3339_utc(aware) == "2026-01-01T00:00:00.500000Z"
    with pytest.raises(ValueError):
        rfc3339_utc(aware.replace(tzinfo=None))
    with pytest.raises(ValueError):
        parse_rfc3339("2026-01-01T00:00:00-05:00")


@pytest.mark.parametrize(
    "bad",
    [
        "2026-11-23T12:27:09.12001xZ",
        "2026-11-23T12:27:09.\uff11\uff12\uff10015Z",  # fullwidth digits are digits, not ASCII ones
        "2026-11-23T12:27:09,120015Z",
        "2026-11-23T12:27:09.120015z",
        "2026-11-23T12:27:09.1200150",
        "2026-02-30T12:27:09.120015Z",
        "2026-11-23T24:27:09.120015Z",
    ],
)
def test_the_canonical_timestamp_check_refuses_after_its_second_was_seen(bad):
    from tailpipe_ai.semconv.record import _is_canonical_timestamp

    assert _is_canonical_timestamp("2026-11-23T12:27:09.120015Z")  # the second is remembered
    assert _is_canonical_timestamp("2026-11-23T12:27:09.999999Z")
    assert not _is_canonical_timestamp(bad)
    if not bad.endswith("z"):  # a lower-case z is RFC 3339, only not the form we write
        with pytest.raises(RecordError):
            Record(integration="sdk", provider="openai", token_accuracy="exact", timestamp=bad).validate()


def test_package_imports_only_the_standard_library():
    package_dir = schema_path().parent
    sources = sorted(package_dir.glob("*.py"))
    assert {p.name for p in sources} >= {"__init__.py", "attributes.py", "record.py"}
    for source in sources:
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                stdlib = top == "__future__" or top in sys.stdlib_module_names
                assert stdlib, f"{source.name} imports {module}"
