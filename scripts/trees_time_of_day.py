"""Does the time of day help the count trees? (validation functions only)

The count trees (`mesp_training.count_trees`) see a 240-minute window and
nothing else; the LightGBM peer also reads the time of day. This fits the
trees twice on the training part's fit functions, early-stopped on the
even-numbered validation functions as `train-trees` does: once as shipped
and once with the window's last minute of the day (minute / 1440) as one
more feature; both are scored on the odd-numbered validation functions,
alone and blended with the served forecast (soft routing as the manifest
says), in WAPE before and after rounding to whole invocations.

    python scripts/trees_time_of_day.py [--models models] [--rounds 150]

A request carries no timestamp today, so this measures whether adding one
to the count path would pay before any of that plumbing is built.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import lightgbm as lgb
import numpy as np

from mesp_training import count_trees
from mesp_training.contract import HORIZON, read_clusters, read_manifest, whole_invocations
from mesp_training.data import EVAL_ORIGINS, train_origins
from mesp_training.pipeline import load_cluster
from mesp_training.routing import Router
from mesp_training.soft_routing import served_forecast

WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5)


def rows(series: np.ndarray, origins: list[int] | tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Features, targets, levels and the time of day of every window."""
    xs, ys, ss, ts = [], [], [], []
    for t in origins:
        w, y = count_trees.windows(series, (t,))
        if len(w) == 0:
            continue
        f, s = count_trees.features(w)
        xs.append(f)
        ys.append(y)
        ss.append(s)
        ts.append(np.full(len(w), t / 1440.0, np.float32))
    return np.concatenate(xs), np.concatenate(ys).astype(np.float64), np.concatenate(ss), np.concatenate(ts)


def fit_predict(train: tuple[np.ndarray, ...], stop: tuple[np.ndarray, ...], held: tuple[np.ndarray, ...],
                with_time: bool, rounds: int) -> np.ndarray:
    """One booster per horizon (count_trees' recipe), its forecasts of held."""
    (x, y, s, t), (xv, yv, sv, tv), (xh, _, sh, th) = train, stop, held
    if with_time:
        x, xv, xh = np.c_[x, t], np.c_[xv, tv], np.c_[xh, th]
    out = np.zeros((len(xh), HORIZON))
    for h in range(HORIZON):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LightGBM warns about sliced arrays
            d = lgb.Dataset(x, y[:, h] / s, weight=np.sqrt(s))
            dv = lgb.Dataset(xv, yv[:, h] / sv, weight=np.sqrt(sv), reference=d)
            b = lgb.train(count_trees.PARAMS, d, rounds, valid_sets=[dv],
                          callbacks=[lgb.early_stopping(count_trees.EARLY_STOP, verbose=False)])
        out[:, h] = np.maximum(b.predict(xh, num_iteration=b.best_iteration or None), 0) * sh
        if (h + 1) % 20 == 0:
            print(f"[{time.strftime('%H:%M:%S')}] time of day {with_time}: horizon {h + 1}/{HORIZON}",
                  file=sys.stderr, flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--rounds", type=int, default=150, help="at most this many trees per horizon")
    a = ap.parse_args()
    man = read_manifest(a.models)
    if man is None:
        raise SystemExit(f"{a.models}/manifest.json missing")
    cs = read_clusters(a.models / man["clusters"])
    parts = [load_cluster(a.models, cl, 20) for cl in cs["clusters"]]
    train = np.concatenate([p[0] for p in parts]).astype(np.float32)
    val = np.concatenate([p[1] for p in parts]).astype(np.float32)
    stop, held = val[0::2], val[1::2]
    tr = rows(train, train_origins(count_trees.WINDOW, train.shape[1], count_trees.TRAIN_STRIDE))
    st, he = rows(stop, EVAL_ORIGINS), rows(held, EVAL_ORIGINS)
    y = he[1]
    router = Router(cs)
    routed = np.concatenate([served_forecast(a.models, man, router, held, t) for t in EVAL_ORIGINS]).astype(np.float64)

    def wape(p: np.ndarray) -> str:
        return f"{np.abs(p - y).sum() / y.sum():.4f}/{np.abs(whole_invocations(p) - y).sum() / y.sum():.4f}"

    print(f"{len(train)} training functions ({len(tr[0])} windows), {len(held)} held-out validation functions "
          f"x {len(EVAL_ORIGINS)} origins; WAPE before/after rounding")
    print(f"  served: {wape(routed)}")
    for with_time in (False, True):
        trees = fit_predict(tr, st, he, with_time, a.rounds)
        blends = ", ".join(f"{w}: {wape((1 - w) * routed + w * trees)}" for w in WEIGHTS)
        print(f"  trees{' with the time of day' if with_time else ''}: alone {wape(trees)}; blended at {blends}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
