"""One file per model family; each exposes ``build(input_len, params)`` and
``space(trial)`` (its Optuna search space)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from torch import nn

from . import autoformer, lstm, nbeats, patchtst

Builder = Callable[[int, dict[str, Any]], nn.Module]

FAMILIES: dict[str, Any] = {
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
