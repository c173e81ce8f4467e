"""Lines as sinks write them: orjson's encoding says what `Record.encode` (the standard-library
reference) says, value for value; bad records are refused with the field named; signers are honoured."""

from __future__ import annotations

import json
import math
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailpipe_ai.exporter.lines import json_line, record_line
from tailpipe_ai.exporter.signing import Keyring, RecordSigner, Verdict, check
from tailpipe_ai.semconv import Record, RecordError

RING = Keyring("k1", bytes(range(32)))


def record(**fields) -> Record:
    base = dict(
        integration="sdk",
        provider="openai",
        request_model="gpt-4o",
        token_accuracy="exact",
        input_tokens=10,
        output_tokens=3,
        latency_ms=12.5,
        energy_wh=0.00001,
        factors={"pue": {"value": 1.0, "source": "x"}, "grid": 473},
    )
    base.update(fields)
    return Record(**base)


texts = st.text(max_size=12)
floats = st.floats(min_value=0, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(
    attributes=st.dictionaries(texts, texts, max_size=4),
    flags=st.lists(texts, max_size=3),
    latency=floats,
    factor=st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**62), 2**62) | texts,
    model=st.none() | texts,
)
def test_json_line_is_record_encode(attributes, flags, latency, factor, model):
    r = record(attributes=attributes, flags=flags, latency_ms=latency, factors={"f": [factor]}, request_model=model)
    try:
        expected = r.encode()
    except RecordError:  # lone surrogates: neither encoder writes them
        with pytest.raises(RecordError):
            record_line(r)
        return
    line = record_line(r)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == json.loads(expected)  # the same values (orjson writes 1e-5, json 1e-05)
    assert Record.from_dict(json.loads(line)) == r
    assert len(line.decode().splitlines()) == 1  # U+2028, U+2029, U+0085 are escaped


def test_non_finite_numbers_are_refused_wherever_they_are():
    for bad in (record(factors={"x": {"y": [math.nan]}}), record(extra={"newer": math.inf})):
        with pytest.raises(RecordError, match="not encodable"):
            record_line(bad)
        with pytest.raises(RecordError):
            bad.encode()
    with pytest.raises(RecordError, match="latency_ms"):
        record_line(record(latency_ms=math.nan))  # a schema field: refused by validation, field named


@pytest.mark.parametrize(("walker", "encode"), [("_is_plain", record_line), ("_has_non_finite", None)])
def test_shared_factors_are_walked_once_and_a_bad_one_is_refused_every_time(monkeypatch, walker, encode):
    from tailpipe_ai.exporter import lines

    encode = encode or (lambda r: json_line(r.view()))  # the dict path (signers, unknown fields)
    walked = []
    real = getattr(lines, walker)
    monkeypatch.setattr(lines, walker, lambda value: walked.append(value) or real(value))
    shared = {"pue": {"value": 1.2}}
    for _ in range(3):
        encode(record(factors=shared))
    assert [w for w in walked if w is shared] == [shared]  # remembered after the first walk
    bad = {"pue": {"value": math.inf}}
    for _ in range(2):
        with pytest.raises(RecordError, match="not encodable"):
            encode(record(factors=bad))


@pytest.mark.parametrize(
    "factors",
    [
        {"pue": {"value": 1.2}, "list": [1, "a", None, True, {"x": 0.5}]},
        {"odd": (1, 2)},  # a tuple: not JSON's own type, so the general path writes it
        {"uuid": uuid.UUID(int=7)},  # orjson writes a UUID; the general path decides, as before
    ],
)
def test_the_dataclass_encoding_writes_what_the_dict_encoding_writes(factors):
    rec = record(factors=factors, attributes={"team": "a\u2028b"}, flags=["x"])
    assert record_line(rec) == json_line(rec.view()) + b"\n"
    unknown = record(factors=factors, extra={"later_field": 1})
    assert record_line(unknown) == json_line(unknown.view()) + b"\n"
    assert json.loads(record_line(unknown))["later_field"] == 1


def test_unencodable_values_name_the_field():
    with pytest.raises(RecordError, match="factors"):
        json_line(record(factors={"x": object()}).view())


def test_record_signer_writes_one_signed_line():
    line = record_line(record(), RecordSigner(RING))
    assert line.endswith(b"}\n") and line.count(b"\n") == 1
    parsed = json.loads(line)
    assert check(parsed, RING).verdict is Verdict.OK
    assert parsed["request_model"] == "gpt-4o" and parsed["response_model"] is None  # every field named
    assert set(parsed) == set(record().to_dict())
    assert Record.from_dict(parsed).request_model == "gpt-4o"


def test_a_dict_signer_gets_the_dict_and_its_result_is_written():
    seen = []

    def signer(data):
        seen.append(data)
        return {**data, "signature": {"alg": "HMAC-SHA256", "key_id": "k", "value": "v"}}

    line = record_line(record(), signer)
    assert json.loads(line)["signature"]["key_id"] == "k" and seen[0]["provider"] == "openai"


def test_invalid_records_are_refused_before_any_signer_runs():
    def signer(data):
        raise AssertionError("signer called")

    for s in (None, signer, RecordSigner(RING)):
        with pytest.raises(RecordError, match="input_tokens"):
            record_line(record(input_tokens=-1), s)


# -- records in their dict form (the proxy's path: record_fields -> fields_line, no Record in between) ------


def test_record_fields_is_the_view_of_build_record_in_schema_order():
    from tailpipe_ai.carbon import estimate
    from tailpipe_ai.exporter.records import Call, build_record, estimate_call, record_fields
    from tailpipe_ai.providers import CallInfo
    from tailpipe_ai.semconv.record import FIELD_NAMES

    info = CallInfo(response_model="gpt-4o-2024-08-06", input_tokens=120, output_tokens=30, reasoning_tokens=8)
    call = Call("openai", "chat", "gpt-4o", "proxy", info=info, latency_ms=5.0, attributes={"team": "a"}, flags=("x",))
    est, cost = estimate_call(call)
    assert est is not None and estimate is not None
    fields = record_fields(call, est, cost, "2026-11-23T10:00:00.000000Z")
    assert tuple(fields) == FIELD_NAMES
    record = Record(**fields)
    assert record.view() == fields and record.validate() == record
    assert fields["attributes"] is not call.attributes  # copied: the call's mapping may change later
    built = build_record(call, None, None, "2026-11-23T10:00:00.000000Z")
    assert built.energy_wh is None and built.factors == {} and built.flags == ["x"]


@settings(max_examples=200, deadline=None)
@given(
    attributes=st.dictionaries(texts, texts, max_size=3),
    flags=st.lists(texts, max_size=3),
    latency=floats,
    tokens=st.integers(0, 2**40) | st.floats(0, 1e6).map(float) | st.none(),
)
def test_fields_line_writes_what_record_line_writes(attributes, flags, latency, tokens):
    from tailpipe_ai.exporter.lines import fields_line

    r = record(attributes=attributes, flags=flags, latency_ms=latency, input_tokens=tokens)
    fields = r.view()
    before = dict(fields)
    try:
        expected = record_line(Record.from_dict(r.to_dict()))
    except RecordError as exc:  # a fractional token count, a lone surrogate: refused the same way
        with pytest.raises(RecordError) as caught:
            fields_line(fields)
        assert caught.value.field == exc.field
        return
    assert fields_line(fields) == expected  # normalised the same way (5.0 tokens -> 5) when not plain
    assert fields == before  # the caller's dict is left as it was


def test_fields_line_refuses_missing_unknown_and_bad_fields_by_name_and_signs():
    from tailpipe_ai.exporter.lines import fields_line

    fields = record().view()
    with pytest.raises(RecordError) as exc:
        fields_line({**fields, "energy_wh": math.inf})
    assert exc.value.field == "energy_wh"
    with pytest.raises(RecordError) as exc:
        fields_line({k: v for k, v in fields.items() if k != "provider"})
    assert exc.value.field == "provider"
    extra = json.loads(fields_line({**fields, "vendor_thing": 1}))
    assert extra["vendor_thing"] == 1  # an unknown field is kept, as records read from elsewhere keep theirs
    signer = RecordSigner(RING)
    assert fields_line(fields, signer) == record_line(Record(**fields), signer)
    assert check(json.loads(fields_line(fields, signer)), RING).verdict is Verdict.OK
