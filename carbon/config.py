"""User overrides: a config file (TOML or YAML) and environment variables, validated with clear errors.

Precedence, highest first: call-site overrides > environment variables > config file > regional data
> global defaults. The file is ``$TAILPIPE_CONFIG`` if set, else ``./tailpipe.toml`` /
``./tailpipe.yaml`` / ``./tailpipe.yml`` when present. See docs/methodology.md for the keys.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any

from .errors import ConfigError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

METHODS = ("shape", "flat")
DEFAULT_METHOD = "shape"

# (min, max) accepted for each numeric factor; outside is almost surely a unit mistake.
_BOUNDS = {
    "pse": (1.0, 2.0),
    "transmission": (1.0, 2.0),
    "pue": (1.0, 5.0),
    "grid": (0.0, 2000.0),
    "wh_per_token": (0.0, 10.0),
}

ENV_VARS = {
    "TAILPIPE_PSE": "pse",
    "TAILPIPE_TRANSMISSION": "transmission",
    "TAILPIPE_PUE": "pue",
    "TAILPIPE_GRID": "grid",
    "TAILPIPE_REGION": "region",
    "TAILPIPE_METHOD": "method",
}


def check_number(key: str, value: Any, where: str) -> float:
    """A finite number within the plausible bounds of `key`, else a ConfigError naming both."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{where}: {key} must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{where}: {key} must be a number, got {value!r}") from None
    lo, hi = _BOUNDS[key]
    if not math.isfinite(number) or not lo <= number <= hi:
        raise ConfigError(f"{where}: {key} = {value!r} is outside the plausible range {lo}..{hi}")
    return number


def check_method(value: Any, where: str) -> str:
    if value not in METHODS:
        raise ConfigError(f"{where}: method must be one of {', '.join(METHODS)}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Overrides:
    """Factors forced for one estimate (call site, CLI flags or environment). Hashable, so cacheable."""

    pse: float | None = None
    transmission: float | None = None
    pue: float | None = None
    grid: float | None = None
    wh_per_token: float | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "overrides") -> Overrides:
        known = {f.name for f in fields(cls)}
        values = {}
        for key, value in data.items():
            if key not in known:
                raise ConfigError(f"{where}: unknown key {key!r} (expected one of {', '.join(sorted(known))})")
            if value is not None:
                values[key] = check_number(key, value, where)
        return cls(**values)

    def merged_over(self, base: Overrides) -> Overrides:
        """These overrides, with `base` filling the gaps."""
        return Overrides(
            **{
                f.name: getattr(self, f.name) if getattr(self, f.name) is not None else getattr(base, f.name)
                for f in fields(self)
            }
        )

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))


@dataclass(frozen=True, slots=True)
class CustomRegion:
    key: str
    pue: float | None = None
    grid: float | None = None
    country: str | None = None


@dataclass(frozen=True, slots=True)
class CustomModel:
    id: str
    wh_per_token: float | None = None
    params_b: float | None = None
    same_as: str | None = None
    aliases: tuple[str, ...] = ()
    source: str = "user config"


@dataclass(frozen=True, slots=True, eq=False)
class Config:
    """Compared and hashed by identity: one object per loaded configuration, usable as a cache key."""

    path: str | None = None
    method: str = DEFAULT_METHOD
    region: str | None = None
    forced: Overrides = field(default_factory=Overrides)  # environment variables
    pse: float | None = None
    transmission: float | None = None
    default_pue: float | None = None
    default_grid: float | None = None
    regions: Mapping[str, CustomRegion] = field(default_factory=dict)
    models: Mapping[str, CustomModel] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)
    firehose: Mapping[str, Any] = field(default_factory=dict)
    """The raw [firehose] table (delivery and data residency), validated by tailpipe_ai.exporter.residency."""


_TOP_KEYS = {"method", "region", "factors", "defaults", "regions", "models", "aliases", "firehose"}


def _table(doc: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: [{key}] must be a table, got {value!r}")
    return value


def _only(keys: set[str], table: Mapping[str, Any], where: str) -> None:
    for key in table:
        if key not in keys:
            raise ConfigError(f"{where}: unknown key {key!r} (expected one of {', '.join(sorted(keys))})")


def parse_config(doc: Any, where: str) -> Config:
    """Validate a parsed config document (from TOML or YAML)."""
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{where}: the top level must be a table/mapping")
    _only(_TOP_KEYS, doc, where)
    method = check_method(doc.get("method", DEFAULT_METHOD), f"{where}: method")
    region = doc.get("region")
    if region is not None and not isinstance(region, str):
        raise ConfigError(f"{where}: region must be a string such as 'aws:eu-central-1', got {region!r}")
    factors = _table(doc, "factors", where)
    _only({"pse", "transmission"}, factors, f"{where} [factors]")
    defaults = _table(doc, "defaults", where)
    _only({"pue", "grid"}, defaults, f"{where} [defaults]")

    regions = {}
    for key, r in _table(doc, "regions", where).items():
        w = f"{where} [regions.{key}]"
        if not isinstance(r, Mapping):
            raise ConfigError(f"{w}: must be a table")
        _only({"pue", "grid", "country"}, r, w)
        country = r.get("country")
        if country is not None and not isinstance(country, str):
            raise ConfigError(f"{w}: country must be an ISO code such as 'DE', got {country!r}")
        regions[key.lower()] = CustomRegion(
            key=key.lower(),
            pue=check_number("pue", r["pue"], w) if "pue" in r else None,
            grid=check_number("grid", r["grid"], w) if "grid" in r else None,
            country=country.upper() if country else None,
        )

    models = {}
    for mid, m in _table(doc, "models", where).items():
        w = f"{where} [models.{mid}]"
        if not isinstance(m, Mapping):
            raise ConfigError(f"{w}: must be a table")
        _only({"wh_per_token", "params_b", "same_as", "aliases", "source"}, m, w)
        given = [k for k in ("wh_per_token", "params_b", "same_as") if k in m]
        if len(given) != 1:
            raise ConfigError(f"{w}: give exactly one of wh_per_token, params_b or same_as")
        aliases = m.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise ConfigError(f"{w}: aliases must be a list of strings")
        params = m.get("params_b")
        if params is not None and (isinstance(params, bool) or not isinstance(params, (int, float)) or params <= 0):
            raise ConfigError(f"{w}: params_b must be a positive number of billions, got {params!r}")
        models[mid] = CustomModel(
            id=mid,
            wh_per_token=check_number("wh_per_token", m["wh_per_token"], w) if "wh_per_token" in m else None,
            params_b=float(params) if params is not None else None,
            same_as=str(m["same_as"]) if "same_as" in m else None,
            aliases=tuple(aliases),
            source=str(m.get("source", f"user config {where}")),
        )

    aliases = {}
    for alias, target in _table(doc, "aliases", where).items():
        if not isinstance(target, str):
            raise ConfigError(f"{where} [aliases]: {alias!r} must map to a model id string, got {target!r}")
        aliases[alias] = target

    firehose = _table(doc, "firehose", where)

    return Config(
        path=where,
        method=method,
        region=region,
        pse=check_number("pse", factors["pse"], f"{where} [factors]") if "pse" in factors else None,
        transmission=(
            check_number("transmission", factors["transmission"], f"{where} [factors]")
            if "transmission" in factors
            else None
        ),
        default_pue=check_number("pue", defaults["pue"], f"{where} [defaults]") if "pue" in defaults else None,
        default_grid=(check_number("grid", defaults["grid"], f"{where} [defaults]") if "grid" in defaults else None),
        regions=regions,
        models=models,
        aliases=aliases,
        firehose=dict(firehose),
    )


def read_config_file(path: str | os.PathLike[str]) -> Config:
    """Parse and validate one config file; TOML by default, YAML for .yaml/.yml."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from None
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"config file {p} is not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    else:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
    return parse_config(doc, str(p))


def _env_overrides(env: Mapping[str, str], config: Config) -> Config:
    forced: dict[str, float] = {}
    method, region = config.method, config.region
    for var, key in ENV_VARS.items():
        value = env.get(var)
        if value is None or value == "":
            continue
        if key == "method":
            method = check_method(value, f"environment variable {var}")
        elif key == "region":
            region = value
        else:
            forced[key] = check_number(key, value, f"environment variable {var}")
    return Config(
        path=config.path,
        method=method,
        region=region,
        forced=Overrides(**forced),
        pse=config.pse,
        transmission=config.transmission,
        default_pue=config.default_pue,
        default_grid=config.default_grid,
        regions=config.regions,
        models=config.models,
        aliases=config.aliases,
        firehose=config.firehose,
    )


def load_config(env: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None) -> Config:
    """The effective configuration: config file (if any) plus environment variables."""
    env = os.environ if env is None else env
    path = env.get("TAILPIPE_CONFIG")
    if path:
        config = read_config_file(path)
    else:
        base = Path(cwd) if cwd is not None else Path.cwd()
        found = next(
            (base / n for n in ("tailpipe.toml", "tailpipe.yaml", "tailpipe.yml") if (base / n).is_file()),
            None,
        )
        config = read_config_file(found) if found else Config()
    return _env_overrides(env, config)


@cache
def get_config() -> Config:
    """The process-wide configuration, read once; `reload_config()` reads it again."""
    return load_config()
