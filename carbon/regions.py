"""Resolve where energy was used to a PUE and a grid carbon intensity, each with its source.

Accepted forms: ``aws:eu-central-1``, ``azure:westeurope``, ``gcp:europe-west4`` (``google:`` too), a
bare region id when only one provider has it (``eu-central-1``), billing codes and display names
(``EUC1``, ``West Europe``), countries (``country:DE``, ``DE``, ``DEU``, ``Germany``), ``world``/``global``,
and regions the user's config defines. A data-centre region gives its own (or its provider's fleet)
PUE and its country's grid; a country gives its grid and the global PUE.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache

from .config import Config, get_config
from .datasets import Datasets, Factor, GridArea, Source, load
from .errors import UnknownRegionError

_PROVIDER_SYNONYMS = {
    "aws": "aws",
    "amazon": "aws",
    "azure": "azure",
    "microsoft": "azure",
    "gcp": "gcp",
    "google": "gcp",
    "googlecloud": "gcp",
}
_USER_SOURCE = Source(key="user-config", title="user configuration", url="", year=None, licence="n/a")


@dataclass(frozen=True, slots=True)
class Location:
    """The PUE and grid intensity that apply to one estimate, with where each came from."""

    key: str | None  # canonical region key, 'country:DE', or None for global defaults
    label: str
    pue: float
    pue_source: Source
    pue_scope: str  # regional | fleet | country-default | global | user
    grid: float
    grid_source: Source
    grid_scope: str  # country | global | user
    grid_area: str | None = None
    grid_year: int | None = None


def _global(ds: Datasets, label: str = "global average (location unknown)") -> Location:
    pue: Factor = ds.factors["pue"]
    grid: Factor = ds.factors["grid"]
    return Location(
        None,
        label,
        pue.value,
        pue.source,
        "global",
        grid.value,
        grid.source,
        "global",
        "world",
        grid.source.year,
    )


def _country_location(
    ds: Datasets, area: GridArea, key: str, label: str, pue: Factor | None = None, pue_scope: str = "global"
) -> Location:
    p = pue or ds.factors["pue"]
    return Location(key, label, p.value, p.source, pue_scope, area.grid, area.source, "country", area.key, area.year)


def _find_country(ds: Datasets, text: str) -> GridArea | None:
    t = text.strip()
    if t.lower().startswith("country:"):
        t = t.split(":", 1)[1].strip()
    up = t.upper()
    if len(up) == 2 and up in ds.countries:
        return ds.countries[up]
    for area in ds.countries.values():
        if (area.iso3 and area.iso3 == up) or area.name.lower() == t.lower():
            return area
    return None


def _region_key(ds: Datasets, text: str) -> str | None:
    t = text.strip().lower()
    if ":" in t:
        provider, _, name = t.partition(":")
        provider = _PROVIDER_SYNONYMS.get(provider.replace(" ", ""), provider)
        key = f"{provider}:{name.strip()}"
        return key if key in ds.regions else None
    if t in ds.region_aliases:
        return ds.region_aliases[t]
    matches = [k for k, r in ds.regions.items() if r.region.lower() == t]
    return matches[0] if len(matches) == 1 else None


def _resolve(spec: str | None, config: Config) -> Location:
    ds = load()
    if spec is None or not spec.strip():
        spec = config.region
    if spec is None or not spec.strip() or spec.strip().lower() in ("world", "global"):
        loc = _global(ds)
        return _apply_defaults(loc, config)

    custom = config.regions.get(spec.strip().lower())
    key = _region_key(ds, spec)
    if key is not None:
        region = ds.regions[key]
        if region.pue is not None:
            pue = Factor(key=f"pue:{key}", label=f"PUE of {key}", value=region.pue, source=region.pue_source)  # type: ignore[arg-type]
            scope = "regional"
        else:
            pue = ds.fleet.get(region.provider) or ds.factors["pue"]
            scope = "fleet" if region.provider in ds.fleet else "global"
        label = f"{key}" + (f" ({region.location})" if region.location else "")
        country = ds.countries.get(region.country or "")
        if country is not None:
            loc = _country_location(ds, country, key, label, pue, scope)
        else:
            g = ds.factors["grid"]
            loc = Location(
                key, label, pue.value, pue.source, scope, g.value, g.source, "global", "world", g.source.year
            )
        custom = custom or config.regions.get(key)
        return _apply_custom(ds, loc, custom)

    country = _find_country(ds, spec)
    if country is not None:
        loc = _country_location(ds, country, f"country:{country.key}", f"{country.name} ({country.key})")
        return _apply_custom(ds, _apply_defaults(loc, config, grid=False), custom)

    if custom is not None:  # a region only the user's config knows (on-premises, another cloud)
        base = _apply_defaults(_global(ds, f"{custom.key} (user-defined)"), config)
        if custom.country:
            area = ds.countries.get(custom.country)
            if area is None:
                raise UnknownRegionError(
                    f"config region {custom.key!r} names country {custom.country!r}, which is not an ISO code "
                    "in the bundled grid data; use a two-letter code such as 'DE'"
                )
            base = _country_location(ds, area, custom.key, f"{custom.key} (user-defined, {area.name})")
            base = _apply_defaults(base, config, grid=False)
        return _apply_custom(ds, Location(custom.key, *_fields_after_key(base)), custom)

    known = list(ds.regions) + [f"country:{c}" for c in ds.countries]
    close = difflib.get_close_matches(spec.strip().lower(), known, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownRegionError(
        f"unknown region {spec!r}: use provider:region (e.g. aws:eu-central-1, azure:westeurope, "
        f"gcp:europe-west4), a country code (e.g. DE), or define it under [regions] in your config.{hint}"
    )


def _fields_after_key(loc: Location) -> tuple:
    return (
        loc.label,
        loc.pue,
        loc.pue_source,
        loc.pue_scope,
        loc.grid,
        loc.grid_source,
        loc.grid_scope,
        loc.grid_area,
        loc.grid_year,
    )


def _apply_defaults(loc: Location, config: Config, grid: bool = True) -> Location:
    """The config's [defaults] replace the global PUE (and grid) when no data centre is known."""
    pue, pue_src, pue_scope = loc.pue, loc.pue_source, loc.pue_scope
    g, g_src, g_scope = loc.grid, loc.grid_source, loc.grid_scope
    if config.default_pue is not None and loc.pue_scope == "global":
        pue, pue_src, pue_scope = config.default_pue, _user_source(config), "user"
    if grid and config.default_grid is not None and loc.grid_scope == "global":
        g, g_src, g_scope = config.default_grid, _user_source(config), "user"
    return Location(loc.key, loc.label, pue, pue_src, pue_scope, g, g_src, g_scope, loc.grid_area, loc.grid_year)


def _apply_custom(ds: Datasets, loc: Location, custom) -> Location:
    if custom is None:
        return loc
    src = Source(
        key="user-config",
        title=f"user configuration [regions.{custom.key}]",
        url="",
        year=None,
        licence="n/a",
    )
    pue, pue_src, pue_scope = loc.pue, loc.pue_source, loc.pue_scope
    g, g_src, g_scope = loc.grid, loc.grid_source, loc.grid_scope
    if custom.pue is not None:
        pue, pue_src, pue_scope = custom.pue, src, "user"
    if custom.grid is not None:
        g, g_src, g_scope = custom.grid, src, "user"
    return Location(loc.key, loc.label, pue, pue_src, pue_scope, g, g_src, g_scope, loc.grid_area, loc.grid_year)


def _user_source(config: Config) -> Source:
    if config.path:
        return Source(
            key="user-config",
            title=f"user configuration {config.path} [defaults]",
            url="",
            year=None,
            licence="n/a",
        )
    return _USER_SOURCE


@lru_cache(maxsize=1024)
def _resolve_cached(spec: str | None, config: Config) -> Location:
    return _resolve(spec, config)


def resolve_region(spec: str | None, config: Config | None = None) -> Location:
    """PUE and grid intensity for a region spec; raises UnknownRegionError with suggestions if unknown."""
    return _resolve_cached(spec, config if config is not None else get_config())
