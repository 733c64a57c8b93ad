"""Where the served count forecasts' error lies, on the training part's
validation functions (never the test part): WAPE and MASE median as served
(whole invocations), before rounding and rounded at other points than the
halves, beside oracles that know the actual hour (its median repeated; each minute replaced by
the centred mean of w actual minutes around it, itself included), and the
error's share by the functions that hold most of it and by daily total.

    python research/error_floor.py [--models models]

An oracle is no forecaster: it bounds what a better level or a smoother
shape could buy. Where the served forecast is already near an oracle
that peeks at the minutes it forecasts, the rest of the error is
minute-to-minute noise that no model of the history removes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter1d

from mesp_training.contract import HORIZON, read_clusters, read_manifest, whole_invocations
from mesp_training.data import EVAL_ORIGINS
from mesp_training.pipeline import load_cluster
from mesp_training.routing import Router
from mesp_training.soft_routing import served_forecast

SMOOTHING = (3, 5, 15)
# Other rounding points than the served halves (floor(level + c); served: c = 0.5).
OFFSETS = (0.2, 0.3, 0.4, 0.6, 0.7)
BANDS = ((0.0, 1e3), (1e3, 1e4), (1e4, 1e5), (1e5, np.inf))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--val-percent", type=int, default=20)
    a = ap.parse_args()
    man = read_manifest(a.models)
    if man is None:
        raise SystemExit(f"{a.models}/manifest.json missing")
    cs = read_clusters(a.models / man["clusters"])
    val = np.concatenate([load_cluster(a.models, cl, a.val_percent)[1] for cl in cs["clusters"]])
    router = Router(cs)
    names = ["served", "served before rounding", *(f"floor(level + {c})" for c in OFFSETS), "naive",
             "oracle: the hour's median", *(f"oracle: centred mean of {w}" for w in SMOOTHING)]
    err = {n: np.zeros(len(val)) for n in names}
    actual = np.zeros(len(val))
    for t in EVAL_ORIGINS:
        y = val[:, t:t + HORIZON].astype(np.float64)
        level = served_forecast(a.models, man, router, val, t)
        preds = [whole_invocations(level), level, *(np.floor(level + c) for c in OFFSETS), np.repeat(val[:, t - 1:t], HORIZON, 1),
                 np.repeat(np.median(y, axis=1, keepdims=True), HORIZON, 1),
                 *(uniform_filter1d(y, w, axis=1, mode="nearest") for w in SMOOTHING)]
        for n, p in zip(names, preds, strict=True):
            err[n] += np.abs(p - y).sum(axis=1)
        actual += y.sum(axis=1)
    total = actual.sum()
    # MASE as `mesp eval` has it: a function's MAE over the naive one-step
    # MAE of its minutes 1..1080 (1 where that is 0).
    scale = np.abs(np.diff(val[:, :EVAL_ORIGINS[0]].astype(np.float64), axis=1)).mean(axis=1)
    scale[scale == 0] = 1.0
    print(f"{len(val)} validation functions x {len(EVAL_ORIGINS)} origins")
    for n in names:
        mase = err[n] / (len(EVAL_ORIGINS) * HORIZON) / scale
        print(f"  {n}: WAPE {err[n].sum() / total:.4f}, MASE median {np.median(mase):.4f}")
    served = err["served"]
    order = np.argsort(-served)
    for k in (1, 5, 10, 20, 50):
        print(f"  the {k} functions with the most served error: {served[order[:k]].sum() / served.sum():.1%} "
              f"of it, {actual[order[:k]].sum() / total:.1%} of the invocations")
    daily = val.sum(axis=1)
    for lo, hi in BANDS:
        m = (daily >= lo) & (daily < hi)
        print(f"  daily total {lo:g}..{hi:g}: {m.sum()} functions, {served[m].sum() / served.sum():.1%} of the error; "
              + ", ".join(f"{n} {err[n][m].sum() / max(actual[m].sum(), 1.0):.4f}" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
