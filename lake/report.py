"""Usage, energy, carbon and cost per group, straight from the lake with DuckDB.

Why it looks like this:

* A day is counted from exactly one source: its compacted file when there is one, otherwise the raw
  partitions (de-duplicated by ``record_id``, first copy seen wins). Raw records are assigned to days by
  their own timestamp and, as compaction does, only read from the partitions of that day and the days
  either side, so a report gives the same totals before and after a day is compacted.
* DuckDB reads only the columns a report needs (``read_json`` with an explicit schema), in parallel.
* Group names are checked up front, attribute tags are passed as query parameters (never spliced into
  SQL), and an attribute tag that no record carries is an error naming the tags that exist: a typo in
  ``--by teem`` should not look like one big unattributed group.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import date, timedelta
from typing import Any

from .layout import COMPACT_PREFIX, COMPANION_PREFIX, RAW_PREFIX, parse_partition
from .storage import LakeError, LocalLake, Storage, open_lake

__all__ = ["BUILTIN_GROUPS", "METRICS", "ReportError", "format_report", "report"]

BUILTIN_GROUPS: dict[str, str] = {
    "model": "coalesce(response_model, request_model)",
    "provider": "provider",
    "day": "substr(ts, 1, 10)",
    "month": "substr(ts, 1, 7)",
    "integration": "integration",
    "region": "region",
    "operation": "operation",
}
"""Group names that are record fields (SQL over the columns read); any other name is an attribute tag."""

METRICS = ("requests", "input_tokens", "output_tokens", "kwh", "kgco2e", "cost_usd")
FORMATS = ("table", "csv", "json")

_COLUMNS = {
    "schema": "VARCHAR",
    "record_id": "VARCHAR",
    "timestamp": "VARCHAR",
    "provider": "VARCHAR",
    "request_model": "VARCHAR",
    "response_model": "VARCHAR",
    "integration": "VARCHAR",
    "region": "VARCHAR",
    "operation": "VARCHAR",
    "input_tokens": "BIGINT",
    "output_tokens": "BIGINT",
    "energy_wh": "DOUBLE",
    "carbon_gco2e": "DOUBLE",
    "cost_usd": "DOUBLE",
    "attributes": "MAP(VARCHAR, VARCHAR)",
}
_SELECT = (
    'record_id, "timestamp" AS ts, try_cast(substr("timestamp", 1, 10) AS DATE) AS d, provider, request_model, '
    "response_model, integration, region, operation, input_tokens, output_tokens, energy_wh, carbon_gco2e, "
    "cost_usd, attributes"
)
_OUT = (
    "record_id, ts, d, provider, request_model, response_model, integration, region, operation, input_tokens, "
    "output_tokens, energy_wh, carbon_gco2e, cost_usd, attributes"
)
_TAG_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
_COMPACTED_RE = re.compile(
    rf"(?:{re.escape(COMPACT_PREFIX)}/telemetry-(\d{{8}})\.jsonl\.gz|{re.escape(COMPANION_PREFIX)}/telemetry-(\d{{8}})\.parquet)"
)
COMPANION_MEMORY_MB = 128
"""DuckDB's memory limit while it writes a Parquet companion (it spills to disk past it)."""
COMPANION_ROW_GROUP = 30_720
"""Rows per Parquet row group of a companion: DuckDB buffers a whole group before writing it."""
_COMPANION_COLUMNS = [name for name in _COLUMNS if name != "schema"]
"""The Parquet companion's columns: everything report reads (compacted records all have the right schema)."""


BILLING_INTEGRATIONS = ("bedrock-cur", "azure-billing")
SOURCES = ("all", "telemetry", "billing", "auto")
"""`source=`: every record; only calls captured live (SDK, proxy, gateway, ...); only billing lines; or `auto`,
billing lines where a day and provider have them and live calls for every other day and provider (so a
period covered by both is counted once, from the bill, which covers every call)."""


class ReportError(ValueError):
    """The report was asked for something it cannot do (bad --by name, bad date, no DuckDB)."""


def report(
    lake: str | os.PathLike[str],
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    by: Sequence[str] | str = ("model",),
    on_problem: Callable[[str], None] | None = None,
    source: str = "all",
) -> list[dict[str, Any]]:
    """One dict per group: the ``by`` keys, then requests, input_tokens, output_tokens, kwh, kgco2e, cost_usd.

    ``start``/``end`` are inclusive UTC days (``date`` or 'YYYY-MM-DD'; None means unbounded). ``by`` names
    come from ``BUILTIN_GROUPS`` or are attribute tags (``team``, ``project``, ...); a comma-separated string
    is accepted. ``cost_usd`` is None for a group with no priced record. Rows are sorted by the group keys.
    ``on_problem`` receives a message for each raw file left out (not gzip); default: ignored. ``source`` is
    one of ``SOURCES``.
    """
    if source not in SOURCES:
        raise ReportError(f"unknown source {source!r}: use one of {', '.join(SOURCES)}")
    groups = parse_by(by)
    first, last = _day(start, "start"), _day(end, "end")
    if first and last and first > last:
        raise ReportError(f"the report starts ({first}) after it ends ({last}); swap --from and --to")
    try:
        storage = open_lake(lake)
        if isinstance(storage, LocalLake) and not storage.root.is_dir():
            raise ReportError(
                f"no lake at {storage.root}: pass --lake (or set TAILPIPE_LAKE) to the folder holding {RAW_PREFIX}/"
            )
        compacted = _compacted_files(storage, first, last)
        raw = _raw_files(storage, first, last, set(compacted), on_problem or (lambda message: None))
    except LakeError as exc:
        raise ReportError(str(exc)) from None
    if not compacted and not raw:
        return []
    duckdb = _duckdb()
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")  # DuckDB's bar would mix into the printed report
        try:
            storage.prepare_duckdb(con)
        except LakeError as exc:
            raise ReportError(str(exc)) from None
        sources, params = _sources(compacted, raw, first, last)
        sources = _only(sources, source)
        keys, key_params = _group_sql(groups)
        sql = (
            f"WITH recs AS ({sources}) SELECT {keys}"
            "count(*) AS requests, coalesce(sum(input_tokens), 0) AS input_tokens, "
            "coalesce(sum(output_tokens), 0) AS output_tokens, coalesce(sum(energy_wh), 0) / 1000 AS kwh, "
            "coalesce(sum(carbon_gco2e), 0) / 1000 AS kgco2e, sum(cost_usd) AS cost_usd "
            f"FROM recs GROUP BY ALL ORDER BY ALL NULLS LAST"
        )
        cursor = con.execute(sql, params + key_params)  # the keys come after the WITH clause
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        _check_tags(con, groups, rows, sources, params, (first, last))
    finally:
        con.close()
    for row in rows:
        row["requests"], row["input_tokens"], row["output_tokens"] = (
            int(row["requests"]),
            int(row["input_tokens"]),
            int(row["output_tokens"]),
        )
    return rows


def parse_by(by: Sequence[str] | str) -> list[str]:
    """Validated group names (built-in names and attribute tags), in order; ReportError if one is bad."""
    names = [n.strip() for n in by.split(",")] if isinstance(by, str) else [str(n).strip() for n in by]
    if not names or any(not n for n in names):
        raise ReportError(f"--by needs group names separated by commas, got {by!r}; {_by_help()}")
    for name in names:
        if name in METRICS or not _TAG_RE.fullmatch(name):
            raise ReportError(f"cannot group by {name!r}: {_by_help()}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ReportError(f"--by names a group twice: {', '.join(duplicates)}")
    return names


def _by_help() -> str:
    return (
        f"use {', '.join(BUILTIN_GROUPS)} or an attribute tag such as team or project "
        "(letters, digits, '_', '-' and '.', starting with a letter)"
    )


def _day(value: date | str | None, what: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise ReportError(f"the report {what} {value!r} is not a date: use YYYY-MM-DD (UTC day, inclusive)")


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError as exc:
        raise ReportError("tailpipe report needs DuckDB: pip install duckdb (see the project's lake extra)") from exc
    return duckdb


# ---------------------------------------------------------------------------------------------------------
# which files: compacted days first, raw partitions only for days not compacted
# ---------------------------------------------------------------------------------------------------------


def _in_range(d: date, first: date | None, last: date | None) -> bool:
    return (first is None or d >= first) and (last is None or d <= last)


def _compacted_files(storage: Storage, first: date | None, last: date | None) -> dict[date, str]:
    """The source of each compacted day in range: its Parquet companion when present, else its JSONL file.

    Hidden temporary files never match the names. A companion without its day file is ignored.
    """
    json_files: dict[date, str] = {}
    parquet: dict[date, str] = {}
    for entry in [*storage.list(f"{COMPACT_PREFIX}/"), *storage.list(f"{COMPANION_PREFIX}/")]:
        m = _COMPACTED_RE.fullmatch(entry.key)
        if not m:
            continue
        digits = m[1] or m[2]
        try:
            d = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
        except ValueError:
            continue
        if _in_range(d, first, last):
            (json_files if m[1] else parquet)[d] = storage.url(entry.key)
    return {d: parquet.get(d, url) for d, url in sorted(json_files.items())}


def _raw_files(
    storage: Storage, first: date | None, last: date | None, compacted: set[date], on_problem: Callable[[str], None]
) -> list[tuple[str, date]]:
    """(file, partition day) for raw partitions that may hold records of an uncompacted day in range.

    A partition P may hold records of days P-1..P+1 (the window compaction reads), so it is needed when one
    of those days is in range and not compacted. Files that are not gzip are left out with a message,
    since one would stop DuckDB.
    """
    one = timedelta(days=1)
    out: list[tuple[str, date]] = []
    for entry in storage.list(f"{RAW_PREFIX}/"):
        folder, _, name = entry.key.rpartition("/")
        p = parse_partition(folder)
        if p is None or not name.endswith(".gz") or name.startswith((".", "_")) or folder.count("/") != 3:
            continue
        if not any(_in_range(d, first, last) and d not in compacted for d in (p - one, p, p + one)):
            continue
        if _is_gzip(storage, entry.key):
            out.append((storage.url(entry.key), p))
        else:
            on_problem(f"{storage.url(entry.key)}: not a gzip file; left out of the report")
    return out


def _is_gzip(storage: Storage, key: str) -> bool:
    try:
        return storage.head(key, 2) == b"\x1f\x8b"
    except OSError:
        return False


def write_companion(jsonl: str | os.PathLike[str], out: str | os.PathLike[str]) -> bool:
    """Write the report's columns of a compacted JSONL file as Parquet at ``out``; False without DuckDB.

    The companion holds only what `report` reads, so a report over it reads a few compressed columns
    instead of parsing every JSON line. The JSONL stays the source of truth: compaction publishes the
    companion after its day file and removes it before replacing that file.
    """
    try:
        import duckdb
    except ImportError:
        return False
    con = duckdb.connect()
    try:
        # Compaction promises bounded memory: one thread, rows in any order, small row groups. Two threads
        # or 122,880-row groups ran out of 128 MB on a day of 300,000 records (measured: ~128 MB RSS in
        # all with these settings, 2.5 s).
        con.execute("SET preserve_insertion_order = false")
        con.execute("SET threads = 1")
        con.execute("SET enable_progress_bar = false")  # compaction shows its own progress
        con.execute(f"SET memory_limit = '{COMPANION_MEMORY_MB}MB'")
        read = f"read_json({_literal(os.fspath(jsonl))}, format='newline_delimited', compression='gzip', "
        read += f"columns={_sql_struct(_COLUMNS)})"
        columns = ", ".join(f'"{name}"' for name in _COMPANION_COLUMNS)
        con.execute(
            f"COPY (SELECT {columns} FROM {read}) TO {_literal(os.fspath(out))} "
            f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {COMPANION_ROW_GROUP})"
        )
    finally:
        con.close()
    return True


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# ---------------------------------------------------------------------------------------------------------
# SQL
# ---------------------------------------------------------------------------------------------------------


def _sources(
    compacted: dict[date, str], raw: list[tuple[str, date]], first: date | None, last: date | None
) -> tuple[str, list[Any]]:
    """SQL yielding one row per record (the columns of _OUT) and its parameters."""
    read = f"read_json(?, format='newline_delimited', columns={_sql_struct(_COLUMNS)}, hive_partitioning=false, "
    in_range = "(?::DATE IS NULL OR d >= ?::DATE) AND (?::DATE IS NULL OR d <= ?::DATE)"
    range_params = [first, first, last, last]
    parts: list[str] = []
    params: list[Any] = []
    json_files = [url for url in compacted.values() if not url.endswith(".parquet")]
    parquet_files = [url for url in compacted.values() if url.endswith(".parquet")]
    if json_files:
        parts.append(f"SELECT {_OUT} FROM (SELECT {_SELECT} FROM {read}ignore_errors=true)) WHERE {in_range}")
        params += [json_files, *range_params]
    if parquet_files:
        parts.append(f"SELECT {_OUT} FROM (SELECT {_SELECT} FROM read_parquet(?)) WHERE {in_range}")
        params += [parquet_files, *range_params]
    if raw:
        # Valid-looking records of uncompacted days, read from a partition within a day of the record's own
        # day (the window compaction reads), first copy of each record_id in file order.
        files = "(SELECT unnest(?::VARCHAR[]) AS filename, unnest(?::DATE[]) AS pday, unnest(?::INTEGER[]) AS file_no)"
        parts.append(
            f'SELECT {_OUT} FROM (SELECT {_SELECT}, "schema", file_no, pday FROM {read}ignore_errors=true, '
            f"filename=true) JOIN {files} USING (filename)) "
            "WHERE \"schema\" = 'tailpipe.record/1' AND record_id IS NOT NULL AND d IS NOT NULL "
            f"AND abs(d - pday) <= 1 AND NOT list_contains(?::DATE[], d) AND {in_range} "
            "QUALIFY row_number() OVER (PARTITION BY record_id ORDER BY file_no) = 1"
        )
        names = [url for url, _ in raw]
        params += [names, names, [d for _, d in raw], list(range(len(raw))), list(compacted), *range_params]
    return " UNION ALL ".join(parts), params


def _only(sources: str, source: str) -> str:
    """The record rows of `sources` that `source` keeps (see SOURCES)."""
    if source == "all":
        return sources
    billing = "coalesce(integration, '') IN (" + ", ".join(f"'{name}'" for name in BILLING_INTEGRATIONS) + ")"
    if source == "billing":
        return f"SELECT * FROM ({sources}) WHERE {billing}"
    if source == "telemetry":
        return f"SELECT * FROM ({sources}) WHERE NOT {billing}"
    return (
        f"SELECT * FROM (WITH every AS ({sources}) SELECT * FROM every r WHERE {billing} OR NOT EXISTS "
        f"(SELECT 1 FROM every b WHERE b.d = r.d AND b.provider IS NOT DISTINCT FROM r.provider "
        f"AND {billing.replace('integration', 'b.integration')}))"
    )


def _sql_struct(columns: dict[str, str]) -> str:
    return "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items()) + "}"


def _group_sql(groups: list[str]) -> tuple[str, list[Any]]:
    """The SELECT list of group keys (with trailing comma) and the parameters of attribute-tag keys."""
    parts, params = [], []
    for name in groups:
        if name in BUILTIN_GROUPS:
            parts.append(f'{BUILTIN_GROUPS[name]} AS "{name}"')
        else:
            parts.append(f'attributes[?] AS "{name}"')
            params.append(name)
    return "".join(p + ", " for p in parts), params


def _check_tags(
    con: Any, groups: list[str], rows: list[dict[str, Any]], sources: str, params: list[Any], span: tuple[Any, Any]
) -> None:
    """An attribute tag that no record in range carries is almost always a typo: say so, with the real tags."""
    missing = [g for g in groups if g not in BUILTIN_GROUPS and rows and all(r[g] is None for r in rows)]
    if not missing:
        return
    found = con.execute(
        f"WITH recs AS ({sources}) SELECT DISTINCT unnest(map_keys(attributes)) AS k FROM recs ORDER BY k", params
    ).fetchall()
    tags = ", ".join(k for (k,) in found) or "none"
    first, last = span
    names = ", ".join(map(repr, missing))
    raise ReportError(
        f"no record from {first or 'the start'} to {last or 'the end'} has the attribute tag {names}; "
        f"tags present: {tags}; built-in groups: {', '.join(BUILTIN_GROUPS)}"
    )


# ---------------------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------------------


def format_report(rows: Iterable[dict[str, Any]], fmt: str = "table") -> str:
    """Render report rows as 'table' (rich, with a total line), 'csv' (header + rows) or 'json' (a list)."""
    rows = list(rows)
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        if rows:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        return out.getvalue()
    if fmt == "table":
        return _table(rows)
    raise ReportError(f"unknown report format {fmt!r}: use one of {', '.join(FORMATS)}")


def _table(rows: list[dict[str, Any]]) -> str:
    from rich.console import Console
    from rich.table import Table

    if not rows:
        return "no records in the lake for this range\n"
    keys = [k for k in rows[0] if k not in METRICS]
    table = Table(show_footer=len(rows) > 1, header_style="bold")
    totals = {m: _total(rows, m) for m in METRICS}
    for i, key in enumerate(keys):
        table.add_column(key, footer="total" if i == 0 else "")
    for metric in METRICS:
        table.add_column(metric, justify="right", footer=_cell(metric, totals[metric]))
    for row in rows:
        table.add_row(*[_cell(k, row[k]) for k in keys], *[_cell(m, row[m]) for m in METRICS])
    console = Console(file=io.StringIO(), width=max(80, 16 * (len(keys) + len(METRICS))), color_system=None)
    console.print(table)
    return console.file.getvalue()


def _total(rows: list[dict[str, Any]], metric: str) -> Any:
    values = [r[metric] for r in rows if r[metric] is not None]
    return sum(values) if values else None


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name in ("requests", "input_tokens", "output_tokens"):
        return f"{value:,}"
    if name == "cost_usd":
        return f"{value:,.2f}"
    if name in ("kwh", "kgco2e"):
        return f"{value:,.3f}" if value == 0 or abs(value) >= 0.001 else f"{value:.2e}"
    return str(value)
