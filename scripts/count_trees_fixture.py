"""Writes the count-trees graphs the Go tests serve
(internal/fixture/testdata): the first few trees of each horizon of a real
`train-trees` fit (models/.work/count-trees.json), exported and checked
against LightGBM as `train-trees` exports them. The window-only graph reads
the 240-minute window; the features graph reads the dense p_invoke
features of the day too (as the dense p_invoke graph of the set in
--models answers them).

    python scripts/count_trees_fixture.py --models WORK \
        --out internal/fixture/testdata/count-trees-features.onnx [--trees 3]
    python scripts/count_trees_fixture.py --models models --mean --out internal/fixture/testdata/mean-trees.onnx

With --mean it fits mean trees (the hour's volume, count_trees.fit_hour)
of that many trees on the set's training functions, every 240 minutes,
reading the window alone, and exports them as `dense-trees-mean`.

It records how a fixture was made; the tests only read the files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np

from mesp_training import count_trees as ct
from mesp_training.contract import read_clusters, read_manifest
from mesp_training.data import EVAL_ORIGINS
from mesp_training.pipeline import load_cluster


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, required=True, help="a set that ran train-trees (its .work holds the fit)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--trees", type=int, default=3, help="trees kept per horizon")
    ap.add_argument("--window-only", action="store_true", help="the fit read the window alone")
    ap.add_argument("--mean", action="store_true", help="fit small mean trees (Poisson) instead of reading a fit")
    a = ap.parse_args()
    man = read_manifest(a.models)
    if man is None:
        raise SystemExit(f"{a.models}/manifest.json missing")
    cl = read_clusters(a.models / man["clusters"])["clusters"][0]
    train, val = (x.astype(np.float32) for x in load_cluster(a.models, cl, 20))
    val = val[:48]
    if a.mean:
        a.window_only = True
        boosters = ct.fit_hour(train, val, EVAL_ORIGINS, rounds=a.trees, stride=240)
    else:
        boosters = [lgb.Booster(model_str=b.model_to_string(num_iteration=a.trees)) for b in ct.saved_fit(a.models)]
    t = EVAL_ORIGINS[0]
    probe, _ = ct.windows(val, (t,))
    pf = None
    if not a.window_only:
        pf = ct.dense_features(a.models / man["dense"]["p_invoke"]["file"])(val, t)
    ct.export(boosters, a.out, ct.MEAN_ID if a.mean else "dense-trees", probe, pf)
    print(f"{a.out}: {sum(b.num_trees() for b in boosters)} trees, "
          f"{'window only' if pf is None else f'window and the {pf.shape[1]} dense p_invoke features of the day'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
