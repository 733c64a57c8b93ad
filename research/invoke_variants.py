"""Variants of the next-minute p_invoke model, scored on the training
part's validation functions only (never the test part): cold starts of the
minutely loop at keepalive10's idle instance-minutes (interpolated on a
fine threshold curve) and log-loss of minute m given minutes 1..m-1,
m = 1081..1440. Each cluster's validation functions are answered by the
model that cluster would serve.

    python research/invoke_variants.py --models models --out research/results/invoke-variants.json
    python research/invoke_variants.py --models models --study trees --out research/results/invoke-trees.json

    python research/invoke_variants.py --models models --study size --out research/results/invoke-size.json

Studies: ``sampling`` (which minutes train the models), ``trees`` (the
dense trees with and without the other-period features of
``mesp_training.invocation``, stopped at the old cap of 600 rounds or by
early stopping) and ``size`` (the dense trees' learning rate and leaves
against what they cost ONNX Runtime per decision: the pre-warm decision
should cost about what a forecast costs).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import lightgbm as lgb
import numpy as np

from mesp_training import invocation_gbm as gbm
from mesp_training.contract import read_clusters
from mesp_training.invocation import PERIODS
from mesp_training.invocation_train import (
    LOOP_END,
    LOOP_START,
    InvokeConfig,
    Samples,
    cold_at_budget,
    h1_logloss,
    load_model,
    loop_samples,
    predict_features,
    train_samples,
)
from mesp_training.pipeline import load_cluster
from mesp_training.runtime import inference_session


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


Score = Callable[[str, dict[int, np.ndarray], str], dict[str, object]]


def sampling_study(models: Path, data: dict[int, tuple[np.ndarray, np.ndarray]], cfg: InvokeConfig, val: dict[int, Samples],
                   score: Score) -> list[dict[str, object]]:
    """The dense trees and their cluster continuations, trained on two
    choices of training minutes."""
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
    return rows


# The dense trees' round cap before InvokeConfig.gbm_rounds was raised.
OLD_CAP = 600


class DenseData:
    """Every cluster's training decisions and validation decisions in one
    matrix each, validation rows in cluster order (as `score` joins them)."""

    def __init__(self, data: dict[int, tuple[np.ndarray, np.ndarray]], cfg: InvokeConfig,
                 val: dict[int, Samples]) -> None:
        self.order = sorted(data)
        tr = [train_samples(data[cid][0], cfg, cfg.seed + cid) for cid in self.order]
        self.x = np.concatenate([t.x for t in tr])
        self.y = np.concatenate([t.y[:, 0] for t in tr])
        self.xv = np.concatenate([val[cid].x for cid in self.order])
        self.yv = np.concatenate([val[cid].y[:, 0] for cid in self.order])
        self.sizes = np.cumsum([len(val[cid].x) for cid in self.order])[:-1]

    def by_cluster(self, p: np.ndarray) -> dict[int, np.ndarray]:
        """Validation predictions in row order, split by cluster."""
        return dict(zip(self.order, np.split(p, self.sizes), strict=True))


def trees_study(models: Path, data: dict[int, tuple[np.ndarray, np.ndarray]], cfg: InvokeConfig, val: dict[int, Samples],
                score: Score) -> list[dict[str, object]]:
    """Dense trees on the features without and with the other periods'
    columns (the last 3 * len(PERIODS)), each read at OLD_CAP rounds and at
    its early-stopping point under cfg.gbm_rounds. Validation rows are in
    cluster order, as `score` joins them."""
    d = DenseData(data, cfg, val)
    rows = []
    for label, cols in [("without other periods", d.x.shape[1] - 3 * len(PERIODS)), ("with other periods", d.x.shape[1])]:
        t0 = time.monotonic()
        b = gbm.fit_gbm(d.x[:, :cols], d.y, d.xv[:, :cols], d.yv, rounds=cfg.gbm_rounds)
        log(f"{label}: {b.num_trees()} trees ({time.monotonic() - t0:.0f}s)")
        for rounds in sorted({min(OLD_CAP, b.num_trees()), b.num_trees()}):
            p = b.predict(d.xv[:, :cols], num_iteration=rounds)
            rows.append(score(f"dense trees {label}, {rounds} rounds", d.by_cluster(p),
                              f"{cols} features, early-stopped at {b.num_trees()} of {cfg.gbm_rounds} rounds"))
    # The last trees (all features) with the shipped dense MLP's minute 1, a
    # quarter of the logit on the MLP.
    mlp = predict_features(load_model(models / "dense-p.pt"), d.xv)[:, 0]
    blend = sigmoid(0.75 * logit(np.asarray(b.predict(d.xv))) + 0.25 * logit(mlp))
    rows.append(score("dense trees with other periods + MLP (1/4 of the logit)", d.by_cluster(blend),
                      "mean of logits, weights 3:1"))
    return rows


# (learning rate, leaves) of the size study, besides the shipped recipe's
# (0.05, 63), which is read from the models folder rather than fitted again.
SIZES = [(0.2, 63), (0.1, 63), (0.3, 63), (0.2, 31), (0.2, 127)]
TRUNCATIONS = (250, 500, 1000, 1500)


def ort_us_per_row(booster: lgb.Booster, x: np.ndarray) -> dict[str, float]:
    """Microseconds per row of the trees alone in ONNX Runtime (one thread),
    at batch 1 and 64: the part of a pre-warm decision they cost."""
    graph = gbm.margin_trees_graph(booster, 0, x.shape[1]).SerializeToString()
    with tempfile.NamedTemporaryFile(suffix=".onnx") as f:
        f.write(graph)
        f.flush()
        sess = inference_session(f.name)
    out = {}
    # Rows of many functions and minutes, as a served batch has them (the
    # first rows are one function's consecutive minutes, which take the
    # same paths through the trees and time several times faster).
    sample = x[np.random.default_rng(0).choice(len(x), 64, replace=False)]
    for b, n in ((1, 2000), (64, 100)):
        rows = sample[:b]
        for _ in range(20):
            sess.run(["variable"], {"features": rows})
        t0 = time.perf_counter()
        for _ in range(n):
            sess.run(["variable"], {"features": rows})
        out[f"ort_us_per_row_batch{b}"] = round((time.perf_counter() - t0) / n / b * 1e6, 2)
    out["onnx_mb"] = round(len(graph) / 2**20, 2)
    return out


def size_study(models: Path, data: dict[int, tuple[np.ndarray, np.ndarray]], cfg: InvokeConfig, val: dict[int, Samples],
               score: Score) -> list[dict[str, object]]:
    """Dense trees by learning rate and leaves, each early-stopped under
    cfg.gbm_rounds, and the shipped fit cut short: validation cold starts
    and log-loss against trees and ONNX Runtime microseconds per decision."""
    d = DenseData(data, cfg, val)
    rows = []

    def measure(b: lgb.Booster, name: str, note: str, **extra: object) -> None:
        row = score(name, d.by_cluster(b.predict(d.xv)), note)
        row |= {**extra, "trees": b.num_trees(), **ort_us_per_row(b, d.xv)}
        log(f"  {row}")
        rows.append(row)

    # The shipped recipe is read from the models folder: the same fit
    # train-invoke made.
    shipped = lgb.Booster(model_file=str(models / "dense-p.lgb"))
    lr, leaves = gbm.PARAMS["learning_rate"], gbm.PARAMS["num_leaves"]
    measure(shipped, f"dense trees, learning rate {lr}, {leaves} leaves",
            f"early-stopped at {shipped.num_trees()} of {cfg.gbm_rounds} rounds",
            learning_rate=lr, num_leaves=leaves, fit_s=0)
    for lr, leaves in SIZES:
        t0 = time.monotonic()
        b = gbm.fit_gbm(d.x, d.y, d.xv, d.yv, rounds=cfg.gbm_rounds, learning_rate=lr, num_leaves=leaves)
        fit_s = round(time.monotonic() - t0)
        log(f"learning rate {lr}, {leaves} leaves: {b.num_trees()} trees ({fit_s}s)")
        measure(b, f"dense trees, learning rate {lr}, {leaves} leaves",
                f"early-stopped at {b.num_trees()} of {cfg.gbm_rounds} rounds",
                learning_rate=lr, num_leaves=leaves, fit_s=fit_s)
    # The shipped trees cut short: what fewer trees of the same fit lose.
    for keep in (k for k in TRUNCATIONS if k < shipped.num_trees()):
        cut = lgb.Booster(model_str=shipped.model_to_string(num_iteration=keep))
        measure(cut, f"dense trees, learning rate {gbm.PARAMS['learning_rate']}, first {keep} of "
                f"{shipped.num_trees()}", "the shipped fit, cut short")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--study", choices=["sampling", "trees", "size"], default="sampling")
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

    study = {"sampling": sampling_study, "trees": trees_study, "size": size_study}[a.study]
    rows = study(a.models, data, cfg, val, score)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
