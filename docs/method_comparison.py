"""Print (as markdown) the tables of docs/methodology.md, computed with the real carbon engine.

    python docs/method_comparison.py > /tmp/tables.md          # print the tables
    python docs/method_comparison.py --update docs/methodology.md  # refresh the doc's generated tables

Nothing here is typed by hand: every figure comes from the bundled datasets through
`tailpipe_ai.carbon.estimate`, so the tables change when the data changes. The script passes an empty
`Config()` to every estimate, so a tailpipe.toml in the working directory or TAILPIPE_* environment
variables cannot change the output.

Tables:
  A  measured Wh per prompt shape vs what `flat` and `shape` predict (IT energy), and the error of each
  B  flat vs shape on an input-heavy (RAG) and an output-heavy (generation) call, default factors
  C  size classes: members, flat Wh/token and shape coefficients
  D  per-model coefficients (IT energy, the source's PUE divided out)
  E  image and video figures
  F  the seed's worked example
  G  a few cloud regions: PUE and grid intensity
"""

from __future__ import annotations

import argparse
import statistics
import sys
from importlib import resources

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from tailpipe_ai.carbon import Config, Usage, equivalents, estimate, load_datasets, resolve_region
from tailpipe_ai.carbon.fit import fit_shapes

CONFIG = Config()  # no config file, no environment variables: reproducible tables
IT_ONLY = {"pse": 1, "transmission": 1, "pue": 1}  # estimate == IT energy (grid irrelevant for Wh)
SHAPES = ("short", "medium", "long")
WORKLOAD_MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "claude-3-7-sonnet",
    "llama-3.1-70b",
    "llama-3.1-8b",
    "deepseek-v3",
    "claude-sonnet-4",
)  # the last borrows Claude 3.7 Sonnet's split
RAG = (20_000, 300)
GENERATION = (500, 4_000)
REGIONS = (
    "aws:eu-central-1",
    "aws:us-east-1",
    "aws:eu-north-1",
    "aws:eu-central-2",
    "azure:westeurope",
    "azure:swedencentral",
    "gcp:europe-west4",
    "gcp:us-central1",
    "DE",
    "world",
)


def sig(x: float, n: int = 3) -> str:
    """n significant digits, plain notation for ordinary magnitudes."""
    if x == 0:
        return "0"
    return f"{x:.{n}g}"


def wh(x: float) -> str:
    return f"{x:,.3f}" if x < 100 else f"{x:,.1f}"


def pct(x: float) -> str:
    return f"{x:.1f}%"


def table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def raw_models() -> dict:
    """models.toml as published (the engine keeps only derived figures)."""
    text = resources.files("tailpipe_ai.carbon").joinpath("data", "models.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def it_wh(model: str, i: int, o: int, method: str) -> float:
    e = estimate(Usage(model=model, input_tokens=i, output_tokens=o), method=method, overrides=IT_ONLY, config=CONFIG)
    assert e.method == method, (model, method, e.method)
    return e.energy_wh


def ape(pred: float, meas: float) -> float:
    return abs(pred - meas) / meas * 100.0


# ---------------------------------------------------------------------------------------------- A


def table_a(ds, doc) -> str:
    shapes = {k: (v["input"], v["output"]) for k, v in doc["shapes"].items()}
    rows, err_rows = [], []
    mape = {"flat": [], "shape": [], "loo": []}
    for mid, m in doc["models"].items():
        if not all(s in m for s in SHAPES):
            continue
        pue = ds.models[mid].host_pue
        meas = {s: m[s][0] / pue for s in SHAPES}
        pred = {meth: {s: it_wh(mid, *shapes[s], meth) for s in SHAPES} for meth in ("flat", "shape")}
        # Leave-one-out: fit on the two other shapes (the fit then fixes the per-request term at 0) and
        # predict the held-out one: how well the shape method does on a shape it has not seen.
        loo = {}
        for held in SHAPES:
            rest = [s for s in SHAPES if s != held]
            f = fit_shapes([shapes[s] for s in rest], [meas[s] for s in rest])
            i, o = shapes[held]
            loo[held] = f["per_input_token"] * i + f["per_output_token"] * o + f["per_request"]
        row = [f"{ds.models[mid].name} ({pue})"]
        for s in SHAPES:
            row += [wh(meas[s]), wh(pred["flat"][s]), wh(pred["shape"][s])]
        rows.append(row)
        errs = {
            "flat": statistics.mean(ape(pred["flat"][s], meas[s]) for s in SHAPES),
            "shape": statistics.mean(ape(pred["shape"][s], meas[s]) for s in SHAPES),
            "loo": statistics.mean(ape(loo[s], meas[s]) for s in SHAPES),
        }
        for k, v in errs.items():
            mape[k].append(v)
        flat_by_shape = " / ".join(f"{ape(pred['flat'][s], meas[s]):.0f}" for s in SHAPES)
        err_rows.append([ds.models[mid].name, pct(errs["flat"]), flat_by_shape, pct(errs["shape"]), pct(errs["loo"])])
    for label, fn in (("**mean over models**", statistics.mean), ("**median over models**", statistics.median)):
        err_rows.append([label, pct(fn(mape["flat"])), "", pct(fn(mape["shape"])), pct(fn(mape["loo"]))])
    s_, m_, l_ = (f"{shapes[s][0]:,}/{shapes[s][1]:,}" for s in SHAPES)
    header = ["model (paper PUE)"]
    for name, io in (("short", s_), ("medium", m_), ("long", l_)):
        header += [f"{name} {io} measured", "flat", "shape"]
    out = [
        "#### A1. Wh per query: measured (paper mean / paper PUE) and predicted (IT energy)",
        "",
        table(header, rows),
        "",
        "#### A2. Mean absolute percentage error over the three shapes",
        "",
        table(
            [
                "model",
                "flat MAPE",
                "flat error short / medium / long (%)",
                "shape MAPE (fit)",
                "shape MAPE (leave-one-out)",
            ],
            err_rows,
        ),
    ]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- B


def table_b(ds) -> str:
    rows = []
    loc = None
    for mid in WORKLOAD_MODELS:
        row = [ds.models[mid].name]
        for i, o in (RAG, GENERATION):
            u = Usage(model=mid, input_tokens=i, output_tokens=o)
            f = estimate(u, method="flat", config=CONFIG)
            s = estimate(u, method="shape", config=CONFIG)
            assert f.method == "flat" and s.method == ("shape" if ds.models[mid].figure.shape else "flat")
            if s.method != "shape":
                row[0] = f"{ds.models[mid].name} (no shapes: `shape` falls back to flat)"
            loc = s.factors
            row += [wh(f.energy_wh), wh(s.energy_wh), f"{f.energy_wh / s.energy_wh:.2f}"]
        rows.append(row)
    assert loc is not None
    header = [
        "model",
        f"RAG {RAG[0]:,}/{RAG[1]:,}: flat Wh",
        "shape Wh",
        "flat / shape",
        f"generation {GENERATION[0]:,}/{GENERATION[1]:,}: flat Wh",
        "shape Wh",
        "flat / shape",
    ]
    note = (
        f"Default factors: PSE {loc['pse']['value']}, TL {loc['transmission']['value']}, "
        f"PUE {loc['pue']['value']} ({loc['pue']['scope']}), grid {loc['grid']['value']:g} gCO2e/kWh "
        f"({loc['grid']['scope']}); one request per call. gCO2e = Wh x {loc['grid']['value'] / 1000:g}."
    )
    return "\n".join(["#### B. Wh per call, flat vs shape", "", note, "", table(header, rows)])


# ---------------------------------------------------------------------------------------------- C


def params_range(cls) -> str:
    """The class bounds as `size_class_for` applies them (70B is Medium)."""
    lo, hi = cls.min_params_b, cls.max_params_b
    if lo is None:
        return f"< {hi:g}B"
    if hi is None:
        return f"> {lo:g}B"
    if cls.id == "medium":
        return f"{lo:g}B to {hi:g}B (incl.)"
    return f"{lo:g}B to < {hi:g}B"


def table_c(ds) -> str:
    rows = []
    for cls in ds.classes.values():
        f = cls.figure
        rows.append(
            [
                cls.name,
                params_range(cls),
                ", ".join(cls.members),
                sig(f.flat),
                f"{sig(f.flat_min)} to {sig(f.flat_max)}",
                sig(f.shape["per_input_token"]),
                sig(f.shape["per_output_token"]),
                sig(f.shape["per_request"]),
            ]
        )
    g = ds.global_average
    f = g.figure
    rows.append(
        [
            f"global average ({len(g.members)} models)",
            "unknown",
            "all measured non-reasoning models",
            sig(f.flat),
            f"{sig(f.flat_min)} to {sig(f.flat_max)}",
            sig(f.shape["per_input_token"]),
            sig(f.shape["per_output_token"]),
            sig(f.shape["per_request"]),
        ]
    )
    header = [
        "class",
        "parameters",
        "members",
        "flat Wh/token",
        "flat range",
        "a: Wh/input token",
        "b: Wh/output token",
        "c: Wh/request",
    ]
    medium_query = {
        c.id: c.figure.shape["per_input_token"] * 1000
        + c.figure.shape["per_output_token"] * 1000
        + c.figure.shape["per_request"]
        for c in ds.classes.values()
    }
    ref = ds.models["claude-3-7-sonnet"].figure.flat
    extra = (
        "Medium query (1,000/1,000) under shape, IT Wh: "
        + ", ".join(f"{ds.classes[k].name} {sig(v)}" for k, v in medium_query.items())
        + f". For comparison, Claude 3.7 Sonnet's own flat figure is {sig(ref)} Wh/token; the Large class's is "
        f"{sig(ds.classes['large'].figure.flat)} ({ds.classes['large'].figure.flat / ref:.1f}x)."
    )
    return "\n".join(
        [
            "#### C. Size classes (IT energy; every figure is the mean of the members')",
            "",
            table(header, rows, "lllrrrrr"),
            "",
            extra,
        ]
    )


# ---------------------------------------------------------------------------------------------- D


def table_d(ds, doc) -> str:
    rows = []
    for mid, m in doc["models"].items():
        e = ds.models[mid]
        f = e.figure
        shapes = "/".join(s[0].upper() for s in SHAPES if s in m) if "medium" in m else "-"
        notes = []
        if e.reasoning:
            notes.append("reasoning")
        if m.get("note") and "restored" in m["note"]:
            notes.append("restored cells")
        if e.kind == "published":
            notes.append("published Wh/token")
        sh = f.shape
        rows.append(
            [
                mid,
                e.size_class or "",
                f"{e.host_pue:g}",
                shapes,
                sig(f.flat),
                sig(sh["per_input_token"]) if sh else "-",
                sig(sh["per_output_token"]) if sh else "-",
                sig(sh["per_request"]) if sh else "-",
                ", ".join(notes),
            ]
        )
    header = [
        "id",
        "class",
        "PUE divided out",
        "shapes",
        "flat Wh/token",
        "a: Wh/input token",
        "b: Wh/output token",
        "c: Wh/request",
        "note",
    ]
    return "\n".join(
        [f"#### D. Per-model coefficients (IT energy), dataset {ds.version}", "", table(header, rows, "llrlrrrrl")]
    )


# ---------------------------------------------------------------------------------------------- E


def table_e(ds) -> str:
    rows = [[f.label, f"{f.wh:g}", "per image", f.source.title] for f in ds.images.values()]
    rows += [[f.label, f"{f.wh:g}", "per second", f.source.title] for f in ds.video.values()]
    return "\n".join(
        [
            "#### E. Image and video figures (IT energy before PSE, TL and PUE)",
            "",
            table(["output", "Wh", "rate", "source"], rows, "lrll"),
        ]
    )


# ---------------------------------------------------------------------------------------------- F


def table_f() -> str:
    u = Usage(model="claude-sonnet-4", total_tokens=15_000_000)
    e = estimate(u, overrides={"pue": 1.35, "grid": 332}, config=CONFIG)
    r = estimate(u, region="aws:eu-central-1", config=CONFIG)
    f = e.factors
    it = u.total_tokens * f["wh_per_token"]["value"]
    miles = next(q for q in equivalents(e.carbon_gco2e, e.energy_wh) if q.key == "petrol_car_miles")
    seed_kwh = round(e.energy_wh / 1000, 2)
    rows = [
        ["tokens x Wh/token", f"{u.total_tokens:,} x {f['wh_per_token']['value']}", f"{it:,.2f} Wh"],
        [
            "x PSE x TL x PUE",
            f"{f['pse']['value']} x {f['transmission']['value']} x {f['pue']['value']}",
            f"{e.energy_wh:,.2f} Wh",
        ],
        [
            "x grid",
            f"{f['grid']['value']:g} gCO2e/kWh",
            f"{e.carbon_gco2e:,.2f} gCO2e ({e.carbon_gco2e / 1000:.2f} kg)",
        ],
        ["seed's rounding", f"{seed_kwh} kWh x {f['grid']['value']:g}", f"{seed_kwh * f['grid']['value']:,.2f} gCO2e"],
        ["equivalence", f"{e.carbon_gco2e:,.2f} g / {miles.per_unit:g} g/mile", f"{miles.amount:.1f} miles"],
        [
            "--region aws:eu-central-1",
            f"PUE {r.factors['pue']['value']:g} ({r.factors['pue']['scope']}), grid "
            f"{r.factors['grid']['value']:g} ({r.factors['grid']['area']} {r.factors['grid']['year']})",
            f"{r.energy_wh:,.2f} Wh, {r.carbon_gco2e:,.2f} gCO2e",
        ],
    ]
    return "\n".join(
        [
            "#### F. The seed's worked example (method: "
            + e.method
            + ", flags: "
            + (", ".join(e.flags) or "none")
            + ")",
            "",
            table(["step", "inputs", "result"], rows, "llr"),
        ]
    )


# ---------------------------------------------------------------------------------------------- G


def short_title(src) -> str:
    title = src.title.split(",")[0].split(":")[0]
    return title + (f" ({src.year})" if src.year and str(src.year) not in title else "")


def table_g() -> str:
    rows = []
    for spec in REGIONS:
        loc = resolve_region(spec, CONFIG)
        rows.append(
            [
                spec,
                loc.label,
                f"{loc.pue:g}",
                loc.pue_scope,
                short_title(loc.pue_source),
                f"{loc.grid:g}",
                f"{loc.grid_area} {loc.grid_year}",
            ]
        )
    return "\n".join(
        [
            "#### G. Examples of region resolution",
            "",
            table(
                ["--region", "resolved", "PUE", "PUE scope", "PUE source", "grid gCO2e/kWh", "grid area, year"],
                rows,
                "llrllrl",
            ),
        ]
    )


def render() -> str:
    ds = load_datasets()
    doc = raw_models()
    sections = [
        f"<!-- generated by `python docs/method_comparison.py`, dataset {ds.version} -->",
        table_a(ds, doc),
        table_b(ds),
        table_c(ds),
        table_d(ds, doc),
        table_e(ds),
        table_f(),
        table_g(),
    ]
    return "\n\n".join(sections) + "\n"


END = "<!-- end of generated section {} -->"


def _sections(text: str) -> dict[str, list[str]]:
    """'#### X. title' and everything under it, keyed by X, from this script's output."""
    out: dict[str, list[str]] = {}
    key = None
    for line in text.splitlines():
        if line.startswith("#### "):
            key = line[5:].split(".", 1)[0]
            out[key] = [line + " *(generated)*"]
        elif key is not None:
            out[key].append(line)
    for key, block in out.items():
        while block and not block[-1].strip():
            block.pop()
        block.append(END.format(key))
    return out


def updated(doc_text: str, generated: str) -> str:
    """The doc with every '#### X. ... *(generated)*' section, down to its end marker, regenerated."""
    lines = doc_text.splitlines()
    result: list[str] = []
    new = _sections(generated)
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#### ") and line.endswith("*(generated)*"):
            key = line[5:].split(".", 1)[0]
            if key not in new:
                raise SystemExit(f"docs: generated section {key} no longer exists in method_comparison.py")
            end = END.format(key)
            try:
                stop = lines.index(end, i)
            except ValueError:
                raise SystemExit(f"docs: generated section {key} has no end marker {end!r}") from None
            result.extend(new[key])
            i = stop + 1
            continue
        result.append(line)
        i += 1
    return "\n".join(result) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", metavar="DOC", help="rewrite the generated tables of DOC in place")
    parser.add_argument("--check", metavar="DOC", help="exit 1 if the generated tables of DOC are out of date")
    args = parser.parse_args()
    text = render()
    target = args.update or args.check
    if not target:
        sys.stdout.write(text)
        return
    with open(target, encoding="utf-8") as fh:
        current = fh.read()
    fresh = updated(current, text)
    if args.check:
        if fresh != current:
            sys.stderr.write(f"{target} is out of date: run python docs/method_comparison.py --update {target}\n")
            raise SystemExit(1)
        return
    with open(target, "w", encoding="utf-8") as fh:
        fh.write(fresh)


if __name__ == "__main__":
    main()
