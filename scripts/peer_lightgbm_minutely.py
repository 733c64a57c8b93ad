"""The LightGBM peer of the minutely pre-warm loop (EVALUATION.md §2).

A gradient-boosted classifier of "the function is invoked in minute m",
given minutes 1..m-1, on exactly the inputs MESP's p_invoke models see (the
features of ``mesp_training.invocation``, one implementation), trained on
the same training part: fit functions for the trees, the held-out
validation functions for early stopping. It predicts every minute
1081..1440 of the evaluated functions and writes
``function,minute,p_invoke`` for ``mesp eval --peer-lightgbm``, which
scores it with the same simulator as MESP.

The fitted predictions are cached by the hash of their inputs (this file,
the feature code, the training Parquet files, the evaluated file, the
settings), so `make eval` stays quick when nothing changed.

    python scripts/peer_lightgbm_minutely.py --models models --eval out/dev-test.parquet --out out/peer.csv
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import peer_cache

from mesp_training import invocation
from mesp_training.contract import read_cluster_parquet, read_clusters
from mesp_training.invocation_train import LOOP_END, LOOP_START, InvokeConfig, loop_samples, train_samples
from mesp_training.pipeline import load_cluster

PARAMS = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 63, "min_data_in_leaf": 100,
          "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "verbose": -1, "num_threads": 0}
VAL_PERCENT = 20


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] peer_lightgbm: {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    a = peer_cache.parse_args(__doc__, "CSV to write: function,minute,p_invoke", argv)
    key = peer_cache.inputs_key(a.models, [Path(__file__), Path(invocation.__file__), a.eval],
                                repr((PARAMS, VAL_PERCENT, InvokeConfig())))
    if peer_cache.up_to_date(a.out, key):
        log(f"{a.out} is up to date (inputs {key})")
        return 0
    cfg = InvokeConfig()
    cs = read_clusters(a.models / "clusters.json")
    fit, val = zip(*(load_cluster(a.models, cl, VAL_PERCENT) for cl in cs["clusters"]), strict=True)
    fit_s, val_s = np.concatenate(fit), np.concatenate(val)
    t0 = time.monotonic()
    tr = train_samples(fit_s, cfg, cfg.seed)
    va = loop_samples(val_s, 2)
    log(f"{len(tr.x)} training and {len(va.x)} validation decisions ({time.monotonic() - t0:.0f}s)")
    dtrain = lgb.Dataset(tr.x, tr.y[:, 0])
    dval = lgb.Dataset(va.x, va.y[:, 0], reference=dtrain)
    # The same round cap as MESP's trees; early stopping ends both.
    booster = lgb.train(PARAMS, dtrain, cfg.gbm_rounds, valid_sets=[dval],
                        callbacks=[lgb.early_stopping(30, verbose=False), lgb.log_evaluation(100)])
    log(f"{booster.best_iteration} trees, validation log-loss {booster.best_score['valid_0']['binary_logloss']:.5f} "
        f"({time.monotonic() - t0:.0f}s)")
    ids, series = read_cluster_parquet(a.eval)
    ev = loop_samples(series)
    p = booster.predict(ev.x, num_iteration=booster.best_iteration)
    minutes = np.arange(LOOP_START, LOOP_END + 1)
    peer_cache.write(a.out, key, "function,minute,p_invoke", (
        f"{fid},{m},{v:.6g}\n"
        for i, fid in enumerate(ids) for m, v in zip(minutes, p[i * len(minutes):(i + 1) * len(minutes)], strict=True)))
    log(f"wrote {a.out}: {len(ids)} functions x {len(minutes)} minutes ({time.monotonic() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
