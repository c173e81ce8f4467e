"""The carbon methodology: bundled, sourced datasets and the engine turning usage into Wh and gCO2e.

    >>> from tailpipe_ai.carbon import Usage, estimate
    >>> e = estimate(Usage(model="claude-sonnet-4", total_tokens=15_000_000),
    ...              overrides={"pue": 1.35, "grid": 332})
    >>> round(e.energy_wh, 2), round(e.carbon_gco2e, 2)
    (55724.76, 18500.62)

Imports no OpenTelemetry: every integration (SDK instrumentation, proxy, gateway, billing) calls it.
"""

from __future__ import annotations

from .config import Config, Overrides, get_config, load_config, read_config_file
from .datasets import load as load_datasets
from .engine import Estimate, clear_cache, estimate, image_figure, video_figure
from .equivalences import Equivalent, equivalents
from .errors import CarbonError, ConfigError, DatasetError, UnknownRegionError, UsageError
from .pricing import cost_usd
from .regions import Location, resolve_region
from .resolve import ModelMatch, resolve_model
from .usage import Usage


def dataset_version() -> str:
    """Version of the bundled datasets (written into every estimate's factors)."""
    return load_datasets().version


def reload_config() -> Config:
    """Read the config file and TAILPIPE_* environment variables again and drop cached plans."""
    get_config.cache_clear()
    clear_cache()
    return get_config()


__all__ = [
    "CarbonError",
    "Config",
    "ConfigError",
    "DatasetError",
    "Equivalent",
    "Estimate",
    "Location",
    "ModelMatch",
    "Overrides",
    "UnknownRegionError",
    "Usage",
    "UsageError",
    "cost_usd",
    "dataset_version",
    "equivalents",
    "estimate",
    "get_config",
    "image_figure",
    "load_config",
    "load_datasets",
    "read_config_file",
    "reload_config",
    "resolve_model",
    "resolve_region",
    "video_figure",
]
