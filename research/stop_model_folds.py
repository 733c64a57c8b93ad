"""How much does the stop model buy on functions it was not fitted on, and
which functions should it be fitted on? On the decisions `mesp
stop-decisions` writes (the validation functions' platform mix, or with
--fit-decisions the fit functions'), each candidate's p_invoke is scored
as the default threshold is chosen: the fewest cold starts on the mix with
idle minutes at most keepalive10's and the silent copies warm at most 1%
of their minutes (a fine threshold grid, no bootstrap), and the fewest with
no bound on the silent copies.

    bin/mesp stop-decisions --data ../shared/data/azure2019-invitro-dev.csv.gz --models models \\
        --out out/stop-decisions.parquet
    bin/mesp stop-decisions ... --functions fit --out out/stop-decisions-fit.parquet
    python research/stop_model_folds.py [--fit-decisions out/stop-decisions-fit.parquet]

Rows: the served p_invoke; the stop model fitted on every validation
decision the timers' expert does not answer (its minutes keep the served
p_invoke) and scored on them (in-sample); two-fold cross-fits over the
validation functions (each half scored by the model fitted on the other,
two random splits); and, with --fit-decisions, the model fitted on the fit
functions scored on the validation functions.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from mesp_training.stop import FEATURES, fit

KEEPALIVE = 10  # keepalive10 keeps an instance warm up to 10 minutes after a call
SILENT_SHARE = 0.01


def load(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    t = pq.read_table(path)
    cols = {c: t.column(c).to_numpy() for c in t.column_names}
    return np.column_stack([cols[c] for c in FEATURES]), cols["invoked"].astype(float), cols


def scorer(y: np.ndarray, cols: dict[str, np.ndarray]) -> Callable[[np.ndarray, float], str]:
    idle = np.rint(np.expm1(cols["log_idle"]))
    active = cols["silent_hours"] == 0
    warm_ka = idle <= KEEPALIVE - 1
    invoked = y > 0
    ref_cold = int((active & invoked & ~warm_ka).sum())
    ref_idle = int((active & ~invoked & warm_ka).sum() + (~active & warm_ka).sum())
    silent_minutes = int((~active).sum())

    def best(q: np.ndarray, share: float) -> str:
        out = None
        for th in np.geomspace(1e-4, 0.3, 500):
            w = q >= th
            cold = int((active & invoked & ~w).sum())
            idle_m = int((active & ~invoked & w).sum() + (~active & w).sum())
            silent = float((~active & w).sum()) / silent_minutes
            if idle_m <= ref_idle and silent <= share and (out is None or cold < out[1]):
                out = (th, cold, idle_m / ref_idle, silent)
        if out is None:
            return "none qualifies"
        return (f"{out[1]} cold starts ({out[1] / ref_cold:.3f}x keepalive10's {ref_cold}) at threshold {out[0]:.4f}, "
                f"idle {out[2]:.3f}x, silent copies warm {100 * out[3]:.2f}%")

    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--decisions", type=Path, default=Path("out/stop-decisions.parquet"))
    ap.add_argument("--fit-decisions", type=Path)
    a = ap.parse_args()
    x, y, cols = load(a.decisions)
    best = scorer(y, cols)
    # the timers' minutes keep the served p_invoke (their floor and cap answer them)
    ours = ~cols["timer"]

    def answered(q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        out = cols["p_invoke"].copy()
        out[rows] = q
        return out

    rows = {"served p_invoke": cols["p_invoke"],
            "stop model, in-sample": answered(fit(x[ours], y[ours]).predict(x[ours]), ours)}
    fn = cols["function"]
    for seed in (0, 1):
        half = np.random.default_rng(seed).permutation(int(fn.max()) + 1)[fn] % 2
        q = cols["p_invoke"].copy()
        for k in (0, 1):
            train, score = ours & (half != k), ours & (half == k)
            q[score] = fit(x[train], y[train]).predict(x[score])
        rows[f"stop model, two-fold cross-fit (split {seed})"] = q
    if a.fit_decisions is not None:
        xf, yf, cf = load(a.fit_decisions)
        theirs = ~cf["timer"]
        rows["stop model fitted on the fit functions"] = answered(fit(xf[theirs], yf[theirs]).predict(x[ours]), ours)
    for name, q in rows.items():
        print(f"{name}:\n  silent <= 1%: {best(q, SILENT_SHARE)}\n  no bound:     {best(q, 1.0)}")


if __name__ == "__main__":
    main()
