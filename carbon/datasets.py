"""Load the bundled datasets once, check them, and derive every per-token figure from the raw data.

The TOML files under ``data/`` hold only what sources publish; everything computed from them (flat
Wh/token, fitted shape coefficients, class averages) is computed here, so a figure lives in one place.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from .errors import DatasetError
from .fit import COEFFICIENTS, fit_shapes

DATA_FILES = (
    "models.toml",
    "classes.toml",
    "families.toml",
    "parameters.toml",
    "media.toml",
    "factors.toml",
    "regions.toml",
    "countries.toml",
    "equivalences.toml",
)

SIZE_CLASSES = ("nano", "micro", "small", "medium", "large")


@dataclass(frozen=True, slots=True)
class Source:
    """Where a figure comes from."""

    key: str
    title: str
    url: str
    year: int | None
    licence: str
    retrieved: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"id": self.key, "title": self.title, "url": self.url, "year": self.year, "licence": self.licence}
        if self.retrieved:
            d["retrieved"] = self.retrieved
        return d


@dataclass(frozen=True, slots=True)
class Figure:
    """IT-side energy coefficients (the data source's PUE already divided out), with their range.

    ``flat`` is Wh per token; ``shape`` maps per_input_token / per_output_token / per_request to Wh,
    or is None where no prompt-shape measurements exist.
    """

    flat: float
    flat_min: float
    flat_max: float
    flat_derivation: str
    shape: dict[str, float] | None = None
    shape_min: dict[str, float] | None = None
    shape_max: dict[str, float] | None = None
    shape_derivation: str | None = None


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One model the engine knows: measured, published, sized by parameter count, or known but unsized."""

    id: str
    name: str
    provider: str | None
    kind: str  # measured | published | sized | unsized | custom
    source: Source | None
    size_class: str | None = None
    params_b: float | None = None
    active_params_b: float | None = None
    reasoning: bool = False
    aliases: tuple[str, ...] = ()
    host: str | None = None
    host_pue: float | None = None
    host_pue_source: Source | None = None
    figure: Figure | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class SizeClass:
    id: str
    name: str
    min_params_b: float | None
    max_params_b: float | None
    members: tuple[str, ...]
    figure: Figure
    source: Source
    derivation: str


@dataclass(frozen=True, slots=True)
class FamilyRule:
    pattern: re.Pattern[str]
    size_class: str | None
    family: str
    source: Source
    same_as: str | None = None


@dataclass(frozen=True, slots=True)
class Factor:
    key: str
    label: str
    value: float
    source: Source
    derivation: str | None = None


@dataclass(frozen=True, slots=True)
class MediaFigure:
    key: str
    label: str
    wh: float  # per image, or per second of video
    source: Source
    derivation: str | None = None


@dataclass(frozen=True, slots=True)
class Region:
    key: str  # "aws:eu-central-1"
    provider: str
    region: str
    location: str | None
    country: str | None
    pue: float | None
    pue_source: Source | None


@dataclass(frozen=True, slots=True)
class GridArea:
    key: str  # ISO alpha-2 or aggregate key
    name: str
    grid: float
    source: Source
    year: int | None
    iso3: str | None = None


@dataclass(frozen=True, slots=True)
class Equivalence:
    key: str
    label: str
    unit: str
    per_unit: float
    basis: str  # "carbon" (gCO2e per unit) or "energy" (Wh per unit)
    source: Source
    derivation: str | None = None


@dataclass(slots=True)
class Datasets:
    version: str
    digest: str
    sources: dict[str, Source] = field(default_factory=dict)
    shapes: dict[str, tuple[int, int]] = field(default_factory=dict)
    models: dict[str, ModelEntry] = field(default_factory=dict)
    classes: dict[str, SizeClass] = field(default_factory=dict)
    global_average: SizeClass | None = None
    families: list[FamilyRule] = field(default_factory=list)
    images: dict[str, MediaFigure] = field(default_factory=dict)
    image_size_aliases: dict[str, str] = field(default_factory=dict)
    image_quality_aliases: dict[str, str] = field(default_factory=dict)
    video: dict[str, MediaFigure] = field(default_factory=dict)
    factors: dict[str, Factor] = field(default_factory=dict)
    regions: dict[str, Region] = field(default_factory=dict)
    region_aliases: dict[str, str] = field(default_factory=dict)
    fleet: dict[str, Factor] = field(default_factory=dict)
    countries: dict[str, GridArea] = field(default_factory=dict)
    aggregates: dict[str, GridArea] = field(default_factory=dict)
    equivalences: dict[str, Equivalence] = field(default_factory=dict)


# ------------------------------------------------------------------ helpers


def _read(name: str) -> tuple[dict[str, Any], bytes]:
    raw = resources.files(__package__).joinpath("data", name).read_bytes()
    try:
        return tomllib.loads(raw.decode("utf-8")), raw
    except tomllib.TOMLDecodeError as exc:  # a packaging bug, caught by tests
        raise DatasetError(f"bundled data file {name} is not valid TOML: {exc}") from exc


def _sources(ds: Datasets, doc: dict[str, Any], fname: str) -> None:
    for key, s in doc.get("sources", {}).items():
        for req in ("title", "url", "licence"):
            if req not in s:
                raise DatasetError(f"{fname}: source {key!r} lacks {req!r}")
        if "year" not in s and "retrieved" not in s:
            raise DatasetError(f"{fname}: source {key!r} needs a 'year' or 'retrieved' date")
        src = Source(
            key=key,
            title=s["title"],
            url=s["url"],
            year=s.get("year"),
            licence=s["licence"],
            retrieved=str(s["retrieved"]) if "retrieved" in s else None,
            note=s.get("note"),
        )
        if key in ds.sources and ds.sources[key] != src:
            raise DatasetError(f"{fname}: source key {key!r} is defined differently in two files")
        ds.sources[key] = src


def _source(ds: Datasets, key: str | None, where: str) -> Source:
    if not key or key not in ds.sources:
        raise DatasetError(f"{where}: unknown or missing source {key!r}")
    return ds.sources[key]


def _measured_figure(shapes: dict[str, tuple[int, int]], entry: dict[str, Any], pue: float) -> Figure:
    """Flat and shape coefficients of a model measured on the paper's prompt shapes."""
    measured = {name: entry[name] for name in ("short", "medium", "long") if name in entry}
    if "medium" not in measured:
        raise DatasetError(f"model {entry.get('name')}: the medium shape is required")
    mean, spread = measured["medium"]
    flat = mean / pue / 1000.0
    flat_min = max(mean - spread, 0.0) / pue / 1000.0
    flat_max = (mean + spread) / pue / 1000.0
    flat_derivation = (
        f"medium query ({shapes['medium'][0]} in + {shapes['medium'][1]} out tokens) = {mean} Wh "
        f"+/- {spread}, / paper PUE {pue}, / 1000 tokens (the seed's per-1,000-token reading)"
    )
    names = list(measured)
    pts = [shapes[n] for n in names]
    fit = fit_shapes(pts, [measured[n][0] / pue for n in names])
    # Range: the largest relative spread the paper reports over the measured shapes, applied to every
    # coefficient. Fitting the -/+ spread values separately gives fits that can cross the central one.
    spread = max(measured[n][1] / measured[n][0] for n in names)
    fit_lo = {c: v * max(1.0 - spread, 0.0) for c, v in fit.items()}
    fit_hi = {c: v * (1.0 + spread) for c, v in fit.items()}
    shape_derivation = (
        f"non-negative least squares of Wh = a*input + b*output + c on the {'/'.join(names)} shapes "
        f"(Wh / paper PUE {pue})"
        + ("" if len(names) >= 3 else "; two shapes only, so the per-request term c is fixed at 0")
        + f"; range +/- {spread:.1%}, the largest relative spread the paper gives for this model's shapes"
    )
    return Figure(flat, flat_min, flat_max, flat_derivation, fit, fit_lo, fit_hi, shape_derivation)


def _borrowed_shape(ds: Datasets, figure: Figure, sibling: str, where: str) -> Figure:
    """Give a flat-only published figure the input/output/request split of a measured sibling.

    The sibling's coefficients are scaled so that a medium query (1,000 in + 1,000 out tokens) costs
    1,000 x the published Wh/token, i.e. exactly what the flat reading of the figure says.
    """
    base = ds.models.get(sibling)
    if base is None or base.figure is None or base.figure.shape is None:
        raise DatasetError(f"{where}: shape_from {sibling!r} is not a measured model listed before it")
    i, o = ds.shapes["medium"]
    shape = base.figure.shape
    k = figure.flat * 1000.0 / (shape["per_input_token"] * i + shape["per_output_token"] * o + shape["per_request"])

    def scale(d: dict[str, float]) -> dict[str, float]:
        return {c: v * k for c, v in d.items()}

    return Figure(
        figure.flat,
        figure.flat_min,
        figure.flat_max,
        figure.flat_derivation,
        scale(shape),
        scale(base.figure.shape_min),  # type: ignore[arg-type]
        scale(base.figure.shape_max),  # type: ignore[arg-type]
        f"{sibling}'s fitted split, scaled by {k:.4f} so that a medium query costs 1,000 x the published "
        "Wh/token; range: the sibling's relative range",
    )


def _average(figures: list[Figure], derivation: str) -> Figure:
    n = len(figures)
    flat = sum(f.flat for f in figures) / n
    shaped = [f for f in figures if f.shape is not None]
    shape = shape_min = shape_max = None
    if shaped:
        shape = {c: sum(f.shape[c] for f in shaped) / len(shaped) for c in COEFFICIENTS}  # type: ignore[index]
        shape_min = {c: min(f.shape_min[c] for f in shaped) for c in COEFFICIENTS}  # type: ignore[index]
        shape_max = {c: max(f.shape_max[c] for f in shaped) for c in COEFFICIENTS}  # type: ignore[index]
    return Figure(
        flat=flat,
        flat_min=min(f.flat_min for f in figures),
        flat_max=max(f.flat_max for f in figures),
        flat_derivation=f"mean of members' flat Wh/token ({derivation}); range spans the members' ranges",
        shape=shape,
        shape_min=shape_min,
        shape_max=shape_max,
        shape_derivation=(
            f"mean of members' fitted coefficients ({derivation}); range spans the members' ranges" if shaped else None
        ),
    )


def size_class_for(params_b: float) -> str:
    """The paper's size class for a parameter count in billions (70B is Medium, >70B Large)."""
    if params_b < 7:
        return "nano"
    if params_b < 20:
        return "micro"
    if params_b < 40:
        return "small"
    if params_b <= 70:
        return "medium"
    return "large"


# ------------------------------------------------------------------ loaders per file


def _load_models(ds: Datasets, doc: dict[str, Any]) -> None:
    ds.version = str(doc["dataset_version"])
    ds.shapes = {k: (int(v["input"]), int(v["output"])) for k, v in doc["shapes"].items()}
    hosts = {k: (float(v["pue"]), _source(ds, v.get("source"), f"host {k}")) for k, v in doc["hosts"].items()}
    for mid, m in doc["models"].items():
        where = f"models.toml [{mid}]"
        src = _source(ds, m.get("source"), where)
        host = m.get("host")
        if host not in hosts:
            raise DatasetError(f"{where}: unknown host {host!r}")
        pue, pue_src = hosts[host]
        if "wh_per_token" in m:
            value = float(m["wh_per_token"]) / pue
            figure = Figure(value, value, value, m.get("derivation", "published per-token figure"))
            kind = "published"
            sibling = m.get("shape_from")
            if sibling is not None:
                figure = _borrowed_shape(ds, figure, sibling, where)
        else:
            figure = _measured_figure(ds.shapes, m, pue)
            kind = "measured"
        size_class = m.get("size_class")
        if size_class not in SIZE_CLASSES:
            raise DatasetError(f"{where}: size_class must be one of {SIZE_CLASSES}")
        ds.models[mid] = ModelEntry(
            id=mid,
            name=m["name"],
            provider=m.get("provider"),
            kind=kind,
            source=src,
            size_class=size_class,
            params_b=m.get("params_b"),
            active_params_b=m.get("active_params_b"),
            reasoning=bool(m.get("reasoning", False)),
            aliases=tuple(m.get("aliases", ())),
            host=host,
            host_pue=pue,
            host_pue_source=pue_src,
            figure=figure,
            note=m.get("note"),
        )


def _load_classes(ds: Datasets, doc: dict[str, Any]) -> None:
    for cid, c in doc["classes"].items():
        if cid not in SIZE_CLASSES:
            raise DatasetError(f"classes.toml: unknown class {cid!r}")
        members = tuple(c["members"])
        figs = []
        for mid in members:
            entry = ds.models.get(mid)
            if entry is None or entry.kind != "measured" or entry.reasoning:
                raise DatasetError(f"classes.toml [{cid}]: member {mid!r} is not a measured non-reasoning model")
            figs.append(entry.figure)
        ds.classes[cid] = SizeClass(
            id=cid,
            name=c["name"],
            min_params_b=c.get("min_params_b"),
            max_params_b=c.get("max_params_b"),
            members=members,
            figure=_average(figs, ", ".join(members)),  # type: ignore[arg-type]
            source=_source(ds, c.get("source"), f"classes.toml [{cid}]"),
            derivation=c["derivation"],
        )
    g = doc["global_average"]
    members = tuple(mid for mid, e in ds.models.items() if e.kind == "measured" and not e.reasoning and e.figure.shape)
    ds.global_average = SizeClass(
        id="global",
        name=g["name"],
        min_params_b=None,
        max_params_b=None,
        members=members,
        figure=_average([ds.models[m].figure for m in members], "all measured non-reasoning models"),  # type: ignore[misc]
        source=_source(ds, g.get("source"), "classes.toml [global_average]"),
        derivation=g["derivation"],
    )


def _load_families(ds: Datasets, doc: dict[str, Any]) -> None:
    for i, r in enumerate(doc.get("rules", [])):
        same_as = r.get("same_as")
        if same_as is not None:
            target = ds.models.get(same_as)
            if target is None or target.figure is None:
                raise DatasetError(f"families.toml rule {i}: same_as {same_as!r} is not a model with a figure")
        elif r.get("size_class") not in SIZE_CLASSES:
            raise DatasetError(f"families.toml rule {i}: unknown size class {r.get('size_class')!r}")
        ds.families.append(
            FamilyRule(
                pattern=re.compile(r["pattern"]),
                size_class=r.get("size_class"),
                family=r["family"],
                source=_source(ds, r.get("source"), f"families.toml rule {i}"),
                same_as=same_as,
            )
        )


def _load_parameters(ds: Datasets, doc: dict[str, Any]) -> None:
    for mid, m in doc.get("models", {}).items():
        where = f"parameters.toml [{mid}]"
        if mid in ds.models:
            raise DatasetError(f"{where}: already a measured model")
        params = float(m["params_b"])
        ds.models[mid] = ModelEntry(
            id=mid,
            name=m.get("name", mid),
            provider=m.get("provider"),
            kind="sized",
            source=_source(ds, m.get("source"), where),
            size_class=size_class_for(params),
            params_b=params,
            active_params_b=m.get("active_params_b"),
            aliases=tuple(m.get("aliases", ())),
            note=m.get("note"),
        )
    for mid, m in doc.get("unsized", {}).items():
        where = f"parameters.toml [unsized.{mid}]"
        if mid in ds.models:
            raise DatasetError(f"{where}: id already used")
        src_key = m.get("source")
        ds.models[mid] = ModelEntry(
            id=mid,
            name=m.get("name", mid),
            provider=m.get("provider"),
            kind="unsized",
            source=_source(ds, src_key, where) if src_key else None,
            aliases=tuple(m.get("aliases", ())),
            note=m.get("note"),
        )


def _media(ds: Datasets, table: dict[str, Any], per: str, fname: str) -> dict[str, MediaFigure]:
    out = {}
    for key, v in table.items():
        out[key] = MediaFigure(
            key=key,
            label=v["label"],
            wh=float(v[per]),
            source=_source(ds, v.get("source"), f"{fname} [{key}]"),
            derivation=v.get("derivation"),
        )
    return out


def _load_media(ds: Datasets, doc: dict[str, Any]) -> None:
    ds.images = _media(ds, doc["images"], "wh", "media.toml")
    ds.video = _media(ds, doc["video"], "wh_per_second", "media.toml")
    ds.image_size_aliases = dict(doc.get("image_size_aliases", {}))
    ds.image_quality_aliases = dict(doc.get("image_quality_aliases", {}))


def _load_factors(ds: Datasets, doc: dict[str, Any]) -> None:
    for key in ("pse", "transmission", "pue", "grid"):
        f = doc["factors"][key]
        ds.factors[key] = Factor(
            key=key,
            label=f["label"],
            value=float(f["value"]),
            source=_source(ds, f.get("source"), f"factors.toml [{key}]"),
            derivation=f.get("derivation"),
        )


def _load_countries(ds: Datasets, doc: dict[str, Any]) -> None:
    for code, c in doc.get("countries", {}).items():
        ds.countries[code.upper()] = GridArea(
            key=code.upper(),
            name=c["name"],
            grid=float(c["grid"]),
            source=_source(ds, c.get("source"), f"countries.toml [{code}]"),
            year=c.get("year", ds.sources[c["source"]].year),
            iso3=c.get("iso3"),
        )
    for key, c in doc.get("aggregates", {}).items():
        ds.aggregates[key] = GridArea(
            key=key,
            name=c["name"],
            grid=float(c["grid"]),
            source=_source(ds, c.get("source"), f"countries.toml [aggregates.{key}]"),
            year=c.get("year", ds.sources[c["source"]].year),
        )


def _load_regions(ds: Datasets, doc: dict[str, Any]) -> None:
    for provider, f in doc.get("fleet", {}).items():
        ds.fleet[provider] = Factor(
            key=f"pue:{provider}",
            label=f"{provider} fleet-average PUE",
            value=float(f["pue"]),
            source=_source(ds, f.get("source"), f"regions.toml [fleet.{provider}]"),
        )
    for key, r in doc.get("regions", {}).items():
        where = f"regions.toml [{key}]"
        country = r.get("country")
        if country and country.upper() not in ds.countries:
            raise DatasetError(f"{where}: country {country!r} is not in countries.toml")
        pue = r.get("pue")
        ds.regions[key.lower()] = Region(
            key=key.lower(),
            provider=r["provider"],
            region=r["region"],
            location=r.get("location"),
            country=country.upper() if country else None,
            pue=float(pue) if pue is not None else None,
            pue_source=_source(ds, r.get("source"), where) if pue is not None else None,
        )
    for alias, target in doc.get("aliases", {}).items():
        if target.lower() not in ds.regions:
            raise DatasetError(f"regions.toml [aliases]: {alias!r} points at unknown region {target!r}")
        ds.region_aliases[alias.lower()] = target.lower()


def _load_equivalences(ds: Datasets, doc: dict[str, Any]) -> None:
    for key, e in doc.get("equivalences", {}).items():
        if e.get("verified", True) is False:
            continue  # transcribed from a secondary copy, not yet checked against its source
        basis = e.get("basis", "carbon")
        per = e.get("g_co2e_per_unit") if basis == "carbon" else e.get("wh_per_unit")
        if per is None:
            raise DatasetError(f"equivalences.toml [{key}]: missing the per-unit figure for basis {basis!r}")
        ds.equivalences[key] = Equivalence(
            key=key,
            label=e["label"],
            unit=e.get("unit", ""),
            per_unit=float(per),
            basis=basis,
            source=_source(ds, e.get("source"), f"equivalences.toml [{key}]"),
            derivation=e.get("derivation"),
        )


@cache
def load() -> Datasets:
    """All bundled datasets, parsed and derived once per process."""
    docs: dict[str, dict[str, Any]] = {}
    digest = hashlib.sha256()
    for name in DATA_FILES:
        doc, raw = _read(name)
        docs[name] = doc
        digest.update(name.encode() + b"\0" + raw)
    ds = Datasets(version="", digest=digest.hexdigest())
    for name in DATA_FILES:
        _sources(ds, docs[name], name)
    _load_models(ds, docs["models.toml"])
    _load_parameters(ds, docs["parameters.toml"])
    _load_classes(ds, docs["classes.toml"])
    _load_families(ds, docs["families.toml"])
    _load_media(ds, docs["media.toml"])
    _load_factors(ds, docs["factors.toml"])
    _load_countries(ds, docs["countries.toml"])
    _load_regions(ds, docs["regions.toml"])
    _load_equivalences(ds, docs["equivalences.toml"])
    return ds
