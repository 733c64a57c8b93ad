"""Do more inputs help the count trees? (validation functions only)

The count trees (`mesp_training.count_trees`) were first fitted on a
240-minute window alone. Two inputs they could also read: the time of day (the
LightGBM peer reads it; a request carries no timestamp today), and the
features of the dense p_invoke graph (its second output `p_features`: a
day's context, such as minutes since the last invocation and the hourly
lags; the server computes them for every pre-warm answer). This fits the
trees once per variant on the training part's fit functions, early-stopped
on the even-numbered validation functions as `train-trees` does, and
scores each on the odd-numbered validation functions, alone and blended
with the routed forecast (soft routing as the manifest says, no trees), in
WAPE before and after rounding to whole invocations. (The p_features
variant won and serves: `train-trees` fits it by default.)

    python research/trees_extra_inputs.py [--models models] [--rounds 150] [--variants none,time,p_features]

It measures whether an input would pay before any serving plumbing for it
is built.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
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
VARIANTS = ("none", "time", "p_features")

Extra = Callable[[np.ndarray, int], np.ndarray]


def rows(series: np.ndarray, origins: list[int] | tuple[int, ...],
         extras: dict[str, Extra]) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Features, targets and levels of every window, and each extra
    input's columns for the same windows."""
    xs, ys, ss = [], [], []
    more: dict[str, list[np.ndarray]] = {k: [] for k in extras}
    for t in origins:
        w, y = count_trees.windows(series, (t,))  # every function, or none at this origin
        if len(w) == 0:
            continue
        f, s = count_trees.features(w)
        xs.append(f)
        ys.append(y)
        ss.append(s)
        for k, fn in extras.items():
            more[k].append(fn(series, t))
    return (np.concatenate(xs), np.concatenate(ys).astype(np.float64), np.concatenate(ss),
            {k: np.concatenate(v) for k, v in more.items()})


def fit_predict(train: tuple, stop: tuple, held: tuple, extra: str | None, rounds: int) -> np.ndarray:
    """One booster per horizon (count_trees' recipe), its forecasts of held."""
    (x, y, s, ex), (xv, yv, sv, exv), (xh, _, sh, exh) = train, stop, held
    if extra is not None:
        x, xv, xh = np.c_[x, ex[extra]], np.c_[xv, exv[extra]], np.c_[xh, exh[extra]]
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
            print(f"[{time.strftime('%H:%M:%S')}] {extra or 'as shipped'}: horizon {h + 1}/{HORIZON}",
                  file=sys.stderr, flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--rounds", type=int, default=150, help="at most this many trees per horizon")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    a = ap.parse_args()
    variants = a.variants.split(",")
    if not variants or any(v not in VARIANTS for v in variants):
        raise SystemExit(f"--variants: {a.variants!r}: name some of {', '.join(VARIANTS)}")
    man = read_manifest(a.models)
    if man is None:
        raise SystemExit(f"{a.models}/manifest.json missing")
    cs = read_clusters(a.models / man["clusters"])
    parts = [load_cluster(a.models, cl, 20) for cl in cs["clusters"]]
    train = np.concatenate([p[0] for p in parts]).astype(np.float32)
    val = np.concatenate([p[1] for p in parts]).astype(np.float32)
    stop, held = val[0::2], val[1::2]

    extras: dict[str, Extra] = {}
    if "time" in variants:
        extras["time"] = lambda series, t: np.full((len(series), 1), t / 1440.0, np.float32)
    if "p_features" in variants:
        extras["p_features"] = count_trees.dense_features(a.models / man["dense"]["p_invoke"]["file"])
    tr = rows(train, train_origins(count_trees.WINDOW, train.shape[1], count_trees.TRAIN_STRIDE), extras)
    st, he = rows(stop, EVAL_ORIGINS, extras), rows(held, EVAL_ORIGINS, extras)
    y = he[1]
    router = Router(cs)
    routed = np.concatenate([served_forecast(a.models, man, router, held, t) for t in EVAL_ORIGINS]).astype(np.float64)

    def wape(p: np.ndarray) -> str:
        return f"{np.abs(p - y).sum() / y.sum():.4f}/{np.abs(whole_invocations(p) - y).sum() / y.sum():.4f}"

    print(f"{len(train)} training functions ({len(tr[0])} windows), {len(held)} held-out validation functions "
          f"x {len(EVAL_ORIGINS)} origins; WAPE before/after rounding")
    print(f"  served: {wape(routed)}", flush=True)
    for v in variants:
        trees = fit_predict(tr, st, he, None if v == "none" else v, a.rounds)
        blends = ", ".join(f"{w}: {wape((1 - w) * routed + w * trees)}" for w in WEIGHTS)
        print(f"  trees{'' if v == 'none' else ' with ' + v}: alone {wape(trees)}; blended at {blends}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
