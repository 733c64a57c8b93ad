"""How many trees per horizon do the count trees need? (validation only)

Takes the fit `train-trees` kept beside a set (WORK/.work/count-trees.json)
and scores its first K trees of each horizon, for each K, on the
validation functions early stopping did not read (the odd-numbered ones,
as `train-trees` chooses the weight), blended with the routed forecast at
each weight, in whole invocations. Fewer trees cost less server CPU per
forecast; this says what they give up.

    python research/trees_size.py --models WORK [--trees 20,30,40,60]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mesp_training import count_trees as ct
from mesp_training.contract import HORIZON, read_clusters, read_manifest, whole_invocations
from mesp_training.data import EVAL_ORIGINS
from mesp_training.pipeline import load_cluster
from mesp_training.routing import Router
from mesp_training.soft_routing import served_forecast


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, required=True, help="a set that ran train-trees (its .work holds the fit)")
    ap.add_argument("--trees", default="20,30,40,60", help="comma-separated trees per horizon")
    a = ap.parse_args()
    man = read_manifest(a.models)
    if man is None or "trees" not in man:
        raise SystemExit(f"{a.models}/manifest.json has no count trees")
    fit = ct.saved_fit(a.models)
    cs = read_clusters(a.models / man["clusters"])
    val = np.concatenate([load_cluster(a.models, cl, 20)[1] for cl in cs["clusters"]]).astype(np.float32)
    held = val[1::2]
    pf = ct.dense_features(a.models / man["dense"]["p_invoke"]["file"]) if man["trees"].get("dense_features") else None
    x, level, y = ct.inputs(held, EVAL_ORIGINS, pf)
    y = y.astype(np.float64)
    router = Router(cs)
    routed = np.concatenate([served_forecast(a.models, man, router, held, t) for t in EVAL_ORIGINS]).astype(np.float64)

    def wape(p: np.ndarray) -> float:
        return float(np.abs(whole_invocations(p) - y).sum() / y.sum())
    print(f"{len(held)} validation functions x {len(EVAL_ORIGINS)} origins, WAPE in whole invocations; "
          f"routed alone {wape(routed):.4f}")
    for k in (int(v) for v in a.trees.split(",")):
        trees = np.stack([np.maximum(b.predict(x, num_iteration=k), 0) for b in fit], axis=1) * level[:, None]
        assert trees.shape[1] == HORIZON
        n = sum(min(k, b.num_trees()) for b in fit)
        blends = ", ".join(f"{w}: {wape((1 - w) * routed + w * trees):.4f}" for w in (0.2, 0.3, 0.4))
        print(f"  first {k} per horizon ({n} trees): alone {wape(trees):.4f}; blended at {blends}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
