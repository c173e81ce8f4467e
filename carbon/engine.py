"""The carbon engine: usage -> energy (Wh) and carbon (gCO2e), with ranges and every factor's source.

    energy_Wh = IT_Wh x PSE x TL x PUE
    IT_Wh     = tokens x Wh_per_token                         (flat: the seed's formula)
              = input x a + output x b + requests x c         (shape: fitted per token kind)
              + images x Wh_per_image(size, quality) + seconds x Wh_per_second(resolution)
    carbon_g  = energy_Wh / 1000 x grid_gCO2e_per_kWh

Everything that depends only on (model, region, method, overrides, config) is computed once into a
plan and cached, so the per-call work is a few multiplications (benchmarks/estimate.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .config import METHODS, Config, Overrides, check_method, get_config
from .datasets import Datasets, Figure, MediaFigure, load
from .errors import UsageError
from .regions import Location, resolve_region
from .resolve import ModelMatch, resolve_model
from .usage import Usage


@dataclass(slots=True)
class Estimate:
    """Energy and carbon of one usage, with the range, the method and every factor used."""

    energy_wh: float
    energy_wh_min: float
    energy_wh_max: float
    carbon_gco2e: float
    carbon_gco2e_min: float
    carbon_gco2e_max: float
    method: str
    model: ModelMatch
    location: Location
    factors: Mapping[str, Any]
    flags: tuple[str, ...]

    @property
    def energy_kwh(self) -> float:
        return self.energy_wh / 1000.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what records and `tailpipe estimate --json` carry)."""
        return {
            "energy_wh": self.energy_wh,
            "energy_wh_min": self.energy_wh_min,
            "energy_wh_max": self.energy_wh_max,
            "carbon_gco2e": self.carbon_gco2e,
            "carbon_gco2e_min": self.carbon_gco2e_min,
            "carbon_gco2e_max": self.carbon_gco2e_max,
            "method": self.method,
            "flags": list(self.flags),
            "factors": _plain(self.factors),
        }


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _figure_for(ds: Datasets, match: ModelMatch) -> tuple[Figure, dict[str, Any]]:
    """The IT-side figure that applies to a resolved model, and how it was chosen (for `factors`)."""
    info: dict[str, Any] = {"requested": match.requested, "kind": match.kind}
    entry = match.entry
    if entry is not None:
        info["resolved"] = entry.id
        info["name"] = entry.name
    if match.via:
        info["via"] = match.via
    if match.kind in ("measured", "published"):
        assert entry is not None and entry.figure is not None
        info["size_class"] = entry.size_class
        info["source"] = entry.source.to_dict() if entry.source else None
        if entry.host_pue and entry.host_pue != 1.0:
            info["source_pue_divided_out"] = {
                "value": entry.host_pue,
                "host": entry.host,
                "source": entry.host_pue_source.to_dict() if entry.host_pue_source else None,
            }
        return entry.figure, info
    if match.kind == "custom":
        v = match.custom_wh_per_token or 0.0
        info["source"] = {"title": match.custom_source}
        return Figure(v, v, v, f"user-configured Wh/token ({match.custom_source})"), info
    if match.size_class is not None:
        cls = ds.classes[match.size_class]
        info["size_class"] = cls.id
        info["class"] = {
            "name": cls.name,
            "members": list(cls.members),
            "derivation": cls.derivation,
            "source": cls.source.to_dict(),
        }
        if entry is not None and entry.source is not None:
            info["parameters_source"] = entry.source.to_dict()
        return cls.figure, info
    g = ds.global_average
    assert g is not None
    info["class"] = {
        "name": g.name,
        "members": list(g.members),
        "derivation": g.derivation,
        "source": g.source.to_dict(),
    }
    return g.figure, info


class Plan:
    """Everything about an estimate except the counts; built once per (model, region, method, overrides)."""

    __slots__ = (
        "fallback_factors",
        "flags",
        "flat",
        "flat_factors",
        "flat_max",
        "flat_min",
        "grid_per_wh",
        "location",
        "location_flags",
        "match",
        "method",
        "mult",
        "shape",
        "shape_factors",
        "shape_max",
        "shape_min",
    )

    def __init__(
        self,
        ds: Datasets,
        match: ModelMatch,
        location: Location,
        method: str,
        overrides: Overrides,
        config: Config,
    ) -> None:
        self.match = match
        self.location = location
        self.method = method
        figure, model_info = _figure_for(ds, match)
        flags = list(match.flags)
        if overrides.wh_per_token is not None:
            v = overrides.wh_per_token
            figure = Figure(v, v, v, "Wh/token given as an override")
            model_info["overridden"] = True
        self.flat, self.flat_min, self.flat_max = figure.flat, figure.flat_min, figure.flat_max
        if figure.shape is not None and overrides.wh_per_token is None:
            self.shape = (
                figure.shape["per_input_token"],
                figure.shape["per_output_token"],
                figure.shape["per_request"],
            )
            self.shape_min = tuple(figure.shape_min[k] for k in ("per_input_token", "per_output_token", "per_request"))  # type: ignore[index]
            self.shape_max = tuple(figure.shape_max[k] for k in ("per_input_token", "per_output_token", "per_request"))  # type: ignore[index]
        else:
            self.shape = self.shape_min = self.shape_max = None

        pse_f, tl_f = ds.factors["pse"], ds.factors["transmission"]
        pse = {"value": pse_f.value, "source": pse_f.source.to_dict(), "derivation": pse_f.derivation}
        tl = {"value": tl_f.value, "source": tl_f.source.to_dict(), "derivation": tl_f.derivation}
        if config.pse is not None:
            pse = {"value": config.pse, "source": {"title": f"user configuration {config.path}"}}
        if config.transmission is not None:
            tl = {"value": config.transmission, "source": {"title": f"user configuration {config.path}"}}
        pue = {"value": location.pue, "scope": location.pue_scope, "source": location.pue_source.to_dict()}
        grid = {
            "value": location.grid,
            "unit": "gCO2e/kWh",
            "scope": location.grid_scope,
            "area": location.grid_area,
            "year": location.grid_year,
            "source": location.grid_source.to_dict(),
        }
        for name, table in (("pse", pse), ("transmission", tl), ("pue", pue), ("grid", grid)):
            forced = getattr(overrides, name)
            if forced is not None:
                table.clear()
                table.update(
                    {
                        "value": forced,
                        "scope": "override",
                        "source": {"title": "override (call site, CLI flag or TAILPIPE_* environment variable)"},
                    }
                )
        if location.key is None and (overrides.pue is None or overrides.grid is None):
            flags.append("location_unknown")
        self.flags = tuple(flags)
        # Media-only usages (an image model) do not depend on the text model's resolution.
        self.location_flags = ("location_unknown",) if "location_unknown" in flags else ()
        self.mult = pse["value"] * tl["value"] * pue["value"]
        self.grid_per_wh = grid["value"] / 1000.0

        common = {
            "dataset_version": ds.version,
            "model": model_info,
            "pse": pse,
            "transmission": tl,
            "pue": pue,
            "grid": grid,
            "region": location.key,
            "region_label": location.label,
        }
        flat = {
            "value": self.flat,
            "min": self.flat_min,
            "max": self.flat_max,
            "unit": "Wh/token",
            "derivation": figure.flat_derivation,
        }
        self.flat_factors = MappingProxyType({**common, "method": "flat", "wh_per_token": flat})
        if method == "flat":
            self.fallback_factors = self.flat_factors
        else:  # shape requested; used when it cannot apply to a usage
            why = (
                "the usage gives only a total token count"
                if figure.shape is not None
                else "no prompt-shape measurements exist for this model"
            )
            self.fallback_factors = MappingProxyType(
                {
                    **common,
                    "method": "flat",
                    "method_requested": "shape",
                    "method_note": f"flat used: {why}",
                    "wh_per_token": flat,
                }
            )
        if self.shape is not None:
            shape = {
                "per_input_token": self.shape[0],
                "per_output_token": self.shape[1],
                "per_request": self.shape[2],
                "min": dict(zip(("per_input_token", "per_output_token", "per_request"), self.shape_min, strict=False)),  # type: ignore[arg-type]
                "max": dict(zip(("per_input_token", "per_output_token", "per_request"), self.shape_max, strict=False)),  # type: ignore[arg-type]
                "unit": "Wh",
                "derivation": figure.shape_derivation,
            }
            self.shape_factors = MappingProxyType({**common, "method": "shape", "shape": shape})
        else:
            self.shape_factors = None

    def apply(self, usage: Usage) -> Estimate:
        """The estimate of a checked `Usage`."""
        media = usage if usage.images or usage.video_seconds else None
        return self.apply_counts(usage.input_tokens, usage.output_tokens, usage.total_tokens, usage.requests, media)

    def apply_counts(
        self,
        i: int | None,
        o: int | None,
        total: int | None = None,
        requests: int | None = 1,
        media: Usage | None = None,
    ) -> Estimate:
        """The estimate of counts already checked (`usage.plain_counts`, or a `Usage`): what `apply` does,
        without a `Usage` for a text call. `media`: the usage whose images and video seconds add energy."""
        t = (total or 0) if i is None and o is None else (i or 0) + (o or 0)  # Usage.text_tokens
        flags = self.flags
        if self.method == "shape" and self.shape is not None and (i is not None or o is not None):
            i = i or 0
            o = o or 0
            r = requests
            if r is None:  # e.g. a billing line: the per-request term cannot be counted
                r = 0
                flags = (*flags, "requests_unknown")
            elif not t:
                r = 0  # no tokens, no energy: a call that produced nothing is not charged a request
            a, b, c = self.shape
            e = a * i + b * o + c * r
            a, b, c = self.shape_min  # type: ignore[misc]
            lo = a * i + b * o + c * r
            a, b, c = self.shape_max  # type: ignore[misc]
            hi = a * i + b * o + c * r
            method, factors = "shape", self.shape_factors
        else:
            e, lo, hi = t * self.flat, t * self.flat_min, t * self.flat_max
            method, factors = "flat", self.fallback_factors
        if media is not None:
            e_media, factors, media_flags = _media(media, factors)  # type: ignore[arg-type]
            e += e_media
            lo += e_media
            hi += e_media
            if t:
                flags = flags + media_flags
            else:
                method = "media"
                flags = self.location_flags + media_flags
        elif not t:
            flags = (*flags, "no_usage")
        m = self.mult
        g = self.grid_per_wh
        e, lo, hi = e * m, lo * m, hi * m
        return Estimate(e, lo, hi, e * g, lo * g, hi * g, method, self.match, self.location, factors, flags)  # type: ignore[arg-type]


_RESOLUTION = re.compile(r"^(\d{3,4})p$")
_DIMENSIONS = re.compile(r"^(\d{2,5})\s*[x×*]\s*(\d{2,5})$")


def image_figure(ds: Datasets, size: str | None, quality: str | None) -> tuple[MediaFigure, tuple[str, ...]]:
    """The seed's per-image figure for a size/quality, or the average (flagged) when it is not in the table."""
    s = (size or "").strip().lower().replace(" ", "")
    s = ds.image_size_aliases.get(s, s)
    q = (quality or "standard").strip().lower()
    q = ds.image_quality_aliases.get(q, q)
    fig = ds.images.get(f"{s}:{q}")
    if fig is not None:
        return fig, ()
    return ds.images["average"], ("image_size_unknown",)


def video_figure(ds: Datasets, resolution: str | None) -> tuple[MediaFigure, tuple[str, ...]]:
    """The seed's per-second figure for a resolution ('720p' or '1280x720'), nearest tier otherwise."""
    r = (resolution or "").strip().lower()
    lines: int | None = None
    m = _RESOLUTION.match(r)
    if m:
        lines = int(m.group(1))
    else:
        m = _DIMENSIONS.match(r)
        if m:
            lines = min(int(m.group(1)), int(m.group(2)))
    if lines is None:
        return ds.video["720p"], ("video_resolution_unknown",)
    tiers = sorted((int(k[:-1]), k) for k in ds.video)
    exact = f"{lines}p"
    if exact in ds.video:
        return ds.video[exact], ()
    flags: tuple[str, ...] = ("video_resolution_nearest",)
    if lines > tiers[-1][0]:
        flags = ("video_resolution_above_table",)
    nearest = min(tiers, key=lambda t: (abs(t[0] - lines), -t[0]))[1]
    return ds.video[nearest], flags


def _media_info(fig: MediaFigure) -> dict[str, Any]:
    info = {"figure": fig.key, "label": fig.label, "source": fig.source.to_dict()}
    if fig.derivation:
        info["derivation"] = fig.derivation
    return info


_media_cache: dict[tuple, tuple[float, float, Mapping[str, Any], tuple[str, ...]]] = {}


def _media(usage: Usage, factors: Mapping[str, Any]) -> tuple[float, Mapping[str, Any], tuple[str, ...]]:
    """Energy of a usage's images and video, and the factors with the media figures added (cached)."""
    has_images, has_video = bool(usage.images), bool(usage.video_seconds)
    key = (id(factors), has_images, usage.image_size, usage.image_quality, has_video, usage.video_resolution)
    hit = _media_cache.get(key)
    if hit is None:
        ds = load()
        extra: dict[str, Any] = {}
        flags: tuple[str, ...] = ()
        wh_image = wh_second = 0.0
        if has_images:
            fig, f = image_figure(ds, usage.image_size, usage.image_quality)
            wh_image, flags = fig.wh, flags + f
            extra["image"] = {**_media_info(fig), "wh_per_image": fig.wh}
        if has_video:
            fig, f = video_figure(ds, usage.video_resolution)
            wh_second, flags = fig.wh, flags + f
            extra["video"] = {**_media_info(fig), "wh_per_second": fig.wh}
        merged = MappingProxyType({**factors, **extra})
        hit = (wh_image, wh_second, merged, flags)
        if len(_media_cache) >= _MAX_PLANS:
            _media_cache.clear()
            _media_bases.clear()
        _media_cache[key] = hit
        _media_bases[key] = factors  # keep the base alive so its id() is never reused while cached
    wh_image, wh_second, merged, flags = hit
    return (usage.images or 0) * wh_image + (usage.video_seconds or 0) * wh_second, merged, flags


_media_bases: dict[tuple, Mapping[str, Any]] = {}
_plans: dict[tuple, Plan] = {}
_MAX_PLANS = 20_000


def clear_cache() -> None:
    """Forget cached plans (after the configuration changed)."""
    _plans.clear()
    _media_cache.clear()
    _media_bases.clear()


def _as_overrides(overrides: Overrides | Mapping[str, Any] | None) -> Overrides:
    if overrides is None:
        return Overrides()
    if isinstance(overrides, Overrides):
        return overrides
    return Overrides.from_mapping(overrides)


def estimate(
    usage: Usage,
    *,
    region: str | None = None,
    method: str | None = None,
    overrides: Overrides | Mapping[str, Any] | None = None,
    config: Config | None = None,
) -> Estimate:
    """Energy and carbon of `usage`.

    region: where the model ran ('aws:eu-central-1', 'DE', ...); None uses the config's region or the
    global defaults. method: 'shape' (default: per-token-kind energy when input/output are known) or
    'flat' (the seed's tokens x Wh/token). overrides: factors forced for this call (pse, transmission,
    pue, grid, wh_per_token). An unknown model never raises; an unknown region raises UnknownRegionError.
    """
    if not isinstance(usage, Usage):
        raise UsageError(f"estimate() takes a Usage, got {type(usage).__name__}")
    return plan_for(usage.model, region, method, overrides, config).apply(usage)


def plan_for(
    model: str | None,
    region: str | None = None,
    method: str | None = None,
    overrides: Overrides | Mapping[str, Any] | None = None,
    config: Config | None = None,
) -> Plan:
    """Everything of an estimate but the counts, for `model` (arguments as `estimate`'s); cached.

    `estimate(usage)` is `plan_for(usage.model, ...).apply(usage)`; a caller holding checked counts and no
    `Usage` (every integration's `records.estimate_call`) calls `apply_counts` on the plan."""
    cfg = config if config is not None else get_config()
    key = (
        model,
        region,
        method,
        overrides if overrides is None or isinstance(overrides, Overrides) else tuple(sorted(overrides.items())),
        cfg,
    )
    plan = _plans.get(key)
    if plan is None:
        ov = _as_overrides(overrides)
        m = check_method(method, "method") if method is not None else cfg.method
        if m not in METHODS:  # pragma: no cover - validated by Config
            m = "shape"
        forced = ov.merged_over(cfg.forced) if cfg.forced else ov
        plan = Plan(load(), resolve_model(model, cfg), resolve_region(region, cfg), m, forced, cfg)
        if len(_plans) >= _MAX_PLANS:
            clear_cache()
        _plans[key] = plan
    return plan
