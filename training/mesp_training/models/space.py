"""Search spaces as data, as neuralforecast's ``auto.py`` declares them:
per family, each searched hyper-parameter is a list of choices or a range,
and ``search.yaml``'s ``spaces`` section may override any of them (a list
for choices, ``{low: a, high: b}`` for a range, or one value to fix it).
Hyper-parameters a space leaves out take the family's ``DEFAULTS``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna


@dataclass(frozen=True)
class Choice:
    values: tuple[Any, ...]


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int


@dataclass(frozen=True)
class FloatRange:
    low: float
    high: float


Dim = Choice | IntRange | FloatRange
Space = dict[str, Dim]


def parse_dim(where: str, value: Any) -> Dim | Any:
    """A search.yaml value: a list (choices), {low, high} (a range, of ints
    when both are ints) or a scalar (fixed)."""
    if isinstance(value, list):
        if not value:
            raise ValueError(f"{where}: no choices")
        return Choice(tuple(value))
    if isinstance(value, dict):
        if set(value) != {"low", "high"}:
            raise ValueError(f"{where}: a range is {{low, high}}, got {sorted(value)}")
        low, high = value["low"], value["high"]
        if not low <= high:
            raise ValueError(f"{where}: low {low} above high {high}")
        if isinstance(low, int) and isinstance(high, int):
            return IntRange(low, high)
        return FloatRange(float(low), float(high))
    return value


def suggest(trial: optuna.Trial, prefix: str, space: dict[str, Dim | Any]) -> dict[str, Any]:
    """One draw from the space; Optuna's names are prefixed by the family."""
    out: dict[str, Any] = {}
    for name, dim in space.items():
        key = f"{prefix}_{name}"
        if isinstance(dim, Choice):
            out[name] = trial.suggest_categorical(key, list(dim.values))
        elif isinstance(dim, IntRange):
            out[name] = trial.suggest_int(key, dim.low, dim.high)
        elif isinstance(dim, FloatRange):
            out[name] = trial.suggest_float(key, dim.low, dim.high)
        else:
            out[name] = dim  # fixed by the configuration
    return out
