"""One file per model family (a module that satisfies ``Family``)."""

from __future__ import annotations

from typing import Any, Protocol

import optuna
from torch import nn

from . import autoformer, lstm, nbeats, patchtst


class Family(Protocol):
    """A model family: the network for an input length and hyper-parameters,
    and its Optuna search space. The network maps scaled counts [B, L] to
    60 scaled forecasts; ``scaling.Forecaster`` wraps it."""

    def build(self, input_len: int, p: dict[str, Any]) -> nn.Module: ...

    def space(self, trial: optuna.Trial) -> dict[str, Any]: ...


FAMILIES: dict[str, Family] = {
    "patchtst": patchtst,
    "autoformer": autoformer,
    "nbeats": nbeats,
    "lstm": lstm,
}


def build(family: str, input_len: int, params: dict[str, Any]) -> nn.Module:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[family].build(input_len, params)


def space(family: str, trial: optuna.Trial) -> dict[str, Any]:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[family].space(trial)
