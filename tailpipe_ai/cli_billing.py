"""`tailpipe billing bedrock-cur|azure PATH...`: billing files -> records in the lake, with a summary.

Exit status 2 (one line on stderr) only when nothing usable was found; skipped rows, unknown usage types
and unreadable files are listed in the summary and do not fail an import that found usable lines.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from tailpipe_ai._cli_output import err, out
from tailpipe_ai._cli_output import fail as _fail

app = typer.Typer(
    name="billing",
    help="Import billing files (AWS Bedrock CUR, Azure cost exports) as records: energy and carbon per line.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

PathsArg = Annotated[list[str], typer.Argument(help="Files, folders or s3://bucket/prefix (CSV, .csv.gz, Parquet).")]
LakeOpt = Annotated[
    str | None, typer.Option(help="Lake folder to write to (default TAILPIPE_LAKE or ./tailpipe-lake).")
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Read and estimate only; write nothing.")]
FormatOpt = Annotated[str, typer.Option("--format", help="Summary as table or json.")]
RegionOpt = Annotated[
    str | None,
    typer.Option(help="Region for lines that name none (e.g. aws:us-east-1, azure:westeurope)."),
]
MethodOpt = Annotated[
    str, typer.Option(help="flat (default: billing lines have no request counts) or shape (per-token-kind).")
]


@app.command("bedrock-cur")
def bedrock_cur_cmd(
    paths: PathsArg,
    lake: LakeOpt = None,
    dry_run: DryRunOpt = False,
    fmt: FormatOpt = "table",
    region: RegionOpt = None,
    method: MethodOpt = "flat",
) -> None:
    """AWS Cost and Usage Report (legacy CUR or CUR 2.0; CSV, gzip or Parquet) -> Bedrock records."""
    from tailpipe_ai.billing.bedrock_cur import read_cur

    _import("bedrock-cur", read_cur, paths, lake, dry_run, fmt, region, method, None)


@app.command("azure")
def azure_cmd(
    paths: PathsArg,
    lake: LakeOpt = None,
    dry_run: DryRunOpt = False,
    fmt: FormatOpt = "table",
    region: RegionOpt = None,
    method: MethodOpt = "flat",
) -> None:
    """Azure cost export (EA or MCA; actual or amortized) -> Foundry / Azure OpenAI records."""
    from tailpipe_ai.billing.azure import not_estimated_reason, read_azure

    _import("azure-billing", read_azure, paths, lake, dry_run, fmt, region, method, not_estimated_reason)


def _import(
    source: str,
    reader: Any,
    paths: list[str],
    lake: str | None,
    dry_run: bool,
    fmt: str,
    region: str | None,
    method: str,
    why_not: Any,
) -> None:
    from rich.progress import Progress

    from tailpipe_ai.billing.common import BillingError, record_lines, resolve_region_spec
    from tailpipe_ai.billing.sources import SourceError, display_name
    from tailpipe_ai.carbon import CarbonError

    if fmt not in ("table", "json"):
        raise _fail(f"--format must be table or json, got {fmt!r}")
    if method not in ("flat", "shape"):
        raise _fail(f"--method must be flat or shape, got {method!r}")
    if region is not None and resolve_region_spec(region) is None:
        raise _fail(f"unknown --region {region!r}: use e.g. aws:us-east-1, azure:westeurope or a country code")
    try:
        with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
            task = progress.add_task("reading", total=None)

            def on_file(inp: Any) -> None:
                progress.update(task, description=f"reading {display_name(inp)}")
                progress.advance(task)

            summary, lines = reader(paths, fallback_region=region, on_file=on_file)
            sink = None if dry_run or not lines else _sink(lake)
            try:
                progress.update(task, description="estimating")
                record_lines(summary, lines, sink, method=method, not_estimated_reason=why_not)
            finally:
                if sink is not None:
                    sink.close()
    except (SourceError, BillingError, CarbonError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if fmt == "json":
        doc = summary.to_dict()
        doc["written"] = 0 if sink is None else sink.written - sink.failed
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    else:
        _print(summary, sink, dry_run)
    if sink is not None:
        if sink.failed:
            err.print(f"{sink.failed} records could not be written to {sink.root} (see the log)", highlight=False)
        for day in sink.compacted_days():
            err.print(
                f"{day} was already compacted: run `tailpipe compact --date {day}` so reports include these records",
                highlight=False,
            )
    if not summary.usable:
        reason = "; ".join(summary.problems[:3]) or _nothing_found(summary, source)
        raise _fail(f"nothing usable found in {', '.join(paths)}: {reason}")


def _nothing_found(summary: Any, source: str) -> str:
    what = "Bedrock token line items" if source == "bedrock-cur" else "Foundry / Azure OpenAI token meters"
    if summary.rows_read == 0:
        return "the input has no data rows"
    return f"no {what} among {summary.rows_read:,} rows"


def _sink(lake: str | None) -> Any:
    import os

    from tailpipe_ai.billing.lake import BackfillLakeSink
    from tailpipe_ai.exporter.sink import signer_from_env

    return BackfillLakeSink(lake, signer=signer_from_env(os.environ.get("TAILPIPE_API_KEY") or None))


def _n(value: float | int | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _print(summary: Any, sink: Any, dry_run: bool) -> None:
    if not out.is_terminal:
        out.width = 160  # piped or captured: keep the table readable instead of folding it to 80 columns
    if summary.estimated:
        t = Table(title=f"{summary.source}: estimated", header_style="bold")
        for c in ("model", "region", "lines", "input tok", "output tok", "cache tok", "kWh", "kgCO2e", "cost USD"):
            t.add_column(c, justify="left" if c in ("model", "region") else "right")
        for (model, region), b in sorted(summary.estimated.items()):
            t.add_row(
                model,
                region,
                _n(b.lines),
                _n(b.input_tokens),
                _n(b.output_tokens),
                _n(b.cache_read_tokens + b.cache_write_tokens),
                _n(b.energy_wh / 1000),
                _n(b.carbon_gco2e / 1000),
                _n(b.cost_usd, 2),
            )
        tot = summary.total()
        t.add_row(
            "total",
            "",
            _n(tot.lines),
            _n(tot.input_tokens),
            _n(tot.output_tokens),
            _n(tot.cache_read_tokens + tot.cache_write_tokens),
            _n(tot.energy_wh / 1000),
            _n(tot.carbon_gco2e / 1000),
            _n(tot.cost_usd, 2),
            style="bold",
        )
        out.print(t)
    if summary.not_estimated:
        t = Table(title="not estimated (listed with their totals)", header_style="bold")
        for c in ("model", "why", "lines", "input tok", "output tok", "cost USD"):
            t.add_column(c)
        for (model, why), b in sorted(summary.not_estimated.items()):
            t.add_row(model, why, _n(b.lines), _n(b.input_tokens), _n(b.output_tokens), _n(b.cost_usd, 2))
        out.print(t)
    if summary.unknown:
        t = Table(title="unknown usage types / meters (not estimated)", header_style="bold")
        for c in ("usage type / meter", "unit", "rows", "amount", "cost USD"):
            t.add_column(c)
        for (label, unit), b in sorted(summary.unknown.items()):
            t.add_row(label, unit, _n(b.rows), _n(b.amount, 2), _n(b.cost_usd, 2))
        out.print(t)
    if summary.skipped:
        out.print("skipped rows:", highlight=False)
        for reason, n in sorted(summary.skipped.items()):
            out.print(f"  {n:>12,}  {reason}", markup=False, highlight=False)
    if summary.usable:  # otherwise the problems are the error line
        for message in summary.problems:
            err.print(message, markup=False, highlight=False)
    if dry_run:
        where = "dry run: nothing written"
    elif sink is None:
        where = "nothing written"
    else:
        where = f"{sink.written - sink.failed:,} records written to {sink.root}"
    out.print(
        f"{summary.files} file(s), {summary.rows_read:,} rows read, {summary.rows_used:,} used; "
        f"{summary.records:,} billing lines; {where}",
        markup=False,
        highlight=False,
    )
