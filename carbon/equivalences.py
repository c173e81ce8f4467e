"""Relatable equivalences for reports ("the same as driving N miles in a petrol car")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .datasets import load


@dataclass(frozen=True, slots=True)
class Equivalent:
    key: str
    label: str
    unit: str
    amount: float
    per_unit: float
    basis: str
    source: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "unit": self.unit,
            "amount": self.amount,
            "per_unit": self.per_unit,
            "basis": self.basis,
            "source": self.source,
        }


def equivalents(carbon_gco2e: float, energy_wh: float) -> list[Equivalent]:
    """Every bundled equivalence for an amount of carbon (and energy, for energy-based ones)."""
    out = []
    for e in load().equivalences.values():
        value = carbon_gco2e if e.basis == "carbon" else energy_wh
        out.append(Equivalent(e.key, e.label, e.unit, value / e.per_unit, e.per_unit, e.basis, e.source.to_dict()))
    return out
