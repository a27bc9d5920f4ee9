"""Argument checks shared by the statistics modules: each raises ValueError naming the argument."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from studyapp.stats.answers import FACTORS

PROCEDURES = ("crossed", "bootstrap")  # how an interval, its p-value and its mark are computed


def check_choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def check_level(confidence_level: float, name: str = "confidence_level") -> float:
    if not 0.0 < confidence_level < 1.0:
        raise ValueError(f"{name}: expected a number in (0, 1), got {confidence_level!r}")
    return float(confidence_level)


def check_random_factors(random_factors: Iterable[str]) -> tuple[str, ...]:
    """Distinct names from FACTORS, returned in FACTORS order."""
    factors = tuple(random_factors)
    unknown = [f for f in factors if f not in FACTORS]
    if unknown or len(set(factors)) != len(factors):
        raise ValueError(f"random_factors: expected distinct names from {FACTORS}, got {list(factors)!r}")
    return tuple(f for f in FACTORS if f in factors)
