"""scripts/one_target_trees.py: graphs exported before the one-target
layout (a 60-target count-trees ensemble; p_invoke's minute 1 from a
binary TreeEnsembleClassifier) rewritten to it answer as before."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import fixture_rows
from onnx import compose, helper

from mesp_training import count_trees as ct

ROOT = Path(__file__).resolve().parents[2]


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("one_target_trees", ROOT / "scripts" / "one_target_trees.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["one_target_trees"] = mod
    spec.loader.exec_module(mod)
    return mod


def _run(path: Path, feeds: dict[str, np.ndarray], output: str) -> np.ndarray:
    out: np.ndarray = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run([output], feeds)[0]
    return out


def test_count_trees_split_answer_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    series = np.stack(list(fixture_rows().values()))
    params = dict(ct.PARAMS, min_data_in_leaf=5, num_leaves=7)
    boosters = ct.fit(series[:80], series[80:], (1080,), params=params, rounds=3, stride=120, log=lambda _: None)
    probe, _ = ct.windows(series[80:], (1080, 1320))
    old = tmp_path / "old.onnx"
    with monkeypatch.context() as m:  # the layout before: one 60-target ensemble
        m.setattr(ct, "one_target_ensembles", lambda node: [node])
        ct.export(boosters, old, "dense-trees", probe)
    before = onnx.load(str(old))
    assert [n.op_type for n in before.graph.node].count("TreeEnsembleRegressor") == 1
    new = _script().split_count_trees(before)
    path = tmp_path / "new.onnx"
    onnx.save(new, str(path))
    assert [n.op_type for n in new.graph.node].count("TreeEnsembleRegressor") == 60
    assert new.metadata_props == before.metadata_props  # the contract's stamp kept
    want, got = _run(old, {"counts": probe}, "forecast"), _run(path, {"counts": probe}, "forecast")
    assert np.abs(want).sum() > 0
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_classifier_becomes_margin_and_sigmoid(tmp_path: Path) -> None:
    """A binary LightGBM classifier as onnxmltools exported it, with the
    graph's slice of class 1 for minute 1, and its rewrite: the same
    minute 1 within 1e-6, no classifier left."""
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=400) > 0).astype(int)
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1}, lgb.Dataset(x, y), num_boost_round=20)
    cls = convert_lightgbm(booster, initial_types=[("features", FloatTensorType([None, 5]))], zipmap=False,
                           target_opset=15)
    g = compose.add_prefix(cls, "gbm_").graph
    for k, v in {"join_one": 1, "join_two": 2, "join_axis": 1}.items():
        g.initializer.append(helper.make_tensor(k, onnx.TensorProto.INT64, [1], [v]))
    g.node.append(helper.make_node("Slice", ["gbm_probabilities", "join_one", "join_two", "join_axis"], ["join_p1"]))
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("join_p1", onnx.TensorProto.FLOAT, ["batch", 1]))
    ml = [o for o in cls.opset_import if o.domain == "ai.onnx.ml"]
    old_model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), *ml])
    old, new = tmp_path / "old.onnx", tmp_path / "new.onnx"
    onnx.save(old_model, str(old))
    rewritten = _script().margin_p_invoke(old_model)
    onnx.save(rewritten, str(new))
    assert not any(n.op_type == "TreeEnsembleClassifier" for n in rewritten.graph.node)
    assert "join_two" not in {t.name for t in rewritten.graph.initializer}  # what only the slice read is gone
    want, got = _run(old, {"gbm_features": x}, "join_p1"), _run(new, {"gbm_features": x}, "join_p1")
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
    np.testing.assert_allclose(got[:, 0], booster.predict(x), atol=1e-5)
    with pytest.raises(ValueError, match="not a dense p_invoke graph"):
        _script().margin_p_invoke(rewritten)
