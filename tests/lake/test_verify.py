"""`verify_path` over files, day partitions and whole lakes, with every kind of damage mixed in."""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib
from datetime import date
from pathlib import Path

import pytest

from tailpipe_ai.exporter.signing import Keyring, Verdict, sign
from tailpipe_ai.lake import verify as verify_mod
from tailpipe_ai.lake.layout import compacted_name, raw_partition
from tailpipe_ai.lake.verify import Problem, record_files, verify_path
from tailpipe_ai.semconv import Record

KEYS = Keyring("k2", bytes(range(100, 132)), verify_only={"k1": bytes(range(32))})
STRANGER = Keyring("zz", bytes(range(50, 82)))
CANARY = "CANARY-do-not-print-me"
OK, UNSIGNED, UNKNOWN, BAD, MALFORMED = (
    Verdict.OK,
    Verdict.UNSIGNED,
    Verdict.UNKNOWN_KEY,
    Verdict.BAD_SIGNATURE,
    Verdict.MALFORMED,
)
DAY = date(2026, 11, 22)


def record(n: int, **overrides) -> dict:
    data = Record(
        record_id=f"00000000-0000-4000-8000-{n:012d}",
        timestamp="2026-11-22T12:00:00.000000Z",
        integration="sdk",
        provider="openai",
        request_model="gpt-4o",
        input_tokens=100 + n,
        output_tokens=10,
        token_accuracy="exact",
        energy_wh=0.25,
        attributes={"team": "search", "note": CANARY},
        factors={"pue": {"value": 1.54}, "shape": {"per_input_token": 8.1e-07}},
    ).to_dict()
    data.update(overrides)
    return data


def good(n: int) -> bytes:
    return json.dumps(sign(record(n), KEYS)).encode()


def tampered(n: int) -> bytes:
    signed = sign(record(n), KEYS)
    signed["input_tokens"] += 1
    return json.dumps(signed).encode()


def unsigned(n: int) -> bytes:
    return json.dumps(record(n)).encode()


def unknown(n: int) -> bytes:
    return json.dumps(sign(record(n), STRANGER)).encode()


def lines(*items: bytes) -> bytes:
    return b"".join(item + b"\n" for item in items)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """A lake with two raw days, a compacted file and every kind of damage in day 22."""
    root = tmp_path / "lake"
    day = root / raw_partition(DAY)
    write(day / "a-good.gz", gzip.compress(lines(*(good(i) for i in range(4)))))
    mixed = lines(
        good(10),  # 1 ok
        tampered(11),  # 2 bad_signature
        unsigned(12),  # 3 unsigned
        unknown(13),  # 4 unknown_key
        b'{"record_id": "x", "note": "' + CANARY.encode() + b'", ',  # 5 not JSON
        b"   ",  # 6 blank: not counted
        b'["' + CANARY.encode() + b'"]',  # 7 not an object
        good(14),  # 8 ok
        b'{"note": "' + CANARY.encode() + b'", "note": "twice"}',  # 9 duplicated key
        b"\xff\xfe" + CANARY.encode(),  # 10 not UTF-8
    )
    write(day / "b-mixed.gz", gzip.compress(mixed))
    members = gzip.compress(lines(good(20), good(21))) + b"\0\0\0" + gzip.compress(lines(good(22), good(23)))
    write(day / "c-members.gz", members)
    write(day / "d-corrupt.gz", b"this is not gzip at all\n" + CANARY.encode())
    cut_member = gzip.compress(lines(good(40), good(41)))[:15]
    write(day / "e-truncated.gz", gzip.compress(lines(good(30), good(31), good(32))) + cut_member)
    write(day / "f-no-trailer.gz", gzip.compress(lines(good(50), good(51)))[:-8])
    whole = gzip.compress(lines(good(60), good(61)))
    write(day / "g-bad-crc.gz", whole[:-8] + bytes([whole[-8] ^ 0xFF]) + whole[-7:])
    write(day / "h-cut-line.jsonl", lines(good(70), good(71)) + good(72)[:90])
    write(day / ".tmp-writing.gz", b"half a file")  # skipped: temporary
    write(day / "_manifest.json", b"{}")  # skipped: bookkeeping
    write(day / "notes.txt", b"not records")  # skipped: not a record file
    write(root / raw_partition(date(2026, 11, 23)) / "x.gz", gzip.compress(lines(good(80), good(81), tampered(82))))
    write(root / compacted_name(DAY), gzip.compress(lines(good(90), good(91), good(92))))
    write(root / "ai-telemetry-errors/processing-failed/year=2026/month=11/day=22/err.gz", b"garbage")
    return root


DAY22_FILES = {
    "a-good.gz": {OK: 4},
    "b-mixed.gz": {OK: 2, BAD: 1, UNSIGNED: 1, UNKNOWN: 1, MALFORMED: 4},
    "c-members.gz": {OK: 4},
    "d-corrupt.gz": {MALFORMED: 1},
    "e-truncated.gz": {OK: 3, MALFORMED: 1},
    "f-no-trailer.gz": {OK: 2, MALFORMED: 1},
    "g-bad-crc.gz": {OK: 2, MALFORMED: 1},
    "h-cut-line.jsonl": {OK: 2, MALFORMED: 1},
}


def full(counts: dict) -> dict:
    return {v: counts.get(v, 0) for v in Verdict}


def test_a_day_partition_gives_exact_counts_per_verdict_and_per_file(lake):
    day = lake / raw_partition(DAY)
    report = verify_path(day, KEYS)
    assert report.counts == full({OK: 19, BAD: 1, UNSIGNED: 1, UNKNOWN: 1, MALFORMED: 9})
    assert report.files_checked == 8
    assert report.files_with_problems == 6
    expected = {str(day / name): full(c) for name, c in DAY22_FILES.items() if set(c) != {OK}}
    assert report.files == expected
    assert not report.ok
    assert report.exit_code() == 1


def test_problems_are_located_by_file_and_line(lake):
    day = lake / raw_partition(DAY)
    report = verify_path(day, KEYS, max_problems=100)
    found = [(Path(p.file).name, p.line, p.verdict, p.record_id) for p in report.problems]
    assert found == [
        ("b-mixed.gz", 2, BAD, "00000000-0000-4000-8000-000000000011"),
        ("b-mixed.gz", 3, UNSIGNED, "00000000-0000-4000-8000-000000000012"),
        ("b-mixed.gz", 4, UNKNOWN, "00000000-0000-4000-8000-000000000013"),
        ("b-mixed.gz", 5, MALFORMED, None),
        ("b-mixed.gz", 7, MALFORMED, None),
        ("b-mixed.gz", 9, MALFORMED, None),
        ("b-mixed.gz", 10, MALFORMED, None),
        ("d-corrupt.gz", 1, MALFORMED, None),
        ("e-truncated.gz", 4, MALFORMED, None),
        ("f-no-trailer.gz", 3, MALFORMED, None),
        ("g-bad-crc.gz", 3, MALFORMED, None),
        ("h-cut-line.jsonl", 3, MALFORMED, None),
    ]
    reasons = {(Path(p.file).name, p.line): p.reason for p in report.problems}
    assert "not valid JSON" in reasons["b-mixed.gz", 5]
    assert "not a JSON object" in reasons["b-mixed.gz", 7]
    assert "duplicated key" in reasons["b-mixed.gz", 9]
    assert "not valid UTF-8" in reasons["b-mixed.gz", 10]
    assert reasons["d-corrupt.gz", 1] == "not gzip data (the name ends in .gz)"
    assert "ends early" in reasons["e-truncated.gz", 4]
    assert "ends early" in reasons["f-no-trailer.gz", 3]
    assert "incorrect data check" in reasons["g-bad-crc.gz", 3]
    assert report.problems_total == 12


def test_whole_lake_skips_errors_prefix_temporary_and_other_files(lake):
    report = verify_path(lake, KEYS)
    assert report.counts == full({OK: 24, BAD: 2, UNSIGNED: 1, UNKNOWN: 1, MALFORMED: 9})
    assert report.files_checked == 10
    names = [p.relative_to(lake).as_posix() for p in record_files(lake)]
    assert names[:2] == [
        "ai-telemetry/telemetry-20261122.jsonl.gz",
        "ai-telemetry-raw/year=2026/month=11/day=22/a-good.gz",
    ]
    assert names[-1] == "ai-telemetry-raw/year=2026/month=11/day=23/x.gz"
    assert not any("errors" in n or "/." in n or "/_" in n or n.endswith(".txt") for n in names)


def test_a_single_file_plain_or_gzip(lake):
    day = lake / raw_partition(DAY)
    report = verify_path(day / "a-good.gz", KEYS)
    assert report.counts == full({OK: 4}) and report.ok and report.exit_code() == 0
    assert report.files == {} and report.files_checked == 1
    report = verify_path(day / "h-cut-line.jsonl", KEYS)
    assert report.counts == full({OK: 2, MALFORMED: 1})
    # an explicitly named file is read whatever its name
    report = verify_path(day / "notes.txt", KEYS)
    assert report.counts == full({MALFORMED: 1})


def test_without_the_right_keys(lake):
    day = lake / raw_partition(DAY)
    report = verify_path(day / "c-members.gz", None)
    assert report.counts == full({UNKNOWN: 4})
    report = verify_path(day / "c-members.gz", Keyring("k1", bytes(range(32))))  # the old key only
    assert report.counts == full({UNKNOWN: 4})


def test_unsigned_can_be_tolerated_in_the_exit_code(tmp_path):
    path = write(tmp_path / "u.jsonl", lines(good(1), unsigned(2)))
    report = verify_path(path, KEYS)
    assert report.exit_code() == 1
    assert report.exit_code(allow_unsigned=True) == 0


def test_reports_never_contain_record_contents(lake):
    report = verify_path(lake, KEYS, max_problems=100)
    text = report.summary() + json.dumps(report.to_dict()) + "".join(map(str, report.problems))
    assert CANARY not in text
    assert "00000000-0000-4000-8000-000000000011" in text  # record ids are shown


def test_summary_and_json_form(lake):
    report = verify_path(lake, KEYS, max_problems=3, max_files=2)
    summary = report.summary()
    assert "10 file(s) checked: 24 ok, 1 unsigned, 1 unknown_key, 2 bad_signature, 9 malformed" in summary
    assert "... and 10 more problem(s)" in summary
    assert "... and 5 more file(s)" in summary
    assert len(report.problems) == 3 and report.problems_total == 13
    assert len(report.files) == 2 and report.files_with_problems == 7
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["counts"] == {"ok": 24, "unsigned": 1, "unknown_key": 1, "bad_signature": 2, "malformed": 9}
    assert data["problems"][0]["line"] == 2 and data["problems"][0]["verdict"] == "bad_signature"
    assert str(report.problems[0]).endswith(
        "b-mixed.gz:2: bad_signature record_id=00000000-0000-4000-8000-000000000011: "
        "signature does not match the record (key 'k2')"
    )


def test_progress_callback_sees_every_file(lake):
    seen = []
    verify_path(lake, KEYS, on_file=seen.append)
    assert seen == list(record_files(lake))


def test_missing_path_is_an_error_with_advice(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or directory; give a record file"):
        verify_path(tmp_path / "nope", KEYS)


def test_unreadable_file_counts_once_and_reading_goes_on(tmp_path):
    write(tmp_path / "a.gz", gzip.compress(lines(good(1))))
    (tmp_path / "b.gz").symlink_to(tmp_path / "missing-target")
    write(tmp_path / "c.jsonl", lines(good(2)))
    report = verify_path(tmp_path, KEYS)
    assert report.counts == full({OK: 2, MALFORMED: 1})
    [problem] = report.problems
    assert problem.line is None and "cannot read the file (FileNotFoundError" in problem.reason


def test_empty_files_hold_no_records(tmp_path):
    write(tmp_path / "empty.gz", b"")
    write(tmp_path / "empty.jsonl", b"")
    report = verify_path(tmp_path, KEYS)
    assert report.counts == full({}) and report.files_checked == 2 and report.ok


def test_gzip_cut_inside_the_data_keeps_every_complete_line(tmp_path):
    data = gzip.compress(lines(*(good(i) for i in range(200))), compresslevel=1)
    cut = data[: len(data) // 2]
    complete = zlib.decompressobj(wbits=31).decompress(cut).count(b"\n")
    assert 0 < complete < 200
    report = verify_path(write(tmp_path / "cut.gz", cut), KEYS)
    assert report.counts == full({OK: complete, MALFORMED: 1})
    assert report.problems[0].line == complete + 1


def test_garbage_after_gzip_data(tmp_path):
    path = write(tmp_path / "tail.gz", gzip.compress(lines(good(1))) + b"garbage")
    report = verify_path(path, KEYS)
    assert report.counts == full({OK: 1, MALFORMED: 1})
    assert report.problems[0].reason == "bytes after the gzip data are not gzip"


def test_tiny_read_and_decompress_steps_give_the_same_answer(lake, monkeypatch):
    """Lines and gzip members split across every possible boundary."""
    before = verify_path(lake, KEYS, max_problems=100)
    monkeypatch.setattr(verify_mod, "_READ", 7)
    monkeypatch.setattr(verify_mod, "_CHUNK", 5)
    after = verify_path(lake, KEYS, max_problems=100)
    assert after.counts == before.counts
    assert [(p.file, p.line, p.verdict) for p in after.problems] == [
        (p.file, p.line, p.verdict) for p in before.problems
    ]


def test_overlong_lines_are_skipped_and_reading_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr(verify_mod, "MAX_LINE_BYTES", 2000)
    monkeypatch.setattr(verify_mod, "_READ", 1000)
    long_line = b'{"pad": "' + b"x" * 5000 + b'"}'
    path = write(tmp_path / "long.jsonl", lines(good(1), long_line, good(2), long_line[:2500]) + long_line)
    report = verify_path(path, KEYS)
    assert report.counts == full({OK: 2, MALFORMED: 3})
    assert [p.line for p in report.problems] == [2, 4, 5]
    assert all("longer than 2000 bytes" in p.reason for p in report.problems)


def test_memory_stays_bounded_on_a_large_file(tmp_path):
    """~24 MB of records decompressed and checked while holding a few MB at most."""
    line = json.dumps({"record_id": "r", "pad": "y" * 4000}).encode()
    raw = lines(*([line] * 6_000))
    path = write(tmp_path / "big.gz", gzip.compress(raw, compresslevel=1))
    tracemalloc.start()
    try:
        report = verify_path(path, KEYS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.counts == full({UNSIGNED: 6_000})
    assert len(raw) > 20_000_000
    assert peak < 8_000_000, peak


def test_problem_str_without_line():
    problem = Problem("f.gz", None, MALFORMED, "cannot read the file")
    assert str(problem) == "f.gz: malformed: cannot read the file"


def test_deeply_nested_lines_are_malformed_not_fatal(tmp_path):
    path = write(tmp_path / "deep.jsonl", lines(b"[" * 200_000 + b"]" * 200_000, b'{"a":' * 50_000, good(1)))
    report = verify_path(path, KEYS)
    assert report.counts == full({OK: 1, MALFORMED: 2})
