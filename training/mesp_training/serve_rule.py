"""Whether a cluster's count expert serves instead of the dense model.

A lower validation MAE alone is not enough. A cluster's validation part is
a few dozen to a few hundred functions and a few busy ones decide its MAE,
so a margin of a percent or two is noise: the shipped set's cluster 5
expert won its 29 validation functions by 0.8% and lost the test part by
10.6%. The expert serves only where it beats the dense model in
WIN_CONFIDENCE of bootstrap resamples of the cluster's validation
functions, both models scored on the same resampled functions (a paired
test: what varies between resamples is which functions count, not which
model gets the easy ones). Fixed before it was run on any cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .contract import HORIZON
from .data import EVAL_ORIGINS
from .soft_routing import forecast_at

WIN_CONFIDENCE = 0.9
BOOTSTRAP = 2000
SEED = 0


@dataclass(frozen=True)
class Verdict:
    """The expert against the dense model on one cluster's validation functions."""

    ratio: float  # the expert's validation MAE over the dense model's
    win_share: float  # share of resamples in which the expert's MAE is lower
    functions: int

    @property
    def serve(self) -> str:
        return "expert" if self.win_share >= WIN_CONFIDENCE else "dense"

    def record(self) -> dict[str, float | int | str]:
        """The manifest's ``serve_rule`` (informational: Go reads ``serve``)."""
        return {"val_mae_ratio": round(self.ratio, 4), "win_share": round(self.win_share, 4),
                "functions": self.functions,
                "rule": f"expert MAE below dense in >= {WIN_CONFIDENCE:.0%} of {BOOTSTRAP} "
                        f"bootstrap resamples of the validation functions"}


def validation_errors(models: Path, entry: dict[str, Any], val: np.ndarray) -> np.ndarray:
    """A count model's absolute error summed per validation function over
    the evaluation origins, from its exported graph (what the server runs)."""
    err = np.zeros(len(val))
    for t in EVAL_ORIGINS:
        err += np.abs(forecast_at(models, entry, val, t) - val[:, t:t + HORIZON]).sum(axis=1)
    return err


def per_minute(errors: np.ndarray) -> float:
    """Per-function error sums as a validation MAE per forecast minute."""
    return float(errors.sum() / (len(errors) * len(EVAL_ORIGINS) * HORIZON)) if len(errors) else float("nan")


def judge(expert: np.ndarray, dense: np.ndarray) -> Verdict:
    """The verdict from per-function absolute errors of the expert and of
    the dense model on the same windows."""
    if expert.shape != dense.shape or expert.ndim != 1:
        raise ValueError(f"per-function errors differ in shape: {expert.shape} vs {dense.shape}")
    n = len(expert)
    if n == 0 or dense.sum() <= 0:
        return Verdict(float("nan"), 0.0, n)
    weights = np.random.default_rng(SEED).multinomial(n, np.full(n, 1 / n), size=BOOTSTRAP).astype(float)
    wins = float((weights @ expert < weights @ dense).mean())
    return Verdict(float(expert.sum() / dense.sum()), wins, n)
