"""One file per model family (a module that satisfies ``Family``); the
search spaces are data (``space.py``)."""

from __future__ import annotations

from typing import Any, Protocol

import optuna
from torch import nn

from . import autoformer, lstm, nbeats, patchtst
from .space import Space, parse_dim, suggest


class Family(Protocol):
    """A model family: the network for an input length and hyper-parameters
    (any left out take ``DEFAULTS``), and ``SPACE``, the hyper-parameters
    the search draws. The network maps scaled counts [B, L] to 60 scaled
    forecasts; ``scaling.Forecaster`` wraps it."""

    DEFAULTS: dict[str, Any]
    SPACE: Space

    def build(self, input_len: int, p: dict[str, Any]) -> nn.Module: ...


FAMILIES: dict[str, Family] = {
    "patchtst": patchtst,
    "autoformer": autoformer,
    "nbeats": nbeats,
    "lstm": lstm,
}


def _family(family: str) -> Family:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[family]


def build(family: str, input_len: int, params: dict[str, Any]) -> nn.Module:
    return _family(family).build(input_len, params)


def spaces(overrides: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every family's space with search.yaml's overrides applied; an unknown
    family or hyper-parameter, or a malformed value, is an error."""
    out: dict[str, dict[str, Any]] = {name: dict(f.SPACE) for name, f in FAMILIES.items()}
    for family, values in (overrides or {}).items():
        fam = _family(family)
        for name, value in (values or {}).items():
            if name not in fam.DEFAULTS:
                raise ValueError(f"spaces.{family}.{name}: not a hyper-parameter of {family} "
                                 f"(known: {sorted(fam.DEFAULTS)})")
            out[family][name] = parse_dim(f"spaces.{family}.{name}", value)
    return out


def space(family: str, trial: optuna.Trial, searched: dict[str, Any] | None = None) -> dict[str, Any]:
    """One draw of a family's hyper-parameters (searched: its space as
    spaces() gives it; the family's own SPACE when None)."""
    return suggest(trial, family, _family(family).SPACE if searched is None else searched)
