"""The lake reader: every consumer reads through it, and bad input is skipped, counted and explained."""

from __future__ import annotations

import gzip
import json
import zlib
from datetime import date

import pytest

from tailpipe_ai.lake import reader
from tailpipe_ai.lake.layout import raw_partition
from tailpipe_ai.lake.reader import ReadStats, iter_lines, iter_raw_files, iter_records
from tailpipe_ai.semconv import Record

SECRET = "canary-content-do-not-log"


def rec(i: int) -> dict:
    return Record(integration="sdk", provider="openai", token_accuracy="exact", input_tokens=i).to_dict()


def lines(*items: dict | bytes) -> bytes:
    return b"".join((x if isinstance(x, bytes) else json.dumps(x).encode()) + b"\n" for x in items)


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def test_iter_raw_files_sorted_skips_hidden_and_missing(tmp_path):
    d1, d2 = date(2026, 3, 1), date(2026, 3, 2)
    for day, names in ((d1, ["b.gz", "a.gz", ".x.gz.tmp", "_SUCCESS"]), (d2, ["c.gz"])):
        folder = tmp_path / raw_partition(day)
        folder.mkdir(parents=True)
        for n in names:
            (folder / n).write_bytes(b"")
    (tmp_path / raw_partition(d1) / "sub").mkdir()
    got = [p.relative_to(tmp_path).as_posix() for p in iter_raw_files(tmp_path, [d2, d1, date(2026, 3, 3)])]
    assert got == [raw_partition(d1) + "a.gz", raw_partition(d1) + "b.gz", raw_partition(d2) + "c.gz"]
    with pytest.raises(ValueError, match="local lake folder"):
        list(iter_raw_files("s3://bucket/lake", [d1]))


@pytest.mark.parametrize("chunk", [1, 5, 256 * 1024])
def test_reads_gzip_multi_member_and_plain(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(reader, "_CHUNK", chunk)
    (tmp_path / "a.gz").write_bytes(gz(lines(rec(1), rec(2))) + gz(lines(rec(3))) + b"\x00" * 8)
    (tmp_path / "b.jsonl").write_bytes(lines(rec(4)) + b"\n  \n" + json.dumps(rec(5)).encode())  # no final \n
    (tmp_path / "c").write_bytes(gz(lines(rec(6))))  # gzip detected by content, not name
    stats = ReadStats()
    got = list(iter_records(sorted(tmp_path.iterdir()), stats=stats, validate=True))
    assert [r["input_tokens"] for r in got] == [1, 2, 3, 4, 5, 6]
    assert (stats.files, stats.lines, stats.records, stats.total_skipped) == (3, 6, 6, 0)
    assert stats.summary() == "read 3 files, 6 lines, 6 records"
    assert [r["input_tokens"] for r in iter_records(tmp_path / "c")] == [6]  # a single path works too


@pytest.mark.parametrize("chunk", [7, 256 * 1024])
def test_bad_input_is_skipped_counted_and_the_rest_is_read(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(reader, "_CHUNK", chunk)  # tiny chunks split members, headers and lines anywhere
    good = gz(lines(rec(1), rec(2)))
    bad_member = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 20  # invalid deflate block type
    (tmp_path / "1-corrupt.gz").write_bytes(good + bad_member)
    cut = gz(lines(*[rec(i) for i in range(100)]))
    full_lines = zlib.decompressobj(wbits=31).decompress(cut[: len(cut) // 2]).count(b"\n")
    (tmp_path / "2-truncated.gz").write_bytes(cut[: len(cut) // 2])
    (tmp_path / "3-notgzip.gz").write_bytes(b"plain text\n")
    bad_schema = dict(rec(9), input_tokens=-5, provider=SECRET)
    body = lines(rec(3), f'{{"x": "{SECRET}"'.encode(), b"[1, 2]", b"NaN", bad_schema, b"\xff\xfe{}", rec(4))
    (tmp_path / "4-mixed.jsonl").write_bytes(body + b'{"schema": "tailp')  # cut last line
    paths = [*sorted(tmp_path.iterdir()), tmp_path / "5-missing.gz"]

    stats = ReadStats(max_examples=50)
    got = list(iter_records(paths, stats=stats, validate=True))
    assert [r["input_tokens"] for r in got] == [1, 2, *range(full_lines), 3, 4]
    assert dict(stats.skipped) == {
        "corrupt_gzip": 2,
        "truncated": 2,
        "not_json": 3,
        "schema": 2,
        "unreadable": 1,
    }
    assert stats.files == 5
    assert stats.records == len(got)
    assert stats.lines == 2 + full_lines + 8  # corrupt/unreadable/truncated gzip cut no counted lines
    examples = "\n".join(stats.examples)
    assert f"{tmp_path / '1-corrupt.gz'}:3: corrupt_gzip" in examples
    assert f"{tmp_path / '2-truncated.gz'}:{full_lines + 1}: truncated" in examples
    assert f"{tmp_path / '4-mixed.jsonl'}:2: not_json (Expecting" in examples
    assert f"{tmp_path / '4-mixed.jsonl'}:3: schema (a JSON list, not an object)" in examples
    assert f"{tmp_path / '4-mixed.jsonl'}:5: schema (field 'input_tokens')" in examples
    assert f"{tmp_path / '4-mixed.jsonl'}:8: truncated" in examples
    assert f"{tmp_path / '5-missing.gz'}:1: unreadable" in examples
    assert SECRET not in examples and SECRET not in stats.summary()
    assert "skipped 10 (corrupt_gzip 2, not_json 3, schema 2, truncated 2, unreadable 1)" in stats.summary()

    # Without validation a schema-failing object is still a record; only non-objects are refused.
    loose = ReadStats()
    assert len(list(iter_records(tmp_path / "4-mixed.jsonl", stats=loose))) == 3
    assert loose.skipped["schema"] == 1


def test_examples_are_capped(tmp_path):
    (tmp_path / "x.jsonl").write_bytes(b"nope\n" * 30)
    stats = ReadStats(max_examples=3)
    assert list(iter_records(tmp_path / "x.jsonl", stats=stats)) == []
    assert stats.skipped["not_json"] == 30 and len(stats.examples) == 3


def test_iter_lines_marks_an_unterminated_last_line(tmp_path):
    (tmp_path / "x.jsonl").write_bytes(b"a\n\nb")
    assert list(iter_lines(tmp_path / "x.jsonl", ReadStats())) == [(1, b"a", True), (3, b"b", False)]


def test_large_gzip_streams_in_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(reader, "_CHUNK", 4096)
    one = json.dumps(rec(0)).encode() + b"\n"
    (tmp_path / "big.gz").write_bytes(gz(one * 20_000))
    stats = ReadStats()
    assert sum(1 for _ in iter_records(tmp_path / "big.gz", stats=stats)) == 20_000
    assert stats.total_skipped == 0


class _ReadOnly:
    """A stream with only read(n), like an S3 object body."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def read(self, n: int = -1) -> bytes:
        n = len(self.data) - self.at if n < 0 else n
        out = self.data[self.at : self.at + n]
        self.at += len(out)
        return out


@pytest.mark.parametrize("read_size", [1, 3, 8, 9, 64 * 1024])
def test_lines_is_the_same_whatever_the_read_and_inflate_steps(read_size):
    body = b"".join(json.dumps(rec(i)).encode() + b"\n" for i in range(50))
    data = gz(body[:1000]) + b"\x00\x00" + gz(body[1000:])
    lines = reader.Lines(_ReadOnly(data), "x.gz", read_size=read_size, inflate_step=7)
    got = list(lines)
    assert [line for _, line, _ in got] == body.splitlines()
    assert [n for n, _, _ in got] == list(range(1, 51)) and lines.damage is None


def test_lines_yields_everything_before_a_bad_checksum_then_reports_it():
    whole = gz(b"a\nb\n")
    broken = whole[:-8] + bytes([whole[-8] ^ 0xFF]) + whole[-7:]
    lines = reader.Lines(_ReadOnly(broken), "x.gz")
    assert [line for _, line, _ in lines] == [b"a", b"b"]
    assert lines.damage.reason == reader.CORRUPT_GZIP and lines.damage.line == 3 and not lines.damage.cut


def test_lines_skips_overlong_lines_without_holding_them():
    data = b"short\n" + b"x" * 100 + b"\nafter\n" + b"y" * 100
    lines = reader.Lines(_ReadOnly(data), "x.jsonl", max_line=50, read_size=16)
    assert list(lines) == [(1, b"short", True), (2, None, True), (3, b"after", True), (4, None, False)]
    stats = ReadStats()
    assert list(reader.iter_records([], stats=stats)) == []


def test_iter_lines_counts_overlong_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(reader, "MAX_LINE", 30)
    (tmp_path / "x.jsonl").write_bytes(b'{"a": 1}\n' + b'{"pad": "' + b"z" * 40 + b'"}\n{"b": 2}\n')
    stats = ReadStats()
    assert [line for _, line, _ in iter_lines(tmp_path / "x.jsonl", stats)] == [b'{"a": 1}', b'{"b": 2}']
    assert stats.skipped == {"too_long": 1} and "x.jsonl:2: too_long" in stats.examples[0]
