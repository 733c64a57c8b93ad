"""Variants of the next-minute p_invoke model, scored on the training
part's validation functions only (never the test part): cold starts of the
minutely loop at keepalive10's idle instance-minutes (interpolated on a
fine threshold curve) and log-loss of minute m given minutes 1..m-1,
m = 1081..1440. Each cluster's validation functions are answered by the
model that cluster would serve.

    python scripts/invoke_variants.py --models models --out docs/eval/invoke-variants.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import lightgbm as lgb
import numpy as np

from mesp_training import invocation_gbm as gbm
from mesp_training.contract import read_clusters
from mesp_training.invocation_train import (
    LOOP_END,
    LOOP_START,
    InvokeConfig,
    Samples,
    cold_at_budget,
    h1_logloss,
    loop_samples,
    train_samples,
)
from mesp_training.pipeline import load_cluster


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] invoke_variants: {msg}", file=sys.stderr, flush=True)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def fit_set(data: dict[int, tuple[np.ndarray, np.ndarray]], cfg: InvokeConfig,
            val: dict[int, Samples]) -> tuple[lgb.Booster, dict[int, lgb.Booster]]:
    """The dense trees and every cluster's continuation, as train-invoke fits them."""
    tr = {cid: train_samples(d[0], cfg, cfg.seed + cid) for cid, d in data.items()}
    x = np.concatenate([t.x for t in tr.values()])
    y = np.concatenate([t.y[:, 0] for t in tr.values()])
    xv = np.concatenate([v.x for v in val.values()])
    yv = np.concatenate([v.y[:, 0] for v in val.values()])
    t0 = time.monotonic()
    dense = gbm.fit_gbm(x, y, xv, yv, rounds=cfg.gbm_rounds)
    log(f"dense: {len(x)} decisions, {dense.num_trees()} trees ({time.monotonic() - t0:.0f}s)")
    experts = {cid: gbm.fit_gbm(tr[cid].x, tr[cid].y[:, 0], val[cid].x, val[cid].y[:, 0],
                                rounds=cfg.gbm_expert_rounds, init=dense) for cid in data}
    return dense, experts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    cfg = InvokeConfig()
    cs = read_clusters(a.models / "clusters.json")
    data = {cl["id"]: load_cluster(a.models, cl, 20) for cl in cs["clusters"]}
    val = {cid: loop_samples(d[1], cfg.val_stride) for cid, d in data.items()}
    series = np.concatenate([data[c][1] for c in sorted(data)])
    yv = np.concatenate([val[c].y[:, 0] for c in sorted(data)])

    def score(name: str, p_by_cluster: dict[int, np.ndarray], note: str) -> dict[str, object]:
        p = np.concatenate([p_by_cluster[c] for c in sorted(data)])
        row = {"variant": name, "note": note, "val_logloss_h1": h1_logloss(p, yv),
               **cold_at_budget(p.reshape(len(series), LOOP_END - LOOP_START + 1), series)}
        log(f"{name}: {row['cold_at_ka10_idle']:.0f} cold starts at keepalive10 idle "
            f"(keepalive10 {row['keepalive10_cold']}), log-loss {row['val_logloss_h1']:.5f}")
        return row

    rows = []
    for label, c in [("shipped recipe", cfg), ("every late minute", replace(cfg, stride=4, late_stride=1))]:
        dense, experts = fit_set(data, c, val)
        pd = {cid: gbm.predict_h1(dense, val[cid].x) for cid in data}
        pe = {cid: gbm.predict_h1(experts[cid], val[cid].x) for cid in data}
        served = {cid: pe[cid] if h1_logloss(pe[cid], val[cid].y[:, 0]) < h1_logloss(pd[cid], val[cid].y[:, 0])
                  else pd[cid] for cid in data}
        blend = {cid: sigmoid((logit(pe[cid]) + logit(pd[cid])) / 2) for cid in data}
        rows.append(score(f"{label}: dense trees", pd, "every cluster answered by the dense trees"))
        rows.append(score(f"{label}: experts as served", served, "expert where its log-loss beats dense"))
        rows.append(score(f"{label}: expert+dense blend", blend, "mean of expert and dense logits"))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
