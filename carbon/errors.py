"""Errors of the carbon engine: each says what was wrong and what to do about it."""

from __future__ import annotations


class CarbonError(ValueError):
    """Base class: bad input to the carbon engine (never raised for an unknown model)."""


class UsageError(CarbonError):
    """A usage figure is invalid (negative, not a number, ...)."""


class UnknownRegionError(CarbonError):
    """A region or country that the bundled data and the user's config do not know."""


class ConfigError(CarbonError):
    """The user's config file or environment variables hold a bad key or value."""


class DatasetError(RuntimeError):
    """A bundled data file is inconsistent: a packaging bug, caught by the test suite."""
