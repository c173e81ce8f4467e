"""Check the signatures of every record in a file, a day partition or a whole lake (``tailpipe verify``).

Why: the lake is plain files anyone with access can edit. This walks them and says, per file and in
total, how many records are intact (``ok``), ``unsigned``, signed with an ``unknown_key``, tampered with
(``bad_signature``) or unreadable (``malformed``), with the first few problems located by file:line.

Reading is streaming and bounded: files are decompressed in 1 MiB steps, one line is held at a time
(lines over `MAX_LINE_BYTES` are skipped as malformed), and only counts, the first ``max_problems`` problems
and the first ``max_files`` files with problems are kept, so a lake of any size verifies in constant memory.

Damage never stops the run. Counting rules, so totals are exact and predictable:

* every non-blank line is one record with exactly one verdict (a line that is not UTF-8, not JSON, not a
  JSON object, has a duplicated key, or is cut short is ``malformed``);
* a damaged gzip stream (not gzip, corrupt data, a wrong checksum, or cut off before its end) adds one
  ``malformed`` entry at the line where the damage was hit, and reading goes on with the next file. The
  lines decompressed before it are counted normally; a partial line cut by the damage, and whatever zlib
  was decoding in the step that failed (corrupt deflate data), are part of that one entry. A file whose
  only fault is its checksum or a missing end keeps all its complete lines;
* a file that cannot be opened or read adds one ``malformed`` entry; an empty file holds no records.

Messages never contain record contents: a problem shows the file, line, verdict, the record_id (only if
it looks like an id) and a reason.

Directory walks take files ending in .gz, .jsonl, .ndjson or .json, in sorted order, and skip names
starting with "." or "_" (temporary files, manifests) and the Firehose error prefix
(``ai-telemetry-errors``, whose objects are failed deliveries, not records). A whole lake holds each
record twice once a day is compacted (raw partition + compacted file), and both copies are counted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tailpipe_ai.exporter.signing import Keyring, Verdict, check, safe_record_id
from tailpipe_ai.lake.layout import ERRORS_PREFIX
from tailpipe_ai.lake.reader import Lines
from tailpipe_ai.lake.storage import S3Lake, is_s3

MAX_LINE_BYTES = 4 * 1024 * 1024
"""Longest line read as a record; Firehose caps records at 1,000 KiB, so longer lines are damage."""

RECORD_SUFFIXES = (".gz", ".jsonl", ".ndjson", ".json")
_CHUNK = 1024 * 1024  # most decompressed bytes per step
_READ = 256 * 1024  # bytes read from a file per step
_PROBLEMS = (Verdict.UNSIGNED, Verdict.UNKNOWN_KEY, Verdict.BAD_SIGNATURE, Verdict.MALFORMED)


@dataclass(frozen=True, slots=True)
class Problem:
    """One record (or one piece of damage) that did not verify. ``line`` is 1-based, None for a whole file."""

    file: str
    line: int | None
    verdict: Verdict
    reason: str
    record_id: str | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        rid = f" record_id={self.record_id}" if self.record_id else ""
        return f"{where}: {self.verdict.value}{rid}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "verdict": self.verdict.value,
            "record_id": self.record_id,
            "reason": self.reason,
        }


def _zero_counts() -> dict[Verdict, int]:
    return dict.fromkeys(Verdict, 0)


@dataclass(slots=True)
class VerifyReport:
    """Totals per verdict, per-file totals for the files with problems, and the first problems found.

    ``files`` holds only files with at least one problem (the first ``max_files`` of them, in reading
    order), so a lake of many clean files costs no memory; ``files_checked`` counts every file read.
    """

    path: str
    max_problems: int = 20
    max_files: int = 1000
    counts: dict[Verdict, int] = field(default_factory=_zero_counts)
    files_checked: int = 0
    files_with_problems: int = 0
    files: dict[str, dict[Verdict, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    problems_total: int = 0

    @property
    def entries(self) -> int:
        """Records plus damage entries counted (see the module docstring)."""
        return sum(self.counts.values())

    @property
    def ok(self) -> bool:
        """True when every entry verified."""
        return all(n == 0 for v, n in self.counts.items() if v is not Verdict.OK)

    def exit_code(self, *, allow_unsigned: bool = False) -> int:
        """0 when nothing is wrong (unsigned records tolerated if asked), else 1."""
        tolerated = {Verdict.OK, Verdict.UNSIGNED} if allow_unsigned else {Verdict.OK}
        return 0 if all(n == 0 for v, n in self.counts.items() if v not in tolerated) else 1

    def _note(self, problem: Problem) -> None:
        self.problems_total += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(problem)

    def _file_done(self, name: str, counts: dict[Verdict, int]) -> None:
        self.files_checked += 1
        for verdict, n in counts.items():
            self.counts[verdict] += n
        if any(n for v, n in counts.items() if v is not Verdict.OK):
            self.files_with_problems += 1
            if len(self.files) < self.max_files:
                self.files[name] = counts

    def summary(self) -> str:
        """Plain-text report: totals, files with problems, the first problems (never record contents)."""
        totals = ", ".join(f"{self.counts[v]} {v.value}" for v in Verdict)
        lines = [f"{self.path}: {self.files_checked} file(s) checked: {totals}"]
        if self.files_with_problems:
            lines.append(f"{self.files_with_problems} file(s) with problems:")
            for name, counts in self.files.items():
                shown = ", ".join(f"{n} {v.value}" for v, n in counts.items() if n)
                lines.append(f"  {name}: {shown}")
            if self.files_with_problems > len(self.files):
                lines.append(f"  ... and {self.files_with_problems - len(self.files)} more file(s)")
        if self.problems:
            lines.append("first problems:")
            lines.extend(f"  {p}" for p in self.problems)
            if self.problems_total > len(self.problems):
                lines.append(f"  ... and {self.problems_total - len(self.problems)} more problem(s)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for ``--format json``)."""
        return {
            "path": self.path,
            "ok": self.ok,
            "counts": {v.value: n for v, n in self.counts.items()},
            "files_checked": self.files_checked,
            "files_with_problems": self.files_with_problems,
            "files": {name: {v.value: n for v, n in c.items()} for name, c in self.files.items()},
            "problems": [p.to_dict() for p in self.problems],
            "problems_total": self.problems_total,
        }


# ---------------------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------------------


def record_files(path: str | os.PathLike[str]) -> Iterator[Path]:
    """The record files under ``path`` (itself if it is a file), in sorted order; see the module docstring."""
    root = Path(path)
    if root.is_file():
        yield root
        return
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such file or directory; give a record file, a day partition or a lake")
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")) and d != ERRORS_PREFIX)
        for name in sorted(files):
            if not name.startswith((".", "_")) and name.endswith(RECORD_SUFFIXES):
                yield Path(current, name)


def _parse(line: bytes) -> tuple[Any, str | None]:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None, "line is not valid UTF-8"
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant), None
    except json.JSONDecodeError as exc:
        return None, f"line is not valid JSON ({exc.msg} at column {exc.colno})"
    except ValueError as exc:
        return None, f"line is not valid JSON ({exc})"
    except RecursionError:
        return None, "line is nested too deeply to read"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("an object has a duplicated key, which readers may resolve differently")
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _verify_file(name: str, opener: Callable[[], Any], keyring: Keyring | None, report: VerifyReport) -> None:
    counts = _zero_counts()

    def problem(line: int | None, verdict: Verdict, reason: str, record_id: str | None = None) -> None:
        counts[verdict] += 1
        report._note(Problem(name, line, verdict, reason, record_id))

    try:
        fh = opener()
    except OSError as exc:
        problem(None, Verdict.MALFORMED, f"cannot read the file ({type(exc).__name__}: {exc.strerror or exc})")
        report._file_done(name, counts)
        return
    with fh:
        lines = Lines(fh, name, max_line=MAX_LINE_BYTES, read_size=_READ, inflate_step=_CHUNK)
        for number, line, _complete in lines:
            if line is None:
                problem(number, Verdict.MALFORMED, f"line longer than {MAX_LINE_BYTES} bytes")
                continue
            record, error = _parse(line)
            if error is not None:
                problem(number, Verdict.MALFORMED, error)
                continue
            verdict, reason = check(record, keyring)
            if verdict is Verdict.OK:
                counts[verdict] += 1
            else:
                problem(number, verdict, reason, safe_record_id(record))
    if lines.damage is not None:
        problem(lines.damage.line, Verdict.MALFORMED, lines.damage.detail)
    report._file_done(name, counts)


def verify_path(
    path: str | os.PathLike[str],
    keyring: Keyring | None,
    *,
    max_problems: int = 20,
    max_files: int = 1000,
    on_file: Callable[[Path | str], None] | None = None,
) -> VerifyReport:
    """Verify every record under ``path`` (a .gz or plain JSONL file, a day partition, or a whole lake).

    ``path`` may be an ``s3://bucket/prefix`` (a lake, a partition or one object; see ``lake.storage``).

    ``keyring`` None still reads everything: signed records then count as ``unknown_key``.
    ``max_problems`` / ``max_files`` bound how many problems and files with problems the report keeps.
    ``on_file`` is called before each file (for a progress display). Raises FileNotFoundError only when
    ``path`` itself does not exist (LakeError when an S3 location cannot be reached); everything else is
    counted in the report.
    """
    report = VerifyReport(path=str(path), max_problems=max_problems, max_files=max_files)
    if is_s3(path):
        storage, keys = _s3_record_keys(os.fspath(path))
        for key in keys:
            url = storage.url(key)
            if on_file is not None:
                on_file(url)
            _verify_file(url, lambda key=key: storage.open(key), keyring, report)
        return report
    for file in record_files(path):
        if on_file is not None:
            on_file(file)
        _verify_file(str(file), lambda file=file: open(file, "rb"), keyring, report)  # noqa: SIM115
    return report


def _s3_record_keys(url: str) -> tuple[S3Lake, list[str]]:
    """The record objects under an s3:// prefix (the same rules as `record_files`), or the one object named."""
    lake = S3Lake(url)
    keys = [e.key for e in lake.list("") if _is_record_key(e.key)]
    if keys:
        return lake, keys
    parent, _, name = url.rstrip("/").rpartition("/")
    if name and parent != "s3:/":
        holder = S3Lake(parent)
        if holder.exists(name):
            return holder, [name]
    raise FileNotFoundError(f"{url}: no record objects there; give an object, a day partition or a lake prefix")


def _is_record_key(key: str) -> bool:
    *folders, name = key.split("/")
    if any(part.startswith((".", "_")) for part in key.split("/")) or ERRORS_PREFIX in folders:
        return False
    return name.endswith(RECORD_SUFFIXES)
