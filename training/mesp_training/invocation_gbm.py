"""Gradient-boosted trees as a p_invoke family: LightGBM on the same
in-graph features, for the minute that drives the decision (horizon 1),
the MLP for the other 59 minutes. Exported as one ONNX graph: the
features, the MLP on them, the trees' raw margin as ONNX Runtime's
TreeEnsembleRegressor (onnxmltools) on the same features and its sigmoid,
and the two joined into the ``p_invoke`` output the server reads; the
features are a second output. (A one-target ensemble, because ONNX
Runtime walks its trees across a batch's rows, where it walks a binary
classifier's, two classes, row by row: 69 -> 64 us a row for the dense
trees at batch 256, docs/research.md.)

A cluster's trees are warm-started from the dense model's (LightGBM's
``init_model``: more trees fitted on the cluster's functions), as the MLP
experts are fine-tuned from the dense MLP. Its graph holds only the trees
it added and takes no counts: its inputs are the dense graph's features and
minute 1, which the server has from the dense graph's run. A served expert
then costs its few trees and its MLP, rather than another copy of thousands
of trees (which also competed with the dense copy for the CPU's caches) and
another pass of the feature operations over a day of minutes.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import onnx
import torch
from onnx import TensorProto, compose, helper

from .contract import DENSE_P1_INPUT_NAME, HORIZON, INPUT_NAME, P_FEATURES_NAME, P_INVOKE_OUTPUT_NAME
from .invocation import WINDOW, InvocationModel
from .runtime import inference_session

if TYPE_CHECKING:
    import onnxruntime as ort

FAMILY = "hazard-mlp+lightgbm"
PARAMS: dict[str, Any] = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 63, "min_data_in_leaf": 100,
                          "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "verbose": -1,
                          "seed": 1}


def fit_gbm(x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, *, rounds: int,
            init: lgb.Booster | None = None, learning_rate: float | None = None,
            num_leaves: int | None = None) -> lgb.Booster:
    """Trees for "invoked in the next minute", early-stopped on validation."""
    params = dict(PARAMS)
    if learning_rate is not None:
        params["learning_rate"] = learning_rate
    if num_leaves is not None:
        params["num_leaves"] = num_leaves
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LightGBM warns about sliced arrays
        train = lgb.Dataset(x, y, free_raw_data=True)
        val = lgb.Dataset(xv, yv, reference=train)
        # A copy: continued training must not touch the dense model's trees.
        start = lgb.Booster(model_str=init.model_to_string()) if init is not None else None
        b = lgb.train(params, train, rounds, valid_sets=[val], init_model=start,
                      callbacks=[lgb.early_stopping(30, verbose=False)])
    # Keep the best iteration's trees only, so that prediction, export and
    # a later warm start all see the same model.
    return lgb.Booster(model_str=b.model_to_string(num_iteration=b.best_iteration or None))


class _WithFeatures(torch.nn.Module):
    """The MLP's graph with its raw features as a second output."""

    def __init__(self, model: InvocationModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.model.features(x)
        return torch.sigmoid(self.model.logits_from_features(f)), f


class _FromFeatures(torch.nn.Module):
    """The MLP's graph on features already computed (by the dense graph)."""

    def __init__(self, model: InvocationModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model.logits_from_features(f))


BINARY = "objective=binary sigmoid:1"
# dense_p1 is clipped before its logit is taken: float32 rounds 1 - 1e-7
# to 0.99999988, so the logit is at most about 16 (p1 = 1 stays 1).
P1_EPS = 1e-7


def margin_trees_graph(booster: lgb.Booster, skip: int, n_features: int) -> onnx.ModelProto:
    """The trees after the first ``skip`` (those an expert fitted on top of
    the dense model's; 0: all of them) as one TreeEnsembleRegressor of
    their raw margin: input ``features``, output ``variable`` [batch, 1]."""
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    text = booster.model_to_string(start_iteration=skip)
    if BINARY not in text:
        raise ValueError(f"trees with a binary objective expected ({BINARY!r} not in the model)")
    # The same trees read as a regression: the converter then sums the raw
    # margin instead of applying the sigmoid to these trees alone.
    added = lgb.Booster(model_str=text.replace(BINARY, "objective=regression"))
    inputs = [("features", FloatTensorType([None, n_features]))]
    graph: onnx.ModelProto = convert_lightgbm(added, initial_types=inputs, target_opset=15)
    return graph


def build_graph(model: InvocationModel, booster: lgb.Booster, probe: np.ndarray, opset: int,
                base_trees: int = 0) -> onnx.ModelProto:
    """The MLP and the trees in one graph.

    Without base_trees: input ``counts``, outputs ``p_invoke`` (minute 1
    the sigmoid of the trees' margin) and the features both parts read
    (P_FEATURES_NAME). With base_trees: only the
    trees after the first base_trees (the dense model's), fed the dense
    graph's features and minute 1 (inputs P_FEATURES_NAME and
    DENSE_P1_INPUT_NAME); minute 1 is sigmoid(logit(dense_p1) + their
    margin). The features are then computed once per request, by the dense
    graph, however many experts answer."""
    from .export import trace_graph

    if base_trees:
        with torch.no_grad():
            f = model.features(torch.from_numpy(probe)).numpy()
        mlp = trace_graph(_FromFeatures(model), f, ["p_mlp"], opset, input_name=P_FEATURES_NAME)
    else:
        mlp = trace_graph(_WithFeatures(model), probe, ["p_mlp", P_FEATURES_NAME], opset)
    trees = margin_trees_graph(booster, base_trees, model.features.n_features)
    trees = compose.add_prefix(trees, "gbm_")
    # The trees read the features tensor itself: their nodes and weights
    # join the MLP's graph (one opset per domain: the trees' few standard
    # ops exist unchanged in the MLP's newer opset).
    g = mlp.graph
    for node in trees.graph.node:
        node.input[:] = [P_FEATURES_NAME if i == "gbm_features" else i for i in node.input]
    g.node.extend(trees.graph.node)
    g.initializer.extend(trees.graph.initializer)
    domains = {imp.domain for imp in mlp.opset_import}
    mlp.opset_import.extend(imp for imp in trees.opset_import if imp.domain not in domains | {"ai.onnx"})
    consts = {"one": [1], "sixty": [HORIZON], "axis": [1]}
    for name, v in consts.items():
        g.initializer.append(helper.make_tensor(f"join_{name}", TensorProto.INT64, [1], v))
    if base_trees:
        for name, x in {"eps": P1_EPS, "most": 1 - P1_EPS, "unit": 1.0}.items():
            g.initializer.append(helper.make_tensor(f"join_{name}", TensorProto.FLOAT, [], [x]))
        g.input.append(helper.make_tensor_value_info(DENSE_P1_INPUT_NAME, TensorProto.FLOAT, ["batch", 1]))
        g.node.extend([
            helper.make_node("Clip", [DENSE_P1_INPUT_NAME, "join_eps", "join_most"], ["join_dense"]),
            helper.make_node("Sub", ["join_unit", "join_dense"], ["join_dense_not"]),
            helper.make_node("Div", ["join_dense", "join_dense_not"], ["join_odds"]),
            helper.make_node("Log", ["join_odds"], ["join_dense_logit"]),
            helper.make_node("Add", ["join_dense_logit", "gbm_variable"], ["join_logit"]),
            helper.make_node("Sigmoid", ["join_logit"], ["join_p1"]),
        ])
    else:
        g.node.append(helper.make_node("Sigmoid", ["gbm_variable"], ["join_p1"]))
    g.node.extend([
        helper.make_node("Slice", ["p_mlp", "join_one", "join_sixty", "join_axis"], ["join_rest"]),
        helper.make_node("Concat", ["join_p1", "join_rest"], [P_INVOKE_OUTPUT_NAME], axis=1),
    ])
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(P_INVOKE_OUTPUT_NAME, TensorProto.FLOAT, ["batch", HORIZON]))
    if not base_trees:
        g.output.append(helper.make_tensor_value_info(P_FEATURES_NAME, TensorProto.FLOAT,
                                                      ["batch", model.features.n_features]))
    return mlp


def run_p_invoke(sess: ort.InferenceSession, x: np.ndarray, dense: ort.InferenceSession | None = None) -> np.ndarray:
    """p_invoke [n, 60] of histories x (padded to a day) as the server
    answers it: an expert that continues the dense trees is fed the dense
    graph's (dense) features and minute 1 on the same histories."""
    if P_FEATURES_NAME not in {i.name for i in sess.get_inputs()}:
        out: np.ndarray = sess.run([P_INVOKE_OUTPUT_NAME], {INPUT_NAME: x})[0]
        return out
    if dense is None:
        raise ValueError("this p_invoke graph continues the dense model's trees: the dense graph is needed")
    p, f = dense.run([P_INVOKE_OUTPUT_NAME, P_FEATURES_NAME], {INPUT_NAME: x})
    out = sess.run([P_INVOKE_OUTPUT_NAME], {P_FEATURES_NAME: f, DENSE_P1_INPUT_NAME: p[:, :1]})[0]
    return out


def predict_h1(booster: lgb.Booster, x: np.ndarray) -> np.ndarray:
    return np.asarray(booster.predict(x), np.float64)


def dense_p1(base: lgb.Booster, features: np.ndarray) -> np.ndarray:
    """The dense model's minute 1 as the server feeds it to an expert that
    continues its trees: float32 [n, 1], as the dense graph answers it."""
    return np.asarray(base.predict(features), np.float32)[:, None]


def export(model: InvocationModel, booster: lgb.Booster, features: np.ndarray, path: Path, model_id: str,
           probe: np.ndarray, opset: int, base: lgb.Booster | None = None) -> None:
    """Writes the joined graph, checked against torch (minutes 2..60) and
    LightGBM (minute 1), and its features output against torch's, on
    real-shaped probes before it replaces path. With base (the dense trees
    that booster continues), the graph holds only booster's added trees
    and takes the features and base's minute 1 as its inputs."""
    from .export import ExportMismatch, stamp

    with torch.no_grad():
        f = model.features(torch.from_numpy(probe))
        want = torch.sigmoid(model.logits_from_features(f)).numpy()
    want[:, 0] = predict_h1(booster, f.numpy())
    feeds = {INPUT_NAME: probe}
    base_trees = 0
    if base is not None:
        base_trees = base.num_trees()
        head = booster.predict(f.numpy(), num_iteration=base_trees, raw_score=True)
        dense = base.predict(f.numpy(), raw_score=True)
        if booster.num_trees() < base_trees or not np.allclose(head, dense, atol=1e-9):
            raise ExportMismatch(f"{model_id}: its first {base_trees} trees are not the dense model's")
        feeds = {P_FEATURES_NAME: f.numpy(), DENSE_P1_INPUT_NAME: dense_p1(base, f.numpy())}
    graph = stamp(build_graph(model, booster, probe, opset, base_trees), model_id, WINDOW, FAMILY)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".onnx")
    os.close(fd)
    try:
        onnx.save(graph, tmp)
        sess = inference_session(tmp)
        got = sess.run([P_INVOKE_OUTPUT_NAME], feeds)[0]
        if got.shape != (len(probe), HORIZON) or not np.allclose(got, want, atol=1e-4):
            raise ExportMismatch(f"{model_id}: joined ONNX p_invoke differs by up to {np.abs(got - want).max()}")
        if base is None:
            got_f = sess.run([P_FEATURES_NAME], feeds)[0]
            if got_f.shape != f.shape or not np.allclose(got_f, f.numpy(), rtol=1e-5, atol=1e-5):
                raise ExportMismatch(f"{model_id}: the ONNX features differ from torch's")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
