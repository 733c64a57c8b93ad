"""The gradient-boosted peer of the next-hour count forecast (EVALUATION.md,
"Reference points measured later"): one global LightGBM model per horizon
(direct, 60 models) on lags 1..60 and 75..240 every 15 minutes, rolling
means and the time of day, each window scaled by 1 + the mean of its last 60
minutes, L1 loss weighted by the square root of that level. This is the
recipe the team measured with Nixtla's mlforecast, written out in LightGBM
directly (mlforecast would add numba and its tree to the locked
environment for the same model).

Fitted on the training part's fit functions (the clusters' Parquet files,
test functions dropped), early-stopped on its validation functions at the
evaluation origins; it forecasts the evaluated functions at every origin
and writes ``function,origin,h1..h60`` for ``mesp eval --peer-counts``,
which scores it beside MESP on the same rows. Cached by the hash of its
inputs, so `make eval` stays quick when nothing changed.

    python scripts/peer_lightgbm_counts.py --models models --eval out/eval-test.parquet --out out/peer-counts.csv

With ``--mean`` it is the peer's mean form (``peer_lightgbm_mean``,
``mesp eval --peer-mean``): the same models fitted to Tweedie deviance
(variance power 1.5, log link) weighted by the level, whose optimum is the
expected count rather than the median; each answer is kept at most the
largest scaled target of the fit (a log link can extrapolate a rare
window far past anything seen).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import peer_cache

from mesp_training.contract import HORIZON, read_cluster_parquet
from mesp_training.data import EVAL_ORIGINS

LAGS = (*range(1, 61), *range(75, 241, 15))
MEANS = (15, 60, 240)
MIN_HISTORY = 240
TRAIN_STRIDE = 30
# About 10 minutes on 2 cores for the 60 models (the peer's budget).
PARAMS = {"objective": "l1", "learning_rate": 0.05, "num_leaves": 63, "min_data_in_leaf": 50, "max_bin": 63,
          "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "verbose": -1, "seed": 1}
ROUNDS = 300
MEAN_PARAMS = PARAMS | {"objective": "tweedie", "tweedie_variance_power": 1.5}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] peer_lightgbm_counts: {msg}", file=sys.stderr, flush=True)


def features(series: np.ndarray, origins: list[int] | tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows (function, origin) in that order: scaled features, the scale,
    and the scaled targets [rows, HORIZON] (NaN past the day's end)."""
    n, m = series.shape
    xs, scales, ys = [], [], []
    for t in origins:
        hist = series[:, :t]
        s = 1.0 + hist[:, -60:].mean(axis=1)
        cols = [hist[:, t - k] for k in LAGS]
        cols += [hist[:, -w:].mean(axis=1) for w in MEANS]
        cols.append(hist[:, -60:].std(axis=1))
        f = np.stack(cols, axis=1) / s[:, None]
        f = np.concatenate([f, np.log(s)[:, None], np.full((n, 1), t / 1440.0)], axis=1)
        y = np.full((n, HORIZON), np.nan)
        end = min(m, t + HORIZON)
        y[:, :end - t] = series[:, t:end]
        xs.append(f)
        scales.append(s)
        ys.append(y / s[:, None])
    return np.concatenate(xs).astype(np.float32), np.concatenate(scales), np.concatenate(ys)


def main(argv: list[str] | None = None) -> int:
    a = peer_cache.parse_args(__doc__, "CSV to write: function,origin,h1..h60", argv,
                              {"mean": "the mean form: Tweedie deviance, the expected count"})
    mean = bool(a.mean)
    params = MEAN_PARAMS if mean else PARAMS
    key = peer_cache.inputs_key(a.models, [Path(__file__), a.eval], "mean" if mean else "")
    if peer_cache.up_to_date(a.out, key):
        log(f"{a.out} is up to date (inputs {key})")
        return 0
    t0 = time.monotonic()
    fit, val = peer_cache.training_part(a.models)
    x, s, y = features(fit, list(range(MIN_HISTORY, fit.shape[1] - HORIZON + 1, TRAIN_STRIDE)))
    xv, sv, yv = features(val, EVAL_ORIGINS)
    log(f"{len(fit)} fit and {len(val)} validation functions: {len(x)} and {len(xv)} windows "
        f"({time.monotonic() - t0:.0f}s)")
    ids, ev = read_cluster_parquet(a.eval)
    xe, se, _ = features(ev.astype(np.float64), EVAL_ORIGINS)
    pred = np.zeros((len(xe), HORIZON))
    val_abs = val_sum = 0.0
    for h in range(HORIZON):
        ok, okv = ~np.isnan(y[:, h]), ~np.isnan(yv[:, h])
        w, wv = (s[ok], sv[okv]) if mean else (np.sqrt(s[ok]), np.sqrt(sv[okv]))
        train = lgb.Dataset(x[ok], y[ok, h], weight=w, free_raw_data=False)
        valid = lgb.Dataset(xv[okv], yv[okv, h], weight=wv, reference=train)
        b = lgb.train(params, train, ROUNDS, valid_sets=[valid], callbacks=[lgb.early_stopping(30, verbose=False)])
        top = float(y[ok, h].max()) if mean else np.inf
        pred[:, h] = np.clip(b.predict(xe, num_iteration=b.best_iteration), 0, top) * se
        pv = np.clip(b.predict(xv[okv], num_iteration=b.best_iteration), 0, top) * sv[okv]
        val_abs += float(np.abs(pv - yv[okv, h] * sv[okv]).sum())
        val_sum += float((yv[okv, h] * sv[okv]).sum())
        if (h + 1) % 10 == 0:
            log(f"horizon {h + 1}/{HORIZON}: {b.best_iteration} trees ({time.monotonic() - t0:.0f}s)")
    log(f"validation WAPE {val_abs / max(val_sum, 1e-9):.4f}")
    header = "function,origin," + ",".join(f"h{h + 1}" for h in range(HORIZON))
    peer_cache.write(a.out, key, header, (
        f"{fid},{t}," + ",".join(f"{v:.6g}" for v in pred[oi * len(ids) + i]) + "\n"
        for oi, t in enumerate(EVAL_ORIGINS) for i, fid in enumerate(ids)))
    log(f"wrote {a.out}: {len(ids)} functions x {len(EVAL_ORIGINS)} origins ({time.monotonic() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
