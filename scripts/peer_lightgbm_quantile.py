"""The LightGBM quantile peer of the replica simulation (EVALUATION.md
section 4): the count peer's inputs (scripts/peer_lightgbm_counts.py: lags
1..60 and 75..240 every 15 minutes, rolling means, the last hour's spread
and the time of day, each window scaled by 1 + the mean of its last 60
minutes), one LightGBM model per quantile of the next minute's count,
fitted to the pinball loss at that quantile, weighted by the square root
of the level as the count peer is.

Fitted on the training part's fit functions (the clusters' Parquet files,
test functions dropped) at every 30th minute, early-stopped on its
validation functions at every 10th minute of the simulated window; it
forecasts every evaluated function's minutes 1081..1440, each from the
minutes before it, and writes ``function,minute,q0.5,...,q0.99`` for
``mesp eval --peer-quantiles``. Cached by the hash of its inputs.

    python scripts/peer_lightgbm_quantile.py --models models --eval out/eval-test.parquet --out out/peer-q.csv
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import peer_cache
from peer_lightgbm_counts import MIN_HISTORY, PARAMS, TRAIN_STRIDE, features

from mesp_training.contract import read_cluster_parquet

# The quantiles of its curve (mesp eval reads exactly these columns).
QUANTILES = (0.5, 0.75, 0.9, 0.95, 0.99)
ROUNDS = 300
START, END = 1081, 1440  # the simulated minutes, 1-based


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] peer_lightgbm_quantile: {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    a = peer_cache.parse_args(__doc__, "CSV to write: function,minute,q0.5,...,q0.99", argv)
    key = peer_cache.inputs_key(a.models, [Path(__file__), Path(__file__).with_name("peer_lightgbm_counts.py"),
                                           a.eval])
    if peer_cache.up_to_date(a.out, key):
        log(f"{a.out} is up to date (inputs {key})")
        return 0
    t0 = time.monotonic()
    fit, val = peer_cache.training_part(a.models)
    # minute m (1-based) is forecast at origin t = m - 1 (the minutes before it)
    x, s, y = features(fit, list(range(MIN_HISTORY, fit.shape[1] - 1, TRAIN_STRIDE)))
    xv, sv, yv = features(val, list(range(START - 1, END, 10)))
    ids, ev = read_cluster_parquet(a.eval)
    xe, se, _ = features(ev.astype(np.float64), list(range(START - 1, END)))
    log(f"{len(fit)} fit and {len(val)} validation functions: {len(x)} and {len(xv)} windows, "
        f"{len(ids)} evaluated functions x {END - START + 1} minutes ({time.monotonic() - t0:.0f}s)")
    pred = np.zeros((len(xe), len(QUANTILES)))
    for k, q in enumerate(QUANTILES):
        params = PARAMS | {"objective": "quantile", "alpha": q}
        train = lgb.Dataset(x, y[:, 0], weight=np.sqrt(s), free_raw_data=False)
        valid = lgb.Dataset(xv, yv[:, 0], weight=np.sqrt(sv), reference=train)
        b = lgb.train(params, train, ROUNDS, valid_sets=[valid], callbacks=[lgb.early_stopping(30, verbose=False)])
        pred[:, k] = np.maximum(b.predict(xe, num_iteration=b.best_iteration), 0) * se
        cover = float((yv[:, 0] * sv <= np.maximum(b.predict(xv, num_iteration=b.best_iteration), 0) * sv).mean())
        log(f"q{q:g}: {b.best_iteration} trees, validation coverage {cover:.4f} ({time.monotonic() - t0:.0f}s)")
    # the curve's quantiles never cross (sorting each row is the rearrangement)
    pred = np.sort(pred, axis=1)
    n = len(ids)
    header = "function,minute," + ",".join(f"q{q:g}" for q in QUANTILES)
    peer_cache.write(a.out, key, header, (
        f"{ids[i]},{START + m}," + ",".join(f"{v:.6g}" for v in pred[m * n + i]) + "\n"
        for i in range(n) for m in range(END - START + 1)))
    log(f"wrote {a.out} ({time.monotonic() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
