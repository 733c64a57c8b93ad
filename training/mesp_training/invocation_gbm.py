"""Gradient-boosted trees as a p_invoke family: LightGBM on the same
in-graph features, for the minute that drives the decision (horizon 1),
the MLP for the other 59 minutes. Exported as one ONNX graph: the MLP's
graph with its features as a second output, the trees as ONNX Runtime's
TreeEnsembleClassifier (onnxmltools) fed from those features, and the two
joined into the one ``p_invoke`` output the server reads.

A cluster's trees are warm-started from the dense model's (LightGBM's
``init_model``: more trees fitted on the cluster's functions), as the MLP
experts are fine-tuned from the dense MLP.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import onnx
import torch
from onnx import TensorProto, compose, helper

from .contract import HORIZON, INPUT_NAME, P_INVOKE_OUTPUT_NAME
from .invocation import WINDOW, InvocationModel
from .runtime import inference_session

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


def trees_graph(booster: lgb.Booster, n_features: int) -> onnx.ModelProto:
    """The trees alone as ONNX Runtime's TreeEnsembleClassifier: input
    ``features`` [batch, n_features], outputs ``label`` and ``probabilities``."""
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    inputs = [("features", FloatTensorType([None, n_features]))]
    graph: onnx.ModelProto = convert_lightgbm(booster, initial_types=inputs, zipmap=False, target_opset=15)
    return graph


def build_graph(model: InvocationModel, booster: lgb.Booster, probe: np.ndarray, opset: int) -> onnx.ModelProto:
    fd, tmp = tempfile.mkstemp(suffix=".onnx")
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # eval() on the wrapper: the exporter applies the root's mode to all.
            torch.onnx.export(_WithFeatures(model).eval(), (torch.from_numpy(probe),), tmp, input_names=[INPUT_NAME],
                              output_names=["p_mlp", "features"],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, "p_mlp": {0: "batch"}, "features": {0: "batch"}},
                              opset_version=opset, dynamo=False)
        mlp = onnx.load(tmp)
    finally:
        os.remove(tmp)
    trees = trees_graph(booster, model.features.n_features)
    # One opset per domain in the joined graph: the trees' few standard ops
    # exist unchanged in the MLP's newer opset.
    for imp in trees.opset_import:
        if imp.domain in ("", "ai.onnx"):
            imp.version = opset
    trees.ir_version = mlp.ir_version
    trees = compose.add_prefix(trees, "gbm_")
    joined = compose.merge_models(mlp, trees, io_map=[("features", "gbm_features")])
    g = joined.graph
    consts = {"one": [1], "two": [2], "sixty": [HORIZON], "axis": [1]}
    for name, v in consts.items():
        g.initializer.append(helper.make_tensor(f"join_{name}", TensorProto.INT64, [1], v))
    g.node.extend([
        helper.make_node("Slice", ["gbm_probabilities", "join_one", "join_two", "join_axis"], ["join_p1"]),
        helper.make_node("Slice", ["p_mlp", "join_one", "join_sixty", "join_axis"], ["join_rest"]),
        helper.make_node("Concat", ["join_p1", "join_rest"], [P_INVOKE_OUTPUT_NAME], axis=1),
    ])
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(P_INVOKE_OUTPUT_NAME, TensorProto.FLOAT, ["batch", HORIZON]))
    return joined


def predict_h1(booster: lgb.Booster, x: np.ndarray) -> np.ndarray:
    return np.asarray(booster.predict(x), np.float64)


def export(model: InvocationModel, booster: lgb.Booster, features: np.ndarray, path: Path, model_id: str,
           probe: np.ndarray, opset: int) -> None:
    """Writes the joined graph, checked against torch (minutes 2..60) and
    LightGBM (minute 1) on real-shaped probes before it replaces path."""
    from .export import ExportMismatch, stamp

    graph = stamp(build_graph(model, booster, probe, opset), model_id, WINDOW, FAMILY)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".onnx")
    os.close(fd)
    try:
        onnx.save(graph, tmp)
        got = inference_session(tmp).run([P_INVOKE_OUTPUT_NAME], {INPUT_NAME: probe})[0]
        with torch.no_grad():
            f = model.features(torch.from_numpy(probe))
            want = torch.sigmoid(model.logits_from_features(f)).numpy()
        want[:, 0] = predict_h1(booster, f.numpy())
        if got.shape != (len(probe), HORIZON) or not np.allclose(got, want, atol=1e-4):
            raise ExportMismatch(f"{model_id}: joined ONNX p_invoke differs by up to {np.abs(got - want).max()}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
