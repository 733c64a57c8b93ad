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


def _key(prefix: str, name: str) -> str:
    """Optuna's name of a hyper-parameter: prefixed by its family, as
    families share names (layers, dropout)."""
    return f"{prefix}_{name}"


def suggest(trial: optuna.Trial, prefix: str, space: dict[str, Dim | Any]) -> dict[str, Any]:
    """One draw from the space; Optuna's names are prefixed by the family."""
    out: dict[str, Any] = {}
    for name, dim in space.items():
        key = _key(prefix, name)
        if isinstance(dim, Choice):
            out[name] = trial.suggest_categorical(key, list(dim.values))
        elif isinstance(dim, IntRange):
            out[name] = trial.suggest_int(key, dim.low, dim.high)
        elif isinstance(dim, FloatRange):
            out[name] = trial.suggest_float(key, dim.low, dim.high)
        else:
            out[name] = dim  # fixed by the configuration
    return out


def enqueued(prefix: str, space: dict[str, Dim | Any], values: dict[str, Any]) -> dict[str, Any] | None:
    """The Optuna parameters (named as suggest names them) that make suggest
    draw exactly values, for ``study.enqueue_trial``; None where the space
    cannot draw them (a value outside a range or the choices, or other than
    a fixed one)."""
    out: dict[str, Any] = {}
    for name, dim in space.items():
        value = values.get(name)
        if isinstance(dim, Choice):
            ok = value in dim.values
        elif isinstance(dim, IntRange | FloatRange):
            ok = value is not None and dim.low <= value <= dim.high
        else:
            ok = value == dim  # fixed by the configuration: nothing to enqueue
        if not ok:
            return None
        if isinstance(dim, Choice | IntRange | FloatRange):
            out[_key(prefix, name)] = value
    return out
