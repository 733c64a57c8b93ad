"""Gradient-boosted trees as a count family, blended into every routed
forecast.

The recipe the LightGBM peer showed strong on this data (EVALUATION.md,
"Reference points measured later"): one LightGBM model per horizon (direct,
60 of them; interpolating between fewer horizons loses the minute-level
structure of timer-driven functions: validation WAPE 0.35 at the minutes
between anchors against 0.13 for their own models), on lags 1..60 and
75..240 every 15 minutes, means over 15/60/240 minutes and the spread of the
last hour, each window divided by 1 + the mean of its last 60 minutes, L1
loss weighted by the square root of that level. It knows nothing of the
time of day (the count contract's input is the window alone).

They may also read the dense p_invoke graph's features (its second output
``p_features``: a day's context, such as minutes since the last invocation
and the hourly lags, computed from up to 1,440 minutes). On held-out
validation functions the trees alone then gain 4.4% WAPE and the served
blend 1.3% (research/trees_extra_inputs.py, docs/research.md). The graph then
takes the function's day as a second input (``day``, as a p_invoke graph
takes the dense graph's features as a second input (``p_features``), and
the manifest entry says ``dense_features: true`` and names that graph by
its sha256 (``features_of``): a function's day features are computed once,
by the dense graph, for it and every trees graph that reads them (they
cost about as much as the trees themselves), and a set whose dense graph
is not the one the trees were fitted on is refused. Sets exported when
each trees graph carried its own copy of the feature operations and took
the day (``day: true``) still serve; scripts/share_dense_features.py
brings them to this layout with the same answers.

The features are torch operations exported with the trees, so training and
serving share one implementation: the graph takes the raw window [batch,
240] and answers 60 expected counts, as every count model does. The 60
models are 60 one-target ONNX TreeEnsembleRegressors joined by a Concat:
ONNX Runtime walks a one-target ensemble's trees across a batch's rows,
and a many-target one's row by row (97 -> 84 us a row for the count trees
at batch 256; ``one_target_ensembles``).

The trees are fitted on the training part's fit functions and early-stopped
on one half of the validation functions; the weight of the blend,
(1 - w) times the routed forecast plus w times the trees', is chosen on the
other half, every window as routed (`mesp_training.soft_routing`'s served
forecast), and written to the manifest as ``trees``.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import lightgbm as lgb
import numpy as np
import onnx
import onnx.numpy_helper
import torch
from onnx import TensorProto, helper
from torch import nn

from .contract import (
    DAY_INPUT_NAME,
    HORIZON,
    INPUT_NAME,
    OUTPUT_NAME,
    P_FEATURES_NAME,
    sha256_file,
)
from .data import train_origins
from .data import windows as data_windows
from .export import ExportMismatch, stamp, trace_graph
from .invocation import pad_history
from .runtime import inference_session

# The dense p_invoke graph's features of every function at an origin: the
# trees' second input (None: the window alone).
PFeatures = Callable[[np.ndarray, int], np.ndarray] | None

FAMILY = "lightgbm"
WINDOW = 240
LAGS = (*range(1, 61), *range(75, WINDOW + 1, 15))
MEANS = (15, 60, 240)
LEVEL = 60  # the window is divided by 1 + its mean over this many last minutes
TRAIN_STRIDE = 30
PARAMS: dict[str, Any] = {"objective": "l1", "learning_rate": 0.1, "num_leaves": 31, "min_data_in_leaf": 50,
                          "max_bin": 63, "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
                          "verbose": -1, "seed": 1}
# The mean trees: one booster for the next hour's volume (Huber loss on
# the level-scaled hour, weighted by the level), spread by the server over
# the hour as the served level shapes it: the expected count, not the
# median (the median of a sparse or jittered minute is 0). On held-out
# validation functions it had the best hour WAPE of squared error, Huber,
# Poisson and Tweedie hour models; per-minute mean trees exploded (Poisson)
# or stopped after a few trees (squared error) (docs/results.md, "Timers, silence and the hour's
# volume").
PARAMS_HOUR: dict[str, Any] = PARAMS | {"objective": "huber", "alpha": 2.0, "learning_rate": 0.05,
                                        "min_data_in_leaf": 100}
HOUR_ROUNDS = 600
HOUR_EARLY_STOP = 40
MEAN_FILE = "dense-trees-mean.onnx"
MEAN_ID = "dense-trees-mean"
# At most 60 trees per horizon: on held-out validation windows the first
# 60 of each early-stopped fit (cap 150) kept almost all of the blend's
# gain (WAPE 0.1880 vs 0.1876; 40: 0.1887, 20: 0.1921, the routed forecast
# alone 0.1908) at 3,580 trees instead of 6,540, about half the run time.
ROUNDS = 60
EARLY_STOP = 20
# Where train_trees keeps its fit, under a set's folder (saved_fit).
SAVED_FIT = Path(".work") / "count-trees.json"
# A window this busy (1 + the mean of its last hour) is counted as busy in
# the quantile trees' validation figures: two invocations a minute.
BUSY_LEVEL = 3.0
# Blend weights tried on the held-out validation half (0: the routed forecast alone).
WEIGHTS = tuple(round(0.1 * k, 1) for k in range(11))


class CountFeatures(nn.Module):
    """Raw counts [B, 240] -> (features [B, n_features], level [B, 1]):
    the lags, means and spread divided by the level 1 + mean of the last
    hour, and the level's log."""

    lag_idx: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("lag_idx", torch.tensor([WINDOW - k for k in LAGS], dtype=torch.long))
        self.n_features = len(LAGS) + len(MEANS) + 2

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        recent = x[:, -LEVEL:]
        mean = recent.mean(dim=1, keepdim=True)
        level = 1.0 + mean
        spread = torch.sqrt(((recent - mean) ** 2).mean(dim=1, keepdim=True))
        cols = [x[:, self.lag_idx]] + [x[:, -w:].mean(dim=1, keepdim=True) for w in MEANS] + [spread]
        return torch.cat([torch.cat(cols, dim=1) / level, torch.log(level)], dim=1), level


FEATURES = CountFeatures()


def features(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features [n, n_features] and levels [n] of raw windows [n, 240], as
    the exported graph computes them (float32)."""
    with torch.no_grad():
        f, level = FEATURES(torch.from_numpy(np.ascontiguousarray(windows, np.float32)))
    return f.numpy(), level[:, 0].numpy()


def windows(series: np.ndarray, origins: list[int] | tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Windows [rows, 240] and next-hour targets [rows, 60] of every
    function at every origin that has both, origin-major (data.windows,
    one origin at a time)."""
    parts = [data_windows(series, WINDOW, (t,)) for t in origins]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def dense_features(graph: Path) -> Callable[[np.ndarray, int], np.ndarray]:
    """The features [functions, F] a dense p_invoke graph answers for every
    function's day up to origin t (the server's p_invoke input: up to 1,440
    minutes, left-padded as unknown)."""
    sess = inference_session(str(graph))

    def at(series: np.ndarray, t: int) -> np.ndarray:
        x = days(series, t)
        out = [sess.run([P_FEATURES_NAME], {INPUT_NAME: x[i:i + 2048]})[0] for i in range(0, len(x), 2048)]
        f: np.ndarray = np.concatenate(out).astype(np.float32)
        return f
    return at


def days(series: np.ndarray, t: int) -> np.ndarray:
    """Every function's day up to origin t as the ``day`` input (and a
    p_invoke graph's): up to 1,440 minutes, left-padded as unknown."""
    return np.stack([pad_history(r[:t]) for r in series])


def inputs(series: np.ndarray, origins: list[int] | tuple[int, ...],
           p_features: PFeatures = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The trees' features [rows, n], levels [rows] and targets [rows, 60]
    of every function at every origin that has a window and a target."""
    xs, ss, ys = [], [], []
    for t in origins:
        w, y = windows(series, (t,))
        if len(w) == 0:  # every function, or none at this origin
            continue
        f, s = features(w)
        xs.append(f if p_features is None else np.concatenate([f, p_features(series, t)], axis=1))
        ss.append(s)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ss), np.concatenate(ys)


def fit(train: np.ndarray, val: np.ndarray, val_origins: tuple[int, ...], *, params: dict[str, Any] | None = None,
        rounds: int = ROUNDS, stride: int = TRAIN_STRIDE, p_features: PFeatures = None,
        log: Callable[[str], None] = print) -> list[lgb.Booster]:
    """One booster per horizon on the train functions' windows (every
    stride minutes), early-stopped on the val functions at val_origins;
    with p_features, on the dense p_invoke features too. Targets are
    divided by the window's level, and a row weighted by the level's
    square root."""
    p = dict(PARAMS if params is None else params)
    x, s, y = inputs(train, train_origins(WINDOW, train.shape[1], stride), p_features)
    xv, sv, yv = inputs(val, val_origins, p_features)
    # targets divided by the level in float64, as the level-scaled L1 asks
    y, yv = y.astype(np.float64), yv.astype(np.float64)
    boosters = []
    for h in range(HORIZON):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LightGBM warns about sliced arrays
            d = lgb.Dataset(x, y[:, h] / s, weight=np.sqrt(s), free_raw_data=True)
            dv = lgb.Dataset(xv, yv[:, h] / sv, weight=np.sqrt(sv), reference=d)
            b = lgb.train(p, d, rounds, valid_sets=[dv], callbacks=[lgb.early_stopping(EARLY_STOP, verbose=False)])
        boosters.append(lgb.Booster(model_str=b.model_to_string(num_iteration=b.best_iteration or None)))
        if (h + 1) % 10 == 0:
            log(f"count trees: horizon {h + 1}/{HORIZON}, {sum(b.num_trees() for b in boosters)} trees so far")
    return boosters


def fit_hour(train: np.ndarray, val: np.ndarray, val_origins: tuple[int, ...], *,
             params: dict[str, Any] | None = None, rounds: int = HOUR_ROUNDS, stride: int = TRAIN_STRIDE,
             p_features: PFeatures = None) -> list[lgb.Booster]:
    """One booster for the next hour's volume divided by the window's
    level, weighted by the level, on the count trees' features; early
    stopped on the val functions at val_origins."""
    p = dict(PARAMS_HOUR if params is None else params)
    x, s, y = inputs(train, train_origins(WINDOW, train.shape[1], stride), p_features)
    xv, sv, yv = inputs(val, val_origins, p_features)
    yh, yvh = y.astype(np.float64).sum(axis=1), yv.astype(np.float64).sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = lgb.Dataset(x, yh / s, weight=s, free_raw_data=True)
        dv = lgb.Dataset(xv, yvh / sv, weight=sv, reference=d)
        b = lgb.train(p, d, rounds, valid_sets=[dv], callbacks=[lgb.early_stopping(HOUR_EARLY_STOP, verbose=False)])
    return [lgb.Booster(model_str=b.model_to_string(num_iteration=b.best_iteration or None))]


def shaped(level: np.ndarray, hour: np.ndarray) -> np.ndarray:
    """The hour model's even shares [n, 60] spread as the served level
    [n, 60] shapes the hour: level times the hour's volume over the level's
    sum, or the even shares where the level holds less than half an
    invocation (the server's rule, forecast.shapeHour)."""
    total = level.sum(axis=1, keepdims=True)
    volume = hour.sum(axis=1, keepdims=True)
    out: np.ndarray = np.where(total > 0.5, level * volume / np.maximum(total, 1e-9), hour)
    return out


def predict(boosters: list[lgb.Booster], windows_: np.ndarray, p_features: np.ndarray | None = None) -> np.ndarray:
    """Expected counts [n, 60] of raw windows [n, 240] (and their dense
    p_invoke features [n, F] for trees fitted on them): what the graph
    answers."""
    f, level = features(windows_)
    return _counts(boosters, f if p_features is None else np.concatenate([f, p_features], axis=1), level)


def _counts(boosters: list[lgb.Booster], x: np.ndarray, level: np.ndarray) -> np.ndarray:
    """The boosters' scaled answers on features x, back in counts; one
    booster is the hour's volume, answered as an even share per minute."""
    out: np.ndarray = np.stack([np.maximum(b.predict(x), 0) for b in boosters], axis=1) * level[:, None]
    if len(boosters) == 1:
        out = np.repeat(out / HORIZON, HORIZON, axis=1)
    return out


def _threshold32(t: float) -> float:
    """The largest float32 at most t: for float32 features x, x <= it
    exactly when x <= t, so the float32 graph splits as LightGBM does in
    float64 (rounding to nearest would flip rows that fall between)."""
    t32 = np.float32(t)
    if float(t32) > t:
        t32 = np.nextafter(t32, np.float32(-np.inf))
    return float(t32)


def _ensemble(boosters: list[lgb.Booster]) -> onnx.NodeProto:
    """The boosters as one TreeEnsembleRegressor, target h = booster h
    (input ``trees_in``, output ``trees_out`` [batch, 60]), written from
    LightGBM's own tree dump: numeric ``<=`` splits, left when true."""
    a: dict[str, list[Any]] = {k: [] for k in (
        "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes", "nodes_truenodeids",
        "nodes_falsenodeids", "nodes_missing_value_tracks_true", "target_treeids", "target_nodeids", "target_ids",
        "target_weights")}
    tree_id = 0
    for h, b in enumerate(boosters):
        for tree in b.dump_model()["tree_info"]:
            order: list[dict[str, Any]] = []
            ids: dict[int, int] = {}
            stack = [tree["tree_structure"]]
            while stack:  # preorder: a node's id is its place in order
                node = stack.pop()
                ids[id(node)] = len(order)
                order.append(node)
                if "split_index" in node:
                    stack += [node["right_child"], node["left_child"]]
            for nid, node in enumerate(order):
                a["nodes_treeids"].append(tree_id)
                a["nodes_nodeids"].append(nid)
                if "split_index" in node:
                    if node["decision_type"] != "<=":
                        raise ExportMismatch(f"count trees: a {node['decision_type']!r} split (numeric <= only)")
                    a["nodes_featureids"].append(node["split_feature"])
                    a["nodes_values"].append(_threshold32(node["threshold"]))
                    a["nodes_modes"].append("BRANCH_LEQ")
                    a["nodes_truenodeids"].append(ids[id(node["left_child"])])
                    a["nodes_falsenodeids"].append(ids[id(node["right_child"])])
                    a["nodes_missing_value_tracks_true"].append(
                        int(node.get("default_left", False) and node.get("missing_type") == "NaN"))
                else:
                    a["nodes_featureids"].append(0)
                    a["nodes_values"].append(0.0)
                    a["nodes_modes"].append("LEAF")
                    a["nodes_truenodeids"].append(0)
                    a["nodes_falsenodeids"].append(0)
                    a["nodes_missing_value_tracks_true"].append(0)
                    a["target_treeids"].append(tree_id)
                    a["target_nodeids"].append(nid)
                    a["target_ids"].append(h)
                    a["target_weights"].append(float(node["leaf_value"]))
            tree_id += 1
    attrs: dict[str, Any] = {"n_targets": len(boosters), "aggregate_function": "SUM", "post_transform": "NONE", **a}
    ensemble: onnx.NodeProto = helper.make_node("TreeEnsembleRegressor", ["trees_in"], ["trees_out"],
                                                domain="ai.onnx.ml", **attrs)
    return ensemble


def one_target_ensembles(node: onnx.NodeProto) -> list[onnx.NodeProto]:
    """A TreeEnsembleRegressor of n targets as n one-target ensembles, each
    holding the trees whose leaves feed its target (output ``<out>_<h>``),
    and a Concat of them into the node's output: the same trees and sums.
    A one-target node is returned as it is."""
    a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
    n = a.get("n_targets", 1)
    if node.op_type != "TreeEnsembleRegressor" or n == 1:
        return [node]
    if set(a) - _SPLITTABLE:
        raise ExportMismatch(f"count trees: cannot split an ensemble with {sorted(set(a) - _SPLITTABLE)}")
    target_of: dict[int, int] = {}
    for tree, h in zip(a["target_treeids"], a["target_ids"], strict=True):
        if target_of.setdefault(tree, h) != h:
            raise ExportMismatch(f"count trees: tree {tree} feeds targets {target_of[tree]} and {h}")
    nodes_of: dict[int, list[int]] = {h: [] for h in range(n)}
    for i, tree in enumerate(a["nodes_treeids"]):
        nodes_of[target_of[tree]].append(i)
    leaves_of: dict[int, list[int]] = {h: [] for h in range(n)}
    for i, tree in enumerate(a["target_treeids"]):
        leaves_of[target_of[tree]].append(i)
    out, parts, split = node.output[0], [], []
    for h in range(n):
        nodes, leaves = nodes_of[h], leaves_of[h]
        if not nodes:
            raise ExportMismatch(f"count trees: target {h} has no trees")
        attrs: dict[str, Any] = {k: [a[k][i] for i in nodes] for k in a if k.startswith("nodes_")}
        attrs |= {k: [a[k][i] for i in leaves] for k in ("target_treeids", "target_nodeids", "target_weights")}
        attrs |= {"n_targets": 1, "target_ids": [0] * len(leaves), "aggregate_function": a["aggregate_function"],
                  "post_transform": a["post_transform"]}
        if "base_values" in a:
            attrs["base_values"] = [a["base_values"][h]]
        parts.append(f"{out}_{h}")
        split.append(helper.make_node("TreeEnsembleRegressor", list(node.input), [parts[-1]], domain="ai.onnx.ml",
                                      **attrs))
    return [*split, helper.make_node("Concat", parts, [out], axis=1)]


# TreeEnsembleRegressor attributes one_target_ensembles knows how to split.
_SPLITTABLE = {"n_targets", "aggregate_function", "post_transform", "base_values", "nodes_treeids", "nodes_nodeids",
               "nodes_featureids", "nodes_values", "nodes_modes", "nodes_truenodeids", "nodes_falsenodeids",
               "nodes_missing_value_tracks_true", "nodes_hitrates", "target_treeids", "target_nodeids", "target_ids",
               "target_weights"}


def build_graph(boosters: list[lgb.Booster], probe: np.ndarray, n_dense: int | None = None) -> onnx.ModelProto:
    """Features (torch, exported) -> trees -> max(0) x level: [batch, 240]
    -> [batch, 60] (one booster: the hour's volume as even shares); with
    n_dense, the graph also takes the dense p_invoke graph's features
    [batch, n_dense] and reads them after the window's."""
    graph = trace_graph(CountFeatures(), probe, ["window_in" if n_dense else "trees_in", "level"])
    g = graph.graph
    if n_dense is not None:
        g.input.append(helper.make_tensor_value_info(P_FEATURES_NAME, TensorProto.FLOAT, ["batch", n_dense]))
        g.node.append(helper.make_node("Concat", ["window_in", P_FEATURES_NAME], ["trees_in"], axis=1))
    g.node.extend(one_target_ensembles(_ensemble(boosters)))
    pos = helper.make_node("Relu", ["trees_out"], ["trees_pos"])
    if len(boosters) == 1:  # the hour's volume: an even share per minute
        g.initializer.append(onnx.numpy_helper.from_array(np.full((1, HORIZON), 1 / HORIZON, np.float32), "per_minute"))
        g.node.extend([pos, helper.make_node("Mul", ["trees_pos", "level"], ["hour_volume"]),
                       helper.make_node("Mul", ["hour_volume", "per_minute"], [OUTPUT_NAME])])
    else:
        g.node.extend([pos, helper.make_node("Mul", ["trees_pos", "level"], [OUTPUT_NAME])])
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", HORIZON]))
    graph.opset_import.append(helper.make_opsetid("ai.onnx.ml", 3))
    return graph


def export(boosters: list[lgb.Booster], path: Path, model_id: str, probe: np.ndarray,
           p_features: np.ndarray | None = None) -> None:
    """Writes the graph, checked against LightGBM on real windows (probe)
    before it replaces path. For trees fitted on the dense p_invoke
    features, p_features is the probe's, as the dense graph answers them."""
    n_dense = None if p_features is None else p_features.shape[1]
    graph = stamp(build_graph(boosters, probe, n_dense), model_id, WINDOW, FAMILY)
    # The check runs a copy that also answers its features: the trees must
    # equal LightGBM's on exactly those, and the features torch's to float
    # rounding (a float32 feature a rounding away from a split may take the
    # other branch in either; that is serving's float noise, not a wrong
    # export).
    check = onnx.ModelProto()
    check.CopyFrom(graph)
    check.graph.output.append(helper.make_tensor_value_info("trees_in", TensorProto.FLOAT, ["batch", None]))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".onnx")
    os.close(fd)
    try:
        onnx.save(check, tmp)
        feeds = {INPUT_NAME: probe} | ({} if p_features is None else {P_FEATURES_NAME: p_features})
        got, feats = inference_session(tmp).run([OUTPUT_NAME, "trees_in"], feeds)
        mine, level = features(probe)
        if p_features is not None:
            mine = np.concatenate([mine, p_features], axis=1)
        want = _counts(boosters, feats, level)
        if not np.allclose(feats, mine, rtol=1e-4, atol=1e-5):
            raise ExportMismatch(f"{model_id}: ONNX features differ from torch's by up to {np.abs(feats - mine).max()}")
        if got.shape != (len(probe), HORIZON) or not np.allclose(got, want, rtol=1e-4, atol=1e-3):
            raise ExportMismatch(f"{model_id}: ONNX count trees differ from LightGBM by up to "
                                 f"{np.abs(got - want).max()}")
        onnx.save(graph, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def run_trees(sess: Any, series: np.ndarray | Sequence[np.ndarray], dense: Any = None) -> np.ndarray:
    """A count trees graph's answer [n, 60] on n histories of at least 240
    minutes each (the newest last; rows of an array, or arrays of their
    own lengths), fed as the server feeds it: the window, and the day
    (``day``, older sets) or the dense p_invoke graph's (dense) features of
    it (``p_features``)."""
    takes = {i.name for i in sess.get_inputs()}
    rows = [np.asarray(r, np.float32) for r in series]
    feeds = {INPUT_NAME: np.stack([r[-WINDOW:] for r in rows])}
    if takes == {INPUT_NAME}:  # the window alone
        out: np.ndarray = sess.run([OUTPUT_NAME], feeds)[0]
        return out
    day = np.stack([pad_history(r) for r in rows])
    if DAY_INPUT_NAME in takes:
        feeds[DAY_INPUT_NAME] = day
    if P_FEATURES_NAME in takes:
        if dense is None:
            raise ValueError("these trees read the dense p_invoke graph's features: the dense graph is needed")
        feeds[P_FEATURES_NAME] = dense.run([P_FEATURES_NAME], {INPUT_NAME: day})[0]
    out = sess.run([OUTPUT_NAME], feeds)[0]
    return out


def entry(boosters: list[lgb.Booster], models: Path, file: str, weight: float, data: dict[str, int],
          validation: dict[str, Any], params: dict[str, Any] | None = None,
          features_of: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest's ``trees`` entry; features_of is the dense p_invoke
    entry whose feature operations the trees carry and read the day with
    (None: the window alone)."""
    e: dict[str, Any] = {"id": MEAN_ID if file == MEAN_FILE else "dense-trees", "file": file,
                         "sha256": sha256_file(models / file), "family": FAMILY,
                         "input_len": WINDOW, "weight": weight, "trees": sum(b.num_trees() for b in boosters),
                         "params": dict((PARAMS_HOUR if file == MEAN_FILE else PARAMS) if params is None else params),
                         "data": data,
                         "validation": validation}
    if features_of is not None:
        e |= {"dense_features": True, "features_of": {"model": features_of["id"], "sha256": features_of["sha256"]}}
    return e


def forecast_at(models: Path, man: dict[str, Any], series: np.ndarray, t: int,
                entry: dict[str, Any] | None = None) -> np.ndarray:
    """The manifest's count trees' (or another trees entry's, such as its
    mean trees') forecast [functions, 60] of every function at origin t, as
    the server runs them."""
    tr, dp = man["trees"] if entry is None else entry, man["dense"].get("p_invoke")
    dense = inference_session(str(models / dp["file"])) if tr.get("dense_features") and dp else None
    return run_trees(inference_session(str(models / tr["file"])), series[:, :t], dense)


def saved_fit(models: Path) -> list[lgb.Booster]:
    """The boosters `train_trees` kept beside a set (for a re-export or a
    study of the fit)."""
    return [lgb.Booster(model_str=m) for m in json.loads((models / SAVED_FIT).read_text())]


def wape(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.abs(pred - y).sum() / max(np.abs(y).sum(), 1e-9))


class _FitData(NamedTuple):
    """What a trees fit reads: the manifest, the training functions, the
    validation halves (early stopping reads stop, the choice held: neither
    choice sees the rows it is scored on), the dense p_invoke entry whose
    features the trees read and those features' function (None: the window
    alone)."""

    man: dict[str, Any]
    train: np.ndarray
    stop: np.ndarray
    held: np.ndarray
    dense_p: dict[str, Any] | None
    pf: PFeatures


def _fit_data(models: Path, load: Callable[[dict[str, Any]], tuple[np.ndarray, np.ndarray]],
              p_features: bool) -> _FitData:
    from .contract import read_clusters, read_manifest

    man = read_manifest(models)
    if man is None:
        raise ValueError(f"{models}/manifest.json missing: train the count models first")
    parts = [load(cl) for cl in read_clusters(models / man["clusters"])["clusters"]]
    train = np.concatenate([p[0] for p in parts]).astype(np.float32)
    val = np.concatenate([p[1] for p in parts]).astype(np.float32)
    dense_p = man["dense"].get("p_invoke") if p_features else None
    pf = dense_features(models / dense_p["file"]) if dense_p is not None else None
    return _FitData(man, train, val[0::2], val[1::2], dense_p, pf)


def _export_checked(boosters: list[lgb.Booster], models: Path, file: str, model_id: str, d: _FitData) -> None:
    """Exports the boosters, checked against LightGBM on 48 held-out
    windows and an empty one (and their dense p_invoke features, for trees
    that read them)."""
    from .data import EVAL_ORIGINS

    t0 = EVAL_ORIGINS[0]
    probe, _ = windows(d.held[:48], (t0,))
    probe = np.concatenate([probe, np.zeros((1, WINDOW), np.float32)])
    pf = None
    if d.pf is not None:
        some = np.concatenate([d.held[:48], np.zeros((1, d.held.shape[1]), np.float32)])
        pf = d.pf(some, t0)
    export(boosters, models / file, model_id, probe, pf)


def train_trees(models: Path, load: Callable[[dict[str, Any]], tuple[np.ndarray, np.ndarray]],
                log: Callable[[str], None] = print, *, params: dict[str, Any] | None = None,
                rounds: int = ROUNDS, stride: int = TRAIN_STRIDE, p_features: bool = True) -> dict[str, Any]:
    """Fits the count trees on every cluster's training functions (with
    p_features, on the dense p_invoke graph's features too, where the set
    has one), exports them to models/dense-trees.onnx and chooses their
    blend weight on the held-out half of the validation functions, every
    window as routed, in whole invocations as the server answers; records
    it in manifest.json as ``trees`` (removed when the routed forecast
    alone is best). load gives a cluster's (train, validation) functions."""
    from .contract import read_clusters, read_manifest, whole_invocations, write_json_atomic, write_manifest
    from .data import EVAL_ORIGINS
    from .routing import Router
    from .soft_routing import WAPE_TOLERANCE, served_forecast
    from .soft_routing import forecast_at as model_forecast_at

    d = _fit_data(models, load, p_features)
    man, train, stop, held, dense_p, pf = d
    log(f"count trees: {len(train)} training functions, {len(stop)} + {len(held)} validation functions, "
        f"{'with' if pf else 'without'} the dense p_invoke features")
    boosters = fit(train, stop, EVAL_ORIGINS, params=params, rounds=rounds, stride=stride, p_features=pf, log=log)
    (models / SAVED_FIT).parent.mkdir(exist_ok=True)
    # kept beside the set (publish leaves hidden folders behind), for a re-export
    write_json_atomic(models / SAVED_FIT, [b.model_to_string() for b in boosters])
    file = "dense-trees.onnx"
    _export_checked(boosters, models, file, "dense-trees", d)
    router = Router(read_clusters(models / man["clusters"]))
    man["trees"] = entry(boosters, models, file, 1.0, {}, {}, params, dense_p)  # what forecast_at runs
    routed, trees, dense, ys = [], [], [], []
    for t in EVAL_ORIGINS:
        routed.append(served_forecast(models, man, router, held, t))
        trees.append(forecast_at(models, man, held, t))
        dense.append(model_forecast_at(models, man["dense"], held, t))
        ys.append(held[:, t:t + HORIZON])
    r, tr, de, y = (np.concatenate(a).astype(np.float64) for a in (routed, trees, dense, ys))

    def served(w: float) -> float:
        return wape(whole_invocations((1 - w) * r + w * tr), y)
    scores = {w: served(w) for w in WEIGHTS}
    for w, sc in scores.items():
        log(f"count trees: weight {w}: validation WAPE {sc:.4f} in whole invocations")
    best = min(scores, key=lambda w: (scores[w], w))
    if scores[0.0] - scores[best] <= WAPE_TOLERANCE:
        # As for soft routing: a gain within the tolerance does not pay for
        # another model run on every forecast.
        best = 0.0
    validation = {"wape": round(scores[best], 6), "routed_wape": round(scores[0.0], 6),
                  "trees_wape": round(scores[1.0], 6), "dense_wape": round(wape(whole_invocations(de), y), 6),
                  # the dense model blended with the trees at the same weight:
                  # what the trees give without the experts
                  "dense_trees_wape": round(wape(whole_invocations((1 - best) * de + best * tr), y), 6),
                  "functions": len(held), "windows": len(y),
                  "chosen_on": "the validation functions early stopping did not read, every window as routed, "
                               "WAPE in whole invocations over the evaluation origins"}
    reread = read_manifest(models)
    assert reread is not None
    man = reread
    if best == 0.0:
        man.pop("trees", None)
        (models / file).unlink()
        log(f"count trees: the best weight gains at most {WAPE_TOLERANCE} WAPE over the routed forecast alone "
            f"({scores[0.0]:.4f}); no trees blended")
    else:
        data = {"train_functions": len(train), "val_functions": len(stop) + len(held)}
        man["trees"] = entry(boosters, models, file, best, data, validation, params, dense_p)
        log(f"count trees: weight {best}: validation WAPE {scores[best]:.4f} vs routed {scores[0.0]:.4f}, "
            f"trees alone {scores[1.0]:.4f}, dense {validation['dense_wape']:.4f}")
    write_manifest(models, man)
    return man


# The quantiles of each minute's count the quantile trees answer, beside
# the median (q0.5, the served count models'): what a platform sizes
# replicas by (EVALUATION.md section 4). One set of 60 boosters each, the
# count trees' recipe fitted to the pinball loss at that quantile.
QUANTILES = (0.9, 0.99)


def quantile_file(q: float) -> str:
    return f"dense-trees-q{q:g}.onnx"


def quantile_figures(pred: np.ndarray, y: np.ndarray, q: float) -> dict[str, float]:
    """Coverage (share of minutes whose count is at most the forecast)
    and the mean pinball loss at q of forecasts [n, 60] against y."""
    diff = y - pred
    pinball = np.where(diff >= 0, q * diff, (q - 1) * diff)
    return {"coverage": float((y <= pred).mean()), "pinball": float(pinball.mean())}


def train_quantile_trees(models: Path, load: Callable[[dict[str, Any]], tuple[np.ndarray, np.ndarray]],
                         log: Callable[[str], None] = print, *, quantiles: tuple[float, ...] = QUANTILES,
                         params: dict[str, Any] | None = None, rounds: int = ROUNDS, stride: int = TRAIN_STRIDE,
                         p_features: bool = True) -> dict[str, Any]:
    """Fits the quantile trees (fit, pinball loss at each quantile, on the
    count trees' inputs) on every cluster's training functions,
    early-stopped on one half of the validation functions, exports each
    to models/dense-trees-q<q>.onnx (checked against LightGBM) and records
    them in manifest.json as ``quantiles``, with their coverage and
    pinball loss on the other half (overall, and on windows whose level
    is at least BUSY_LEVEL). `mesp choose-quantiles` then calibrates the
    levels served from these graphs (manifest ``scale``)."""
    from .contract import read_manifest, write_manifest
    from .data import EVAL_ORIGINS

    if any(not 0.5 < q < 1 for q in quantiles) or list(quantiles) != sorted(set(quantiles)):
        raise ValueError(f"quantiles {quantiles}: want increasing levels in (0.5, 1)")
    d = _fit_data(models, load, p_features)
    _man, train, stop, held, dense_p, pf = d
    log(f"quantile trees: {len(train)} training functions, {len(stop)} + {len(held)} validation functions, "
        f"quantiles {', '.join(f'{q:g}' for q in quantiles)}")
    xh, sh, yh = inputs(held, EVAL_ORIGINS, pf)
    busy, y = sh >= BUSY_LEVEL, yh.astype(np.float64)
    entries, lower = [], np.zeros((len(xh), HORIZON))
    for q in quantiles:
        p = dict(PARAMS if params is None else params) | {"objective": "quantile", "alpha": q}
        def qlog(m: str, q: float = q) -> None:
            log(f"q{q:g}: {m}")
        boosters = fit(train, stop, EVAL_ORIGINS, params=p, rounds=rounds, stride=stride, p_features=pf, log=qlog)
        file = quantile_file(q)
        _export_checked(boosters, models, file, file.removesuffix(".onnx"), d)
        pred = np.maximum(_counts(boosters, xh, sh), lower)  # as served: never under a lower quantile
        lower = pred
        validation: dict[str, Any] = {
            "all": quantile_figures(pred, y, q), "busy": quantile_figures(pred[busy], y[busy], q),
            "busy_level": BUSY_LEVEL, "functions": len(held), "windows": len(y),
            "chosen_on": "the validation functions early stopping did not read, over the evaluation origins, "
                         "each quantile at least the lower quantile trees' answer"}
        e = entry(boosters, models, file, 1.0, {"train_functions": len(train),
                                                "val_functions": len(stop) + len(held)}, validation, p, dense_p)
        e.pop("weight")
        entries.append({"q": q, **e, "id": file.removesuffix(".onnx")})
        log(f"quantile trees q{q:g}: {e['trees']} trees; validation coverage {validation['all']['coverage']:.4f}, "
            f"busy windows {validation['busy']['coverage']:.4f}")
    man = read_manifest(models)
    assert man is not None
    for old in man.get("quantiles", []):
        if old["file"] not in {e["file"] for e in entries}:
            (models / old["file"]).unlink(missing_ok=True)
    man["quantiles"] = entries
    write_manifest(models, man)
    return man


# Shares of the mean trees in the expected count tried on the held-out
# validation half: (1 - a) times the served level plus a times the trees'.
MEAN_WEIGHTS = tuple(round(0.1 * k, 1) for k in range(11))


def hour_figures(pred: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The hour's volume over windows [n, 60]: WAPE of each window's hour
    (sum |F - Y| / sum Y over windows) and the bias sum F / sum Y."""
    fh, yh = pred.sum(axis=1), y.sum(axis=1)
    total = max(float(yh.sum()), 1e-9)
    return float(np.abs(fh - yh).sum() / total), float(fh.sum() / total)


def train_mean_trees(models: Path, load: Callable[[dict[str, Any]], tuple[np.ndarray, np.ndarray]],
                     log: Callable[[str], None] = print, *, params: dict[str, Any] | None = None,
                     rounds: int = HOUR_ROUNDS, stride: int = TRAIN_STRIDE, p_features: bool = True) -> dict[str, Any]:
    """Fits the mean trees (the hour's volume, fit_hour, on the count
    trees' features) on every cluster's training functions, early-stopped
    on one half of the validation functions, exports them to
    models/dense-trees-mean.onnx, and chooses on the other half, every
    window as served, the share a of the expected count they answer,
    (1 - a) times the served level (routed, soft-routed and blended with
    the count trees, before rounding) plus a times their hour shaped by
    that level (shaped), by the hour's WAPE; records it in manifest.json
    as ``mean`` with ``hour`` (removed when a = 0)."""
    from .contract import read_clusters, read_manifest, whole_invocations, write_manifest
    from .data import EVAL_ORIGINS
    from .routing import Router
    from .soft_routing import served_forecast

    d = _fit_data(models, load, p_features)
    man, train, stop, held, dense_p, pf = d
    p = dict(PARAMS_HOUR if params is None else params)
    log(f"mean trees: {len(train)} training functions, {len(stop)} + {len(held)} validation functions, "
        f"the hour's volume, objective {p['objective']}")
    boosters = fit_hour(train, stop, EVAL_ORIGINS, params=p, rounds=rounds, stride=stride, p_features=pf)
    log(f"mean trees: {boosters[0].num_trees()} trees")
    _export_checked(boosters, models, MEAN_FILE, MEAN_ID, d)
    mean_entry = entry(boosters, models, MEAN_FILE, 1.0, {}, {}, p, dense_p) | {"hour": True}
    router = Router(read_clusters(models / man["clusters"]))
    tw = man["trees"]["weight"] if man.get("trees") else 0.0
    levels, means, ys = [], [], []
    for t in EVAL_ORIGINS:
        level = served_forecast(models, man, router, held, t).astype(np.float64)
        if tw:
            level = (1 - tw) * level + tw * forecast_at(models, man, held, t)
        levels.append(level)
        means.append(shaped(level, forecast_at(models, man, held, t, mean_entry)))
        ys.append(held[:, t:t + HORIZON])
    lv, mn, y = (np.concatenate(a).astype(np.float64) for a in (levels, means, ys))
    scores = {a: hour_figures((1 - a) * lv + a * mn, y) for a in MEAN_WEIGHTS}
    for a, (hw, hb) in scores.items():
        log(f"mean trees: share {a}: validation hour WAPE {hw:.4f}, hour bias {hb:.4f}")
    best = min(scores, key=lambda a: (scores[a][0], a))
    median = whole_invocations(lv)
    median_hour = hour_figures(median, y)
    validation = {"hour_wape": round(scores[best][0], 6), "hour_bias": round(scores[best][1], 6),
                  "level_hour_wape": round(scores[0.0][0], 6), "level_hour_bias": round(scores[0.0][1], 6),
                  "median_hour_wape": round(median_hour[0], 6), "median_hour_bias": round(median_hour[1], 6),
                  "trees_hour_wape": round(scores[1.0][0], 6), "trees_hour_bias": round(scores[1.0][1], 6),
                  "median_wape": round(wape(median, y), 6), "mean_wape": round(wape((1 - best) * lv + best * mn, y), 6),
                  "functions": len(held), "windows": len(y),
                  "chosen_on": "the validation functions early stopping did not read, every window as served "
                               "(timers' expert aside), the hour's WAPE over the evaluation origins"}
    reread = read_manifest(models)
    assert reread is not None
    man = reread
    if best == 0.0:
        man.pop("mean", None)
        (models / MEAN_FILE).unlink()
        log(f"mean trees: the served level alone has the best hour WAPE ({scores[0.0][0]:.4f}); no mean trees")
    else:
        data = {"train_functions": len(train), "val_functions": len(stop) + len(held)}
        man["mean"] = entry(boosters, models, MEAN_FILE, best, data, validation, p, dense_p) | {"hour": True}
        log(f"mean trees: share {best}: validation hour WAPE {scores[best][0]:.4f} (bias {scores[best][1]:.4f}) vs "
            f"the served median {validation['median_hour_wape']:.4f} (bias {validation['median_hour_bias']:.4f})")
    write_manifest(models, man)
    return man
