"""Record signing: round trips, tamper detection, key rotation, canonical JSON and secret hygiene."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import logging
import math
import pickle
import random
import struct

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from tailpipe_ai.exporter import signing
from tailpipe_ai.exporter.signing import (
    Keyring,
    KeyringError,
    SigningError,
    Verdict,
    canonical_json,
    check,
    es_number,
    sign,
    sign_record,
    signature_for,
    verify,
)
from tailpipe_ai.semconv import Record

SECRET_OLD = bytes(range(32))
SECRET_NEW = bytes(range(100, 140))
OLD = Keyring("k1", SECRET_OLD)
NEW = Keyring("k2", SECRET_NEW)


def make_record(**overrides) -> dict:
    """A realistic record in dict form: nested factors with tiny and integral floats, unicode tags."""
    record = Record(
        record_id="6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b",
        timestamp="2026-11-22T23:59:58.123456Z",
        integration="proxy",
        provider="anthropic",
        request_model="claude-sonnet-4",
        response_model="claude-sonnet-4-20250514",
        operation="chat",
        output_type="text",
        input_tokens=15_000,
        output_tokens=1_234,
        cache_read_tokens=0,
        latency_ms=812.5,
        ttft_ms=120.0,
        streamed=True,
        token_accuracy="exact",
        region="eu-west-1",
        environment={"service.name": "api", "deployment.environment": "prod"},
        attributes={"team": "search", "project": "rag", "owner": "Zoë 北京 🚀"},
        energy_wh=0.7391207999999991,
        energy_wh_min=0.5,
        energy_wh_max=1e-7,
        carbon_gco2e=0.1 + 0.2,
        cost_usd=0.0,
        factors={
            "dataset_version": "2026.11.1",
            "pue": {"value": 1.35, "source": {"id": "seed", "year": 2025}},
            "grid": {"value": 473.0, "unit": "gCO2e/kWh"},
            "shape": {
                "per_input_token": 8.089133089133116e-07,
                "per_output_token": 0.0010104395604395612,
                "big": 1e21,
                "huge": 1.5e300,
                "min": {"per_request": -2.5e-5},
            },
            "notes": ["tab\there", 'quote"and\\slash', "ctl\x01\x1f\x7f", "\u2028line"],
        },
        flags=["location_unknown"],
    )
    record.validate()
    data = record.to_dict()
    data.update(overrides)
    return data


# ---------------------------------------------------------------------------------------------------------
# round trip and the scheme itself
# ---------------------------------------------------------------------------------------------------------


def test_sign_then_verify_round_trip():
    signed = sign(make_record(), NEW)
    assert signed["signature"]["alg"] == "HMAC-SHA256"
    assert signed["signature"]["key_id"] == "k2"
    assert len(signed["signature"]["value"]) == 43 and "=" not in signed["signature"]["value"]
    assert verify(signed, NEW) is Verdict.OK
    assert check(signed, NEW) == (Verdict.OK, "signed with key 'k2'")


def test_sign_does_not_mutate_and_ignores_existing_signature():
    record = make_record()
    before = copy.deepcopy(record)
    signed = sign(record, NEW)
    assert record == before
    again = sign(signed, NEW)  # re-signing a signed record signs the same content
    assert again["signature"] == signed["signature"]


def test_signature_matches_an_independent_implementation_of_the_spec():
    """Anyone can verify with rfc8785 + hmac from the module docstring alone."""
    record = make_record()
    signed = sign(record, NEW)
    body = {k: v for k, v in record.items() if k != "signature" and v is not None}
    mac = hmac.new(SECRET_NEW, b"tailpipe.record/1\n" + rfc8785.dumps(body), hashlib.sha256).digest()
    assert signed["signature"]["value"] == base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def test_survives_the_lake_round_trip_through_record_encode_and_decode():
    record = Record.from_dict(make_record())
    sign_record(record, NEW)
    line = record.encode()
    assert verify(json.loads(line), NEW) is Verdict.OK
    assert verify(Record.decode(line).to_dict(), NEW) is Verdict.OK


def test_missing_null_fields_and_integral_floats_do_not_change_the_signature():
    """An older writer omitting fields, or a reader turning 5.0 into 5, must not break signatures."""
    sparse = {k: v for k, v in make_record().items() if v is not None}
    sparse["input_tokens"] = 15000.0
    signed = sign(sparse, OLD)
    rewritten = Record.from_dict(signed).to_dict()  # adds every schema field as null, ints for counts
    assert rewritten["input_tokens"] == 15000 and type(rewritten["input_tokens"]) is int
    assert "image_size" in rewritten and rewritten["image_size"] is None
    assert verify(rewritten, OLD) is Verdict.OK


def test_canonical_form_is_independent_of_key_order_and_number_spelling():
    record = make_record()
    reordered = dict(reversed(list(record.items())))
    reordered["factors"] = dict(reversed(list(record["factors"].items())))
    assert signature_for(reordered, OLD) == signature_for(record, OLD)
    line = json.dumps(sign(record, OLD))
    respelled = line.replace('"input_tokens": 15000', '"input_tokens": 1.5E4').replace('"value": 473.0', '"value": 473')
    assert respelled != line
    assert verify(json.loads(respelled), OLD) is Verdict.OK


def test_sign_record_sets_the_signature_in_place():
    record = Record.from_dict(make_record())
    assert sign_record(record, OLD) is record
    assert record.signature == signature_for(make_record(), OLD)


# ---------------------------------------------------------------------------------------------------------
# verdicts
# ---------------------------------------------------------------------------------------------------------


def _set(path, value):
    def mutate(record):
        target = record
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _drop(key):
    return lambda record: record.pop(key)


TAMPERS = {
    "input tokens": _set(["input_tokens"], 15001),
    "output tokens": _set(["output_tokens"], 1),
    "tokens as float": _set(["output_tokens"], 1234.5),
    "energy": _set(["energy_wh"], 0.7391207999999992),
    "carbon": _set(["carbon_gco2e"], 0.3),
    "attribute value": _set(["attributes", "team"], "billing"),
    "attribute added": _set(["attributes", "cost_centre"], "42"),
    "factor nested value": _set(["factors", "pue", "value"], 1.1),
    "factor deep value": _set(["factors", "shape", "min", "per_request"], -2.6e-5),
    "factor list item": _set(["factors", "notes", 0], "tab here"),
    "null filled in": _set(["cache_write_tokens"], 0),
    "field removed": _drop("cost_usd"),
    "field added": _set(["extra_field"], "x"),
    "model": _set(["response_model"], "claude-haiku"),
    "timestamp": _set(["timestamp"], "2026-11-23T00:00:00.000000Z"),
    "flags": _set(["flags"], []),
    "signature value": _set(["signature", "value"], "A" * 43),
}


@pytest.mark.parametrize("tamper", TAMPERS.values(), ids=TAMPERS.keys())
def test_tampering_with_any_field_is_a_bad_signature(tamper):
    signed = sign(make_record(), NEW)
    tampered = copy.deepcopy(signed)
    tamper(tampered)
    assert verify(tampered, NEW) is Verdict.BAD_SIGNATURE
    assert verify(signed, NEW) is Verdict.OK


def test_a_signature_moved_to_another_known_key_id_is_bad():
    both = NEW.with_verify_keys(OLD)
    signed = sign(make_record(), NEW)
    signed["signature"]["key_id"] = "k1"
    assert verify(signed, both) is Verdict.BAD_SIGNATURE


def test_unsigned_records():
    record = make_record()
    assert record["signature"] is None
    assert verify(record, NEW) is Verdict.UNSIGNED
    del record["signature"]
    assert verify(record, NEW) is Verdict.UNSIGNED
    assert verify(record, None) is Verdict.UNSIGNED


def test_unknown_key_id():
    signed = sign(make_record(), OLD)
    assert verify(signed, NEW) is Verdict.UNKNOWN_KEY
    assert verify(signed, None) is Verdict.UNKNOWN_KEY
    signed["signature"]["key_id"] = "no such key"
    verdict, reason = check(signed, NEW)
    assert verdict is Verdict.UNKNOWN_KEY and "no such key" not in reason  # invalid ids are not echoed


@pytest.mark.parametrize(
    "signature",
    [
        "HMAC-SHA256:abc",
        ["HMAC-SHA256", "k2", "x"],
        {"alg": "HMAC-SHA1", "key_id": "k2", "value": "A" * 43},
        {"key_id": "k2", "value": "A" * 43},
        {"alg": "HMAC-SHA256", "value": "A" * 43},
        {"alg": "HMAC-SHA256", "key_id": 2, "value": "A" * 43},
        {"alg": "HMAC-SHA256", "key_id": "k2", "value": "A" * 42},
        {"alg": "HMAC-SHA256", "key_id": "k2", "value": "+" * 43},
        {"alg": "HMAC-SHA256", "key_id": "k2", "value": "é" * 43},
        {"alg": "HMAC-SHA256", "key_id": "k2"},
    ],
)
def test_malformed_signatures(signature):
    assert verify(make_record(signature=signature), NEW) is Verdict.MALFORMED


def test_malformed_records():
    assert verify([1, 2], NEW) is Verdict.MALFORMED
    assert verify("{}", NEW) is Verdict.MALFORMED
    signed = sign(make_record(), NEW)
    signed["latency_ms"] = math.nan  # json.loads accepts NaN; it has no canonical form
    assert check(signed, NEW).verdict is Verdict.MALFORMED
    signed["latency_ms"] = 2**60 + 1  # no double holds it
    assert check(signed, NEW).verdict is Verdict.MALFORMED
    signed["latency_ms"] = 2**60  # a double parsed back as an integer: a number, but not the signed one
    assert check(signed, NEW).verdict is Verdict.BAD_SIGNATURE


def test_padded_signature_values_are_accepted():
    signed = sign(make_record(), NEW)
    signed["signature"]["value"] += "="
    assert verify(signed, NEW) is Verdict.OK


def test_records_without_canonical_form_cannot_be_signed():
    with pytest.raises(SigningError, match=r"6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b.*2\*\*53"):
        sign(make_record(input_tokens=2**53), NEW)
    with pytest.raises(SigningError, match="NaN"):
        sign(make_record(latency_ms=math.inf), NEW)


# ---------------------------------------------------------------------------------------------------------
# keys and rotation
# ---------------------------------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_rotation_old_signatures_verify_with_the_new_keyring():
    old_record = sign(make_record(), OLD)
    rotated = Keyring("k2", SECRET_NEW, verify_only={"k1": SECRET_OLD})
    assert rotated.active_kid == "k2" and rotated.key_ids == ("k2", "k1")
    assert verify(old_record, rotated) is Verdict.OK
    assert sign(make_record(), rotated)["signature"]["key_id"] == "k2"
    assert verify(old_record, NEW) is Verdict.UNKNOWN_KEY  # once the old key is dropped
    assert verify(old_record, NEW.with_verify_keys(OLD)) is Verdict.OK


def test_keyring_from_spec_and_env():
    spec = f"k2:{_b64(SECRET_NEW)}, k1:{base64.urlsafe_b64encode(SECRET_OLD).decode().rstrip('=')},"
    ring = Keyring.from_spec(spec)
    assert ring.active_kid == "k2" and ring.key_ids == ("k2", "k1")
    assert verify(sign(make_record(), OLD), ring) is Verdict.OK
    assert sign(make_record(), ring)["signature"] == sign(make_record(), NEW)["signature"]
    from_env = Keyring.from_env({"TAILPIPE_SIGNING_KEYS": spec})
    assert from_env is not None and from_env.key_ids == ("k2", "k1")
    assert Keyring.from_env({}) is None
    assert Keyring.from_env({"TAILPIPE_SIGNING_KEYS": "  "}) is None


def test_keyring_from_api_key_is_documented_derivation():
    api_key = "tp_live_0123456789abcdef0123456789abcdef"
    ring = Keyring.from_api_key(api_key)
    assert ring.active_kid == hashlib.sha256(api_key.encode()).hexdigest()[:8]
    derived = hmac.new(api_key.encode(), b"tailpipe-record-signing-v1", hashlib.sha256).digest()
    assert sign(make_record(), ring) == sign(make_record(), Keyring(ring.active_kid, derived))
    assert Keyring.from_api_key(api_key).active_kid == ring.active_kid  # stable
    with pytest.raises(KeyringError, match="empty"):
        Keyring.from_api_key("")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no keys given"),
        ("k1", "expected KID:BASE64SECRET"),
        ("k1:", "expected KID:BASE64SECRET"),
        (f"k1:{_b64(b'short-secret-16b')}", "16 bytes; at least 32"),
        ("k1:not base64!!", "not valid base64"),
        (f"bad id:{_b64(SECRET_OLD)}", "entry 1: the key id is not valid"),
        (f"{_b64(SECRET_OLD)}:k1", "entry 1: the key id is not valid"),  # reversed: the secret is not echoed
        (f"k1:{_b64(SECRET_OLD)},k1:{_b64(SECRET_NEW)}", "'k1' appears twice"),
    ],
)
def test_keyring_spec_errors_are_clear_and_never_show_secrets(spec, message):
    with pytest.raises(KeyringError, match=message) as info:
        Keyring.from_spec(spec)
    text = str(info.value)
    assert "TAILPIPE_SIGNING_KEYS" in text
    for part in spec.split(","):
        for piece in part.split(":"):
            if len(piece) > 4 and piece not in ("k1", "bad id"):
                assert piece not in text


def test_keyring_code_errors():
    with pytest.raises(KeyringError, match="31 bytes; at least 32"):
        Keyring("k1", b"x" * 31)
    with pytest.raises(KeyringError, match="must be bytes"):
        Keyring("k1", "x" * 40)
    with pytest.raises(KeyringError, match="given twice"):
        Keyring("k1", SECRET_OLD, verify_only={"k1": SECRET_NEW})
    with pytest.raises(KeyringError, match="two different secrets"):
        NEW.with_verify_keys(Keyring("k2", SECRET_OLD))


def test_new_key_entry_makes_a_usable_key():
    entry = signing.new_key_entry("prod-2026")
    ring = Keyring.from_spec(entry)
    assert ring.active_kid == "prod-2026"
    assert verify(sign(make_record(), ring), ring) is Verdict.OK
    assert signing.new_key_entry() != signing.new_key_entry()


def test_secrets_never_appear_in_repr_str_errors_or_logs(caplog, capsys):
    caplog.set_level(logging.DEBUG)
    ring = Keyring.from_spec(f"k2:{_b64(SECRET_NEW)},k1:{_b64(SECRET_OLD)}")
    api_ring = Keyring.from_api_key("tp_live_canary_api_key_value")
    texts = [repr(ring), str(ring), f"{ring}", repr(api_ring), repr([ring]), repr({"keys": ring})]
    for bad in (make_record(input_tokens=2**60), make_record(latency_ms=math.nan)):
        with pytest.raises(SigningError) as info:
            sign(bad, ring)
        texts.append(str(info.value))
    record = sign(make_record(), ring)
    texts += [check(record, ring).reason, check(make_record(), ring).reason]
    captured = capsys.readouterr()
    texts += [caplog.text, captured.out, captured.err]
    assert repr(ring) == "Keyring(active='k2', verify_only=['k1'])"
    forbidden = [SECRET_NEW, SECRET_OLD, "tp_live_canary_api_key_value"]
    for secret in forbidden:
        if isinstance(secret, bytes):
            forms = [_b64(secret), base64.urlsafe_b64encode(secret).decode().rstrip("="), secret.hex(), repr(secret)]
        else:
            forms = [secret]
        for form in forms:
            for text in texts:
                assert form not in text
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(ring)
    assert copy.deepcopy(ring) is ring


# ---------------------------------------------------------------------------------------------------------
# canonical JSON: the fast path is exactly RFC 8785
# ---------------------------------------------------------------------------------------------------------

# RFC 8785 Appendix B: IEEE 754 bit patterns and their canonical text.
RFC8785_NUMBERS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "text"), RFC8785_NUMBERS)
def test_numbers_match_rfc8785_appendix_b(bits, text):
    value = struct.unpack(">d", bytes.fromhex(bits))[0]
    assert es_number(value) == text
    assert canonical_json(value) == text.encode()
    assert canonical_json({"v": [value]}) == rfc8785.dumps({"v": [value]})


def test_many_random_floats_match_rfc8785():
    rng = random.Random(8785)
    values = [struct.unpack(">d", rng.getrandbits(64).to_bytes(8, "big"))[0] for _ in range(4000)]
    values += [rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30) for _ in range(4000)]
    values += [float(rng.randint(-(2**60), 2**60)) for _ in range(500)]
    values += [1e21, 1e-7, 0.1 + 0.2, 1e-4, 9.999e-5, 1e16, 9999999999999998.0, 1e-6, 123.0, -0.0, 5e-324]
    values = [v for v in values if math.isfinite(v)]
    assert canonical_json(values) == rfc8785.dumps(values)
    for v in values[:2000]:
        assert es_number(v) == rfc8785.dumps(v).decode()


STRINGS = [
    "",
    "plain",
    "Zoë 北京 🚀",
    "\u2028\u2029\x85",
    "".join(map(chr, range(0x80))),
    "\ud7ff\ue000\uffff\U00010000\U0010ffff",
    '\\"/',
]
KEYS = ["a", "A", "b", "aa", "", "é", "€", "\ue000", "\uffff", "\U0001f680", "\U00010000", "1", "z" * 3]


def test_strings_and_key_order_match_rfc8785():
    value = {key: STRINGS for key in KEYS}
    value["nested"] = [{k: i for i, k in enumerate(KEYS)}, {k: k for k in KEYS[:5]}]
    assert canonical_json(value) == rfc8785.dumps(value)
    ascii_only = {key: STRINGS for key in KEYS if key.isascii()}  # takes the fast path
    assert canonical_json(ascii_only) == rfc8785.dumps(ascii_only)


def test_realistic_records_match_rfc8785():
    rng = random.Random(1)
    for _ in range(300):
        record = make_record(
            input_tokens=rng.randint(0, 2**40),
            energy_wh=rng.random() * 10 ** rng.randint(-12, 6),
            latency_ms=float(rng.randint(0, 10**6)),
            attributes={"team": rng.choice(["a", "ß", "🚀", "\x00"]), "k" + str(rng.random()): "v"},
        )
        record["factors"]["pue"]["value"] = rng.choice([1.0, 1.54, 1e-9, 2.5e20, 7e22])
        assert canonical_json(record) == rfc8785.dumps(record)
        signed = sign(record, OLD)
        assert verify(json.loads(json.dumps(signed)), OLD) is Verdict.OK


def test_records_take_the_fast_path(monkeypatch):
    """Real records (tiny, huge and integral floats, unicode values) never need the slow serializer."""

    def refuse(value):
        raise AssertionError("slow path used")

    monkeypatch.setattr(signing, "_reference", refuse)
    record = make_record()
    assert canonical_json(record) == rfc8785.dumps(record)
    assert verify(sign(record, OLD), OLD) is Verdict.OK


def test_values_the_fast_path_hands_to_the_reference_serializer():
    marker_text = signing._MARK + "0"  # a record string equal to the internal marker
    value = {"a": 1e-9, "b": marker_text, "t": (1, 2.0), "big": 1e300}
    assert canonical_json(value) == rfc8785.dumps(value)
    assert canonical_json({"\U0001f680": 1, "\uffff": 2}) == rfc8785.dumps({"\U0001f680": 1, "\uffff": 2})
    for bad in ({1: "int key"}, {"x": object()}, {"x": math.inf}, {"x": -(2**53)}, "\ud800", {"\ud800": 1}):
        with pytest.raises(ValueError):
            canonical_json(bad)
        with pytest.raises(ValueError):
            rfc8785.dumps(bad)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_value_matches_rfc8785(value):
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:  # lone surrogates
        with pytest.raises(ValueError):
            canonical_json(value)
        return
    assert canonical_json(value) == expected


# ---------------------------------------------------------------------------------------------------------
# signed lines: one canonical encoding is both the signed message and the line sinks write
# ---------------------------------------------------------------------------------------------------------


def _record_variants(n: int):
    rng = random.Random(7)
    for i in range(n):
        data = make_record(
            input_tokens=rng.choice([0, 7, 2**53 - 1]),
            energy_wh=rng.random() * 10 ** rng.randint(-12, 6),
            latency_ms=float(rng.randint(0, 10**6)),
            ttft_ms=rng.choice([None, 0, 3, 0.25]),
            attributes={rng.choice(["team", "ß", "🚀", "\uffff", "\U0001f680x"]): rng.choice(["a", "\u2028", "é"])},
            flags=rng.choice([[], ["a", "\u0085"]]),
        )
        data["factors"]["pue"]["value"] = rng.choice([1.0, 1.54, 1e-9, 2.5e20, 7e22, 3])
        if i % 5 == 0:
            data["x_newer_field"] = {"n": 1.0, "s": "v"}  # an unknown field: kept and signed
        yield Record.from_dict(data)


def test_signed_lines_verify_and_match_rfc8785():
    for record in _record_variants(300):
        line = signing.signed_line(record, OLD)
        assert b"\n" not in line and "\u2028" not in line.decode() and "\x85" not in line.decode()
        parsed = json.loads(line)
        assert check(parsed, OLD).verdict is Verdict.OK
        body = signing._body(record.to_dict())
        assert body == rfc8785.dumps({k: v for k, v in record.to_dict().items() if v is not None})
        # the line is the signed body (a double from 2**53 up to 1e21 is written in plain digits and
        # parses back as an integer, the same number)
        assert signing._body(parsed, as_read=True) == body
        assert set(parsed) == set(record.to_dict()) | {"signature"}  # null fields too, after the signature
        assert line.startswith(body[:-1].replace("\u2028".encode(), b"\\u2028").replace("\x85".encode(), b"\\u0085"))
        assert Record.from_dict(parsed).to_dict() == {**record.to_dict(), "signature": parsed["signature"]}


def test_the_record_fast_path_equals_the_generic_one():
    for record in _record_variants(300):
        assert signing._record_body(record) == signing._body(record.to_dict())


def test_a_signed_line_survives_edits_only_when_nothing_changes():
    record = next(_record_variants(1))
    parsed = json.loads(signing.signed_line(record, OLD))
    parsed["output_tokens"] += 1
    assert check(parsed, OLD).verdict is Verdict.BAD_SIGNATURE


def test_records_without_canonical_form_cannot_be_signed_as_lines():
    record = next(_record_variants(1))
    record.attributes = {"team": "\ud800"}  # a lone surrogate
    with pytest.raises(SigningError, match="cannot be signed"):
        signing.signed_line(record, OLD)
    record = next(_record_variants(1))
    record.input_tokens = 2**53
    with pytest.raises(SigningError, match="2\\*\\*53"):
        signing.signed_line(record, OLD)


def test_record_signer_is_both_a_line_and_a_dict_signer():
    signer = signing.RecordSigner(OLD)
    record = next(_record_variants(1))
    assert verify(json.loads(signer.line(record)), OLD) is Verdict.OK
    assert verify(signer(record.to_dict()), OLD) is Verdict.OK
    assert "secret" not in repr(signer).lower() and "k1" in repr(signer)
