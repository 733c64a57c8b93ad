"""The stop model: the next minute's p_invoke on a platform where functions
also stop for good.

The p_invoke models learnt from days that were each invoked, so after a
function's last call they answer as if it paused; on the platform mix of
EVALUATION.md section 2 (each day and a stopped copy of it) the stopped
copies stay warm for most of the hour after their last call, where no
threshold tells them from an active function's pause. The stop model is a
small LightGBM ensemble on the mix's decisions (`mesp stop-decisions`:
each validation function's day and its stopped copy, every minute of the
simulated window, with the served p_invoke and the silence's state,
silence.StopInputs in Go): monotone in the served p_invoke, so it can only
reorder functions through how their silence compares with their own gaps.
Validation functions, not fit functions: the p_invoke models fitted on
the fit functions answer those better than any function they have not
seen, and a stop model fitted on such answers trusts p_invoke too much
(research record: 0.261x keepalive10's cold starts on the validation mix
at 1% of the silent minutes warm, against 0.188-0.200x cross-fitted on
the validation functions themselves).
It is written into the manifest as its trees (the Go server walks them;
``predict`` here is the same walk, checked against LightGBM's own
prediction before the entry is written).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pyarrow.parquet as pq

from .contract import STOP_FEATURES, require_manifest, write_manifest
from .invocation_train import h1_logloss

FEATURES = STOP_FEATURES
# Chosen on the validation functions' mix by two-fold cross-validation over
# functions (research record): 100 trees of 7 leaves at learning rate 0.1
# kept most of what 300 trees of 15 leaves gave.
PARAMS: dict[str, Any] = {"objective": "binary", "learning_rate": 0.1, "num_leaves": 7, "min_data_in_leaf": 200,
                          "monotone_constraints": [1, 0, 0, 0, 0, 0], "verbose": -1, "seed": 1,
                          "num_threads": 0}
ROUNDS = 100


def read_decisions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The decisions' inputs [n, 6] (FEATURES order) and whether each next
    minute was invoked, the timers' minutes left out."""
    t = pq.read_table(path)
    missing = [c for c in [*FEATURES, "invoked"] if c not in t.column_names]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(missing)} (written by `mesp stop-decisions`?)")
    # the timers' expert answers its own minutes: neither fitted nor answered
    keep = ~t.column("timer").to_numpy() if "timer" in t.column_names else np.ones(t.num_rows, dtype=bool)
    x = np.column_stack([t.column(c).to_numpy().astype(np.float64)[keep] for c in FEATURES])
    y = t.column("invoked").to_numpy().astype(np.float64)[keep]
    if len(y) == 0 or not np.isfinite(x).all():
        raise ValueError(f"{path}: {len(y)} decisions, finite inputs {bool(np.isfinite(x).all())}")
    return x, y


def fit(x: np.ndarray, y: np.ndarray, *, rounds: int = ROUNDS, params: dict[str, Any] | None = None) -> lgb.Booster:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lgb.train(dict(PARAMS if params is None else params), lgb.Dataset(x, y), rounds)


def _flatten(node: dict[str, Any], tree: dict[str, list[Any]]) -> int:
    """Appends node's subtree in pre-order; returns its child reference
    (a node index, or -leaf-1)."""
    if "leaf_value" in node:
        tree["leaf_value"].append(float(node["leaf_value"]))
        return -len(tree["leaf_value"])
    if node.get("decision_type", "<=") != "<=":
        raise ValueError(f"stop model: split {node.get('decision_type')} is not a numeric <= split")
    i = len(tree["split_feature"])
    for k in ("split_feature", "threshold", "left_child", "right_child"):
        tree[k].append(0)
    tree["split_feature"][i] = int(node["split_feature"])
    tree["threshold"][i] = float(node["threshold"])
    tree["left_child"][i] = _flatten(node["left_child"], tree)
    tree["right_child"][i] = _flatten(node["right_child"], tree)
    return i


def to_entry(booster: lgb.Booster) -> dict[str, Any]:
    """The booster as the manifest's stop entry (silence.StopModel)."""
    trees = []
    for info in booster.dump_model()["tree_info"]:
        t: dict[str, list[Any]] = {"split_feature": [], "threshold": [], "left_child": [], "right_child": [],
                                   "leaf_value": []}
        _flatten(info["tree_structure"], t)
        trees.append(t)
    return {"features": list(FEATURES), "init": 0.0, "trees": trees}


def predict(entry: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """The entry's probabilities for inputs x [n, 6], walked as the server
    walks them."""
    s = np.full(len(x), float(entry["init"]))
    for t in entry["trees"]:
        if not t["split_feature"]:
            s += t["leaf_value"][0]
            continue
        node = np.zeros(len(x), dtype=np.int64)
        done = np.zeros(len(x), dtype=bool)
        val = np.zeros(len(x))
        feat, thr = np.asarray(t["split_feature"]), np.asarray(t["threshold"])
        left, right, leaf = np.asarray(t["left_child"]), np.asarray(t["right_child"]), np.asarray(t["leaf_value"])
        while not done.all():
            i = np.flatnonzero(~done)
            n = node[i]
            c = np.where(x[i, feat[n]] <= thr[n], left[n], right[n])
            at_leaf = c < 0
            val[i[at_leaf]] = leaf[-c[at_leaf] - 1]
            done[i[at_leaf]] = True
            node[i[~at_leaf]] = c[~at_leaf]
        s += val
    out: np.ndarray = 1 / (1 + np.exp(-s))
    return out


def train_stop(models: Path, decisions: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fits the stop model on decisions and writes it into models' manifest
    as ``stop``; the default threshold is then chosen again (`mesp
    choose-threshold`, as `make train-stop` runs it)."""
    man = require_manifest(models)
    x, y = read_decisions(decisions)
    log(f"stop model: {len(y)} decisions, {int(y.sum())} invoked; {ROUNDS} trees of {PARAMS['num_leaves']} leaves")
    booster = fit(x, y)
    entry = to_entry(booster)
    got, want = predict(entry, x[:20000]), booster.predict(x[:20000])
    if not np.allclose(got, want, rtol=0, atol=1e-9):
        raise ValueError(f"stop model: the manifest's walk differs from LightGBM by {np.abs(got - want).max():.3g}")
    entry["fitted_on"] = (f"{decisions.name}: {len(y)} decisions of the training part's validation functions and a "
                          "stopped copy of each (EVALUATION.md section 2's mix), every minute 1081-1440, the served "
                          "p_invoke")
    man["stop"] = entry
    write_manifest(models, man)
    served = 1 / (1 + np.exp(-x[:, 0]))
    log(f"stop model: log-loss on its decisions {h1_logloss(predict(entry, x), y):.5f} (the served p_invoke "
        f"{h1_logloss(served, y):.5f}); written to {models}/manifest.json")
    return entry
