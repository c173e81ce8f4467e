"""The `tailpipe` command line: estimate, models, regions.

Bad input (negative or non-numeric counts, unknown regions, malformed config files) prints one clear
line to stderr and exits with status 2, never a traceback.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from tailpipe_ai._cli_output import err, out
from tailpipe_ai._cli_output import error as _error
from tailpipe_ai._cli_output import fail as _fail
from tailpipe_ai.carbon import (
    CarbonError,
    Overrides,
    Usage,
    cost_usd,
    equivalents,
    estimate,
    load_config,
    load_datasets,
    resolve_region,
)

app = typer.Typer(
    name="tailpipe",
    help="Measure the energy and carbon footprint of AI usage, without capturing prompts or responses.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _count(name: str, raw: str | None) -> int | None:
    """A whole, non-negative count; accepts 15000000, 15_000_000 and 15,000,000."""
    if raw is None:
        return None
    text = raw.strip().replace("_", "").replace(",", "")
    if not text.isdigit():
        raise _fail(f"{name} must be a whole number >= 0, got {raw!r}")
    return int(text)


def _number(name: str, raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.replace("_", "").replace(",", ""))
    except ValueError:
        raise _fail(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise _fail(f"{name} must be a finite number >= 0, got {raw!r}")
    return value


def _sig(value: Any, digits: int = 8) -> Any:
    """Round floats to `digits` significant digits for display (55724.760000000002 -> 55724.76)."""
    if isinstance(value, float):
        if value == 0 or not math.isfinite(value):
            return value
        return round(value, digits - 1 - math.floor(math.log10(abs(value))))
    if isinstance(value, dict):
        return {k: _sig(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_sig(v, digits) for v in value]
    return value


def _config(path: str | None):
    env = dict(os.environ)
    if path:
        env["TAILPIPE_CONFIG"] = path
    try:
        return load_config(env)
    except CarbonError as exc:
        raise _fail(str(exc)) from None


@app.command("estimate")
def estimate_cmd(
    model: Annotated[
        str,
        typer.Option(
            help="Model id as your provider spells it, e.g. claude-sonnet-4, gpt-4o, "
            "us.anthropic.claude-sonnet-4-20250514-v1:0."
        ),
    ],
    tokens: Annotated[str | None, typer.Option(help="Total tokens (input + output), when no split is known.")] = None,
    input_tokens: Annotated[str | None, typer.Option("--input-tokens", help="Input tokens (incl. cached).")] = None,
    output_tokens: Annotated[
        str | None, typer.Option("--output-tokens", help="Output tokens (incl. reasoning).")
    ] = None,
    cache_read_tokens: Annotated[
        str | None, typer.Option("--cache-read-tokens", help="Cached input tokens (cost only).")
    ] = None,
    requests: Annotated[str | None, typer.Option(help="Number of calls behind the counts (shape method).")] = None,
    images: Annotated[str | None, typer.Option(help="Images generated.")] = None,
    image_size: Annotated[str | None, typer.Option("--image-size", help="e.g. 1024x1024, 1792x1024.")] = None,
    image_quality: Annotated[str | None, typer.Option("--image-quality", help="standard or hd.")] = None,
    video_seconds: Annotated[str | None, typer.Option("--video-seconds", help="Seconds of video generated.")] = None,
    video_resolution: Annotated[str | None, typer.Option("--video-resolution", help="480p, 540p, 720p, 1080p.")] = None,
    region: Annotated[
        str | None,
        typer.Option(
            help="Where it ran: aws:eu-central-1, azure:westeurope, gcp:europe-west4, or a country code (DE)."
        ),
    ] = None,
    pue: Annotated[str | None, typer.Option(help="Override the data-centre PUE.")] = None,
    grid: Annotated[str | None, typer.Option(help="Override the grid intensity, gCO2e/kWh.")] = None,
    pse: Annotated[str | None, typer.Option(help="Override power-supply efficiency (default 1.04).")] = None,
    transmission: Annotated[
        str | None,
        typer.Option("--transmission", "--tl", help="Override transmission losses (default 1.08)."),
    ] = None,
    wh_per_token: Annotated[str | None, typer.Option("--wh-per-token", help="Override the model's Wh/token.")] = None,
    method: Annotated[str | None, typer.Option(help="shape (default) or flat (the seed's tokens x Wh/token).")] = None,
    provider: Annotated[str | None, typer.Option(help="Provider, to price the usage (openai, anthropic, ...).")] = None,
    config: Annotated[str | None, typer.Option(help="Config file (TOML or YAML); default $TAILPIPE_CONFIG.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Estimate the energy (Wh) and carbon (gCO2e) of a usage, step by step."""
    cfg = _config(config)
    counts = {
        "total_tokens": _count("--tokens", tokens),
        "input_tokens": _count("--input-tokens", input_tokens),
        "output_tokens": _count("--output-tokens", output_tokens),
        "cache_read_tokens": _count("--cache-read-tokens", cache_read_tokens),
        "images": _count("--images", images),
    }
    if all(v is None for v in counts.values()) and video_seconds is None:
        raise _fail("give a usage: --tokens, --input-tokens/--output-tokens, --images or --video-seconds")
    n_requests = _count("--requests", requests)
    try:
        usage = Usage(
            model=model,
            provider=provider,
            requests=n_requests if n_requests is not None else 1,
            image_size=image_size,
            image_quality=image_quality,
            video_seconds=_number("--video-seconds", video_seconds),
            video_resolution=video_resolution,
            **counts,
        )
        overrides = Overrides.from_mapping(
            {
                "pue": _number("--pue", pue),
                "grid": _number("--grid", grid),
                "pse": _number("--pse", pse),
                "transmission": _number("--transmission", transmission),
                "wh_per_token": _number("--wh-per-token", wh_per_token),
            },
            where="command line",
        )
        result = estimate(usage, region=region, method=method, overrides=overrides, config=cfg)
    except CarbonError as exc:
        raise _fail(str(exc)) from None
    cost = cost_usd(usage, provider)
    equiv = equivalents(result.carbon_gco2e, result.energy_wh)

    if as_json:
        doc = {
            "model": model,
            "usage": {
                k: v
                for k, v in {
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "total_tokens": usage.total_tokens,
                    "cache_read_tokens": usage.cache_read_tokens,
                    "requests": usage.requests,
                    "images": usage.images,
                    "image_size": usage.image_size,
                    "image_quality": usage.image_quality,
                    "video_seconds": usage.video_seconds,
                    "video_resolution": usage.video_resolution,
                }.items()
                if v is not None
            },
            **result.to_dict(),
            "energy_kwh": result.energy_wh / 1000,
            "carbon_kgco2e": result.carbon_gco2e / 1000,
            "dataset_version": result.factors["dataset_version"],
            "cost_usd": cost,
            "equivalences": [e.to_dict() for e in equiv],
        }
        sys.stdout.write(json.dumps(_sig(doc), indent=2, ensure_ascii=False) + "\n")
        return
    _print_steps(usage, result, cost, equiv)


def _n(value: float) -> str:
    """Human number: thousands separators for large values, 4 significant digits for small ones."""
    if value == 0:
        return "0"
    return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.4g}"


def _src(source: dict | None) -> str:
    if not source:
        return ""
    title = source.get("title", "")
    year = source.get("year")
    return f"{title}" + (f" ({year})" if year and str(year) not in title else "")


def _print_steps(usage: Usage, result, cost: float | None, equiv) -> None:
    f = result.factors
    m = f["model"]
    t = Table(title=f"tailpipe estimate: {usage.model}", show_header=True, header_style="bold")
    t.add_column("step")
    t.add_column("value", justify="right")
    t.add_column("source / note", overflow="fold")
    resolved = m.get("name") or m.get("resolved") or (m.get("class") or {}).get("name") or "?"
    t.add_row(
        "model",
        f"{resolved}",
        f"{m['kind']}"
        + (f", {m['via']}" if m.get("via") else "")
        + (f", size class {m['size_class']}" if m.get("size_class") else ""),
    )
    if "class" in m:
        t.add_row("", "", f"class average of: {', '.join(m['class']['members'])}")
    model_source = _src(m.get("source") or (m.get("class") or {}).get("source"))
    it = 0.0
    if result.method == "shape":
        s = f["shape"]
        i, o, r = usage.input_tokens or 0, usage.output_tokens or 0, usage.requests or 0
        t.add_row("input tokens x Wh/token", f"{i:,} x {s['per_input_token']:.4g}", model_source)
        t.add_row("output tokens x Wh/token", f"{o:,} x {s['per_output_token']:.4g}", s["derivation"])
        t.add_row("requests x Wh/request", f"{r:,} x {s['per_request']:.4g}", "")
        it = i * s["per_input_token"] + o * s["per_output_token"] + r * s["per_request"]
    elif usage.text_tokens:
        w = f["wh_per_token"]
        t.add_row("tokens", f"{usage.text_tokens:,}", f.get("method_note", ""))
        t.add_row("x Wh per token", f"{w['value']:.6g}", model_source)
        it = usage.text_tokens * w["value"]
    if "source_pue_divided_out" in m:
        p = m["source_pue_divided_out"]
        t.add_row("", "", f"source figure / its own PUE {p['value']} (PUE never counted twice)")
    if "image" in f:
        im = f["image"]
        t.add_row(
            "images x Wh/image",
            f"{usage.images:,} x {im['wh_per_image']}",
            f"{im['label']}; {_src(im['source'])}",
        )
        it += usage.images * im["wh_per_image"]
    if "video" in f:
        v = f["video"]
        t.add_row(
            "video s x Wh/s", f"{usage.video_seconds:g} x {v['wh_per_second']}", f"{v['label']}; {_src(v['source'])}"
        )
        it += usage.video_seconds * v["wh_per_second"]
    t.add_row("= IT energy", f"{_n(it)} Wh", "")
    for key, label in (
        ("pse", "x power supply efficiency"),
        ("transmission", "x transmission losses"),
        ("pue", "x PUE"),
    ):
        t.add_row(
            label,
            f"{f[key]['value']:g}",
            (f"{f[key].get('scope')}: " if f[key].get("scope") else "") + _src(f[key]["source"]),
        )
    t.add_row(
        "= energy",
        f"{_n(result.energy_wh)} Wh",
        f"{_n(result.energy_wh / 1000)} kWh; range {_n(result.energy_wh_min)} - {_n(result.energy_wh_max)} Wh",
    )
    g = f["grid"]
    t.add_row(
        "x grid intensity",
        f"{g['value']:g} gCO2e/kWh",
        f"{g.get('scope')}{' ' + g['area'] if g.get('area') else ''}: {_src(g['source'])}",
    )
    t.add_row(
        "= carbon",
        f"{_n(result.carbon_gco2e)} gCO2e",
        f"{_n(result.carbon_gco2e / 1000)} kgCO2e; range "
        f"{_n(result.carbon_gco2e_min)} - {_n(result.carbon_gco2e_max)} g",
    )
    for e in equiv:
        t.add_row("~", f"{_n(e.amount)} {e.unit}", f"{e.label}; {_src(e.source)}")
    t.add_row(
        "cost",
        f"${cost:,.4f}" if cost is not None else "n/a",
        "genai-prices" if cost is not None else "no price known for this model / usage",
    )
    out.print(t)
    if result.flags:
        out.print(f"[yellow]flags:[/] {', '.join(result.flags)}")
    out.print(f"method: {result.method}; dataset {f['dataset_version']}; region: {f['region_label']}")


@app.command("models")
def models_cmd(
    search: Annotated[str | None, typer.Argument(help="Only ids or names containing this text.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the models of the bundled dataset with their figures and sources."""
    ds = load_datasets()
    rows = []
    for entry in ds.models.values():
        if search and search.lower() not in f"{entry.id} {entry.name}".lower():
            continue
        fig = entry.figure or (ds.classes[entry.size_class].figure if entry.size_class else None)
        rows.append(
            {
                "id": entry.id,
                "name": entry.name,
                "provider": entry.provider,
                "kind": entry.kind,
                "size_class": entry.size_class,
                "params_b": entry.params_b,
                "wh_per_token": fig.flat if fig else None,
                "shape": fig.shape if fig else None,
                "figure_from": "own"
                if entry.figure
                else (f"class {entry.size_class}" if entry.size_class else "global average"),
                "source_pue": entry.host_pue,
                "aliases": list(entry.aliases),
                "source": entry.source.to_dict() if entry.source else None,
            }
        )
    if as_json:
        classes = {
            c.id: {
                "name": c.name,
                "min_params_b": c.min_params_b,
                "max_params_b": c.max_params_b,
                "members": list(c.members),
                "wh_per_token": c.figure.flat,
                "shape": c.figure.shape,
                "derivation": c.derivation,
            }
            for c in ds.classes.values()
        }
        sys.stdout.write(
            json.dumps(_sig({"dataset_version": ds.version, "models": rows, "classes": classes}), indent=2) + "\n"
        )
        return
    t = Table(title=f"tailpipe models (dataset {ds.version})", header_style="bold")
    for col in ("id", "kind", "class", "params", "Wh/token (IT)", "figure", "source"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(
            r["id"],
            r["kind"],
            r["size_class"] or "-",
            f"{r['params_b']:g}B" if r["params_b"] else "-",
            f"{r['wh_per_token']:.5f}" if r["wh_per_token"] is not None else "-",
            r["figure_from"],
            _src(r["source"]),
        )
    out.print(t)
    c = Table(title="size classes (fallback for unmeasured models)", header_style="bold")
    for col in ("class", "params", "Wh/token (IT)", "members"):
        c.add_column(col, overflow="fold")
    for cls in ds.classes.values():
        lo = f"{cls.min_params_b:g}" if cls.min_params_b is not None else "0"
        hi = f"{cls.max_params_b:g}B" if cls.max_params_b is not None else "+"
        c.add_row(cls.name, f"{lo}-{hi}", f"{cls.figure.flat:.5f}", ", ".join(cls.members))
    out.print(c)


@app.command("regions")
def regions_cmd(
    provider: Annotated[str | None, typer.Option(help="aws, azure or gcp.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the cloud regions with their PUE and grid intensity."""
    ds = load_datasets()
    rows = []
    for key, r in ds.regions.items():
        if provider and r.provider != provider.lower():
            continue
        loc = resolve_region(key)
        rows.append(
            {
                "region": key,
                "location": r.location,
                "country": r.country,
                "pue": loc.pue,
                "pue_scope": loc.pue_scope,
                "grid": loc.grid,
                "grid_year": loc.grid_year,
            }
        )
    if as_json:
        sys.stdout.write(json.dumps({"dataset_version": ds.version, "regions": rows}, indent=2) + "\n")
        return
    t = Table(title="tailpipe regions", header_style="bold")
    for col in ("region", "location", "country", "PUE", "grid gCO2e/kWh"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            r["region"],
            r["location"] or "",
            r["country"] or "",
            f"{r['pue']:g} ({r['pue_scope']})",
            f"{r['grid']:g} ({r['grid_year']})",
        )
    out.print(t)


@app.command("compact")
def compact_cmd(
    date_: Annotated[str, typer.Option("--date", help="The UTC day to compact, YYYY-MM-DD.")],
    lake: Annotated[
        str | None, typer.Option(help="Lake folder or s3://bucket/prefix (default TAILPIPE_LAKE or ./tailpipe-lake).")
    ] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Keep only records with a valid signature.")] = False,
) -> None:
    """Compact a day's raw records into ai-telemetry/telemetry-YYYYMMDD.jsonl.gz (deduplicated, atomic)."""
    import datetime as _dt

    from tailpipe_ai.lake.compact import CompactError, compact_day
    from tailpipe_ai.lake.layout import default_lake
    from tailpipe_ai.lake.storage import LakeError

    try:
        day = _dt.date.fromisoformat(date_)
    except ValueError:
        raise _fail(f"--date must be YYYY-MM-DD, got {date_!r}") from None
    verifier = None
    if verify:
        from tailpipe_ai.exporter.signing import Keyring, KeyringError
        from tailpipe_ai.exporter.signing import verify as verify_record

        try:
            ring = Keyring.from_env()
        except KeyringError as exc:
            raise _fail(str(exc)) from None
        if ring is None:
            raise _fail("--verify needs keys: set TAILPIPE_SIGNING_KEYS")
        verifier = lambda record: verify_record(record, ring).value  # noqa: E731
    try:
        result = compact_day(lake or default_lake(), day, verify=verifier, progress=err.is_terminal)
    except (CompactError, LakeError, OSError) as exc:
        raise _fail(str(exc)) from None
    out.print(result.summary(), highlight=False, markup=False)


@app.command("report")
def report_cmd(
    lake: Annotated[
        str | None, typer.Option(help="Lake folder or s3://bucket/prefix (default TAILPIPE_LAKE or ./tailpipe-lake).")
    ] = None,
    start: Annotated[str | None, typer.Option("--from", help="First UTC day, YYYY-MM-DD (inclusive).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last UTC day, YYYY-MM-DD (inclusive).")] = None,
    by: Annotated[
        str,
        typer.Option(
            help="Group by: model, provider, day, month, integration, region, operation, "
            "or an attribution tag (team, project, ...), comma-separated."
        ),
    ] = "model",
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    source: Annotated[
        str,
        typer.Option(
            help="all, telemetry (calls captured live), billing (bill lines), or auto: bill lines where a day "
            "and provider have them, live calls elsewhere (a period covered by both counted once)."
        ),
    ] = "all",
) -> None:
    """Requests, tokens, kWh, kgCO2e and cost per group, from the compacted and not-yet-compacted records."""
    from tailpipe_ai.lake.layout import default_lake
    from tailpipe_ai.lake.report import ReportError, format_report, report

    if fmt not in ("table", "csv", "json"):
        raise _fail(f"--format must be table, csv or json, got {fmt!r}")
    try:
        rows = report(
            lake or default_lake(),
            start=start,
            end=end,
            by=by,
            on_problem=lambda message: err.print(message, markup=False, highlight=False),
            source=source,
        )
    except ReportError as exc:
        raise _fail(str(exc)) from None
    if not rows:
        err.print(f"no records in {lake or default_lake()} for that period", highlight=False)
        return
    sys.stdout.write(format_report(rows, fmt) + ("" if fmt == "table" else "\n"))


@app.command("verify")
def verify_cmd(
    path: Annotated[
        str, typer.Argument(help="A record file, a day partition or a whole lake (a folder or s3://bucket/prefix).")
    ],
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key", envvar="TAILPIPE_API_KEY", help="Also verify with the key derived from this tenant key."
        ),
    ] = None,
    allow_unsigned: Annotated[
        bool, typer.Option("--allow-unsigned", help="Unsigned records are not a failure.")
    ] = False,
    max_problems: Annotated[int, typer.Option("--max-problems", help="Problems to list.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check record signatures: reports tampered, unsigned and malformed records (exit 1 if any)."""
    from rich.progress import Progress

    from tailpipe_ai.exporter.signing import Keyring, KeyringError
    from tailpipe_ai.lake.storage import LakeError
    from tailpipe_ai.lake.verify import verify_path

    try:
        ring = Keyring.from_env()
        if api_key:
            derived = Keyring.from_api_key(api_key)
            ring = ring.with_verify_keys(derived) if ring is not None else derived
    except KeyringError as exc:
        raise _fail(str(exc)) from None
    if ring is None:
        err.print(
            "no signing keys: set TAILPIPE_SIGNING_KEYS or pass --api-key; signed records will count as unknown_key",
            highlight=False,
        )
    try:
        with Progress(console=err, transient=True, disable=as_json or not err.is_terminal) as progress:
            task = progress.add_task("verifying", total=None)
            report = verify_path(path, ring, max_problems=max_problems, on_file=lambda *_: progress.advance(task))
    except (FileNotFoundError, LakeError) as exc:
        raise _fail(str(exc)) from None
    if report.files_checked == 0:
        raise _fail(f"no record files under {path}")
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        out.print(report.summary(), highlight=False, markup=False)
    raise typer.Exit(code=report.exit_code(allow_unsigned=allow_unsigned))


from tailpipe_ai.cli_gateway import gateway_app  # noqa: E402  (typer only; the gateway loads when run)

app.add_typer(gateway_app, name="gateway")

from tailpipe_ai.cli_proxy import proxy_cmd  # noqa: E402  (typer only; aiohttp loads when the proxy runs)

app.command("proxy")(proxy_cmd)

from tailpipe_ai.cli_billing import app as billing_app  # noqa: E402  (typer only; pyarrow loads when run)

app.add_typer(billing_app, name="billing")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except CarbonError as exc:  # configuration problems surfacing outside a command
        _error(str(exc))
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    main()
