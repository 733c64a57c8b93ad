"""scripts/refeature_pinvoke.py: a shipped p_invoke graph rebuilt on a
fresh export of the feature module answers as before, and anything that is
not a p_invoke graph of this project is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import fixture_rows, load_script, shipped_models

from mesp_training.invocation import InvocationFeatures, pad_history


def continuing_expert() -> str:
    """The first shipped p_invoke expert whose graph continues the dense
    trees (it takes the dense graph's features and minute 1)."""
    m = json.loads((shipped_models() / "manifest.json").read_text())
    return next(e["p_invoke"]["file"] for e in m["experts"] if e.get("p_invoke", {}).get("base"))


@pytest.mark.parametrize("file", ["dense-p.onnx", continuing_expert()])
def test_refeatured_graph_answers_as_the_shipped_one(tmp_path: Path, file: str) -> None:
    rf = load_script("refeature_pinvoke")
    rows = list(fixture_rows().values())[::5]
    x = np.stack([pad_history(r[:t]) for r in rows for t in (1440, 1100, 400)])
    old_path = shipped_models() / file
    old = onnx.load(str(old_path))
    new = rf.refeature(old, rf.feature_graph(x[:2]))
    assert {p.key: p.value for p in new.metadata_props} == {p.key: p.value for p in old.metadata_props}
    if file == "dense-p.onnx":
        assert [i.name for i in new.graph.input] == ["counts"]
        assert [o.name for o in new.graph.output] == ["p_invoke", "p_features"]
    else:
        # no feature operations left: the dense graph's features come in
        assert [i.name for i in new.graph.input] == ["p_features", "dense_p1"]
        assert [o.name for o in new.graph.output] == ["p_invoke"]
        assert not {"CumSum", "GatherElements"} & {n.op_type for n in new.graph.node}
    onnx.save(new, str(tmp_path / "new.onnx"))
    with torch.no_grad():
        values = InvocationFeatures()(torch.from_numpy(x)).numpy()
    want, got = rf.answers(str(old_path), x, values), rf.answers(str(tmp_path / "new.onnx"), x, values)
    assert got.shape == want.shape == (len(x), 60)
    np.testing.assert_allclose(got, want, atol=rf.TOLERANCE, rtol=0)
    # Cutting the result again the same way changes nothing.
    again = rf.refeature(new, rf.feature_graph(x[:2]))
    assert again.SerializeToString() == new.SerializeToString()


def test_a_count_model_is_refused() -> None:
    rf = load_script("refeature_pinvoke")
    with pytest.raises(ValueError, match="not a p_invoke graph"):
        rf.refeature(onnx.load(str(shipped_models() / "dense.onnx")), rf.feature_graph(np.zeros((2, 1440), np.float32)))
