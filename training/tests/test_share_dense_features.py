"""scripts/share_dense_features.py: count trees of the older layout (each
graph computed the dense p_invoke features from the day) are cut to take
those features, answer as before when fed the set's dense graph's, and the
set's manifest follows; a set whose dense graph is not the one the trees
were fitted on is refused."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import fixture_rows, load_script, shipped_models

from mesp_training.count_trees import run_trees
from mesp_training.runtime import inference_session

# Trees of the older layout, fitted on the shipped dense p_invoke graph's
# features (the Go tests' count-trees fixture as it was exported then).
DAY_TREES = Path(__file__).parent / "count-trees-day.onnx"


def old_layout_set(tmp_path: Path, features_sha: str | None = None) -> Path:
    """The shipped set with DAY_TREES as its count trees, said to read the
    day and fitted on the features of the graph of sha256 features_sha (the
    set's dense p_invoke graph by default)."""
    models = tmp_path / "models"
    shutil.copytree(shipped_models(), models, ignore=shutil.ignore_patterns(".work"))
    shutil.copy(DAY_TREES, models / "dense-trees.onnx")
    m = json.loads((models / "manifest.json").read_text())
    dp = m["dense"]["p_invoke"]
    m["trees"] = {k: v for k, v in m["trees"].items() if k != "dense_features"} | {
        "day": True, "sha256": hashlib.sha256(DAY_TREES.read_bytes()).hexdigest(),
        "features_of": {"model": dp["id"], "sha256": features_sha or dp["sha256"]}}
    (models / "manifest.json").write_text(json.dumps(m))
    return models


def test_cut_trees_answer_as_the_day_trees(tmp_path: Path) -> None:
    sf = load_script("share_dense_features")
    old = onnx.load(str(DAY_TREES))
    new = sf.shared(old)
    assert [i.name for i in new.graph.input] == ["counts", "p_features"]
    assert {p.key: p.value for p in new.metadata_props} == {p.key: p.value for p in old.metadata_props}
    # none of the feature operations are left in it
    assert not {"CumSum", "GatherElements", "MatMul"} & {n.op_type for n in new.graph.node}
    onnx.save(new, str(tmp_path / "new.onnx"))
    dense = inference_session(str(shipped_models() / "dense-p.onnx"))
    rows = list(fixture_rows().values())[::3]
    for t in (240, 900, 1440):  # padded days and whole ones
        x = np.stack([r[:t] for r in rows])
        want = run_trees(inference_session(str(DAY_TREES)), x)
        got = run_trees(inference_session(str(tmp_path / "new.onnx")), x, dense)
        assert got.shape == (len(rows), 60) and want.sum() > 0
        np.testing.assert_allclose(got, want, atol=sf.TOLERANCE, rtol=sf.TOLERANCE)


def test_a_set_is_brought_to_the_layout_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sf = load_script("share_dense_features")
    models = old_layout_set(tmp_path)
    assert sf.main(["--models", str(models)]) == 0
    m = json.loads((models / "manifest.json").read_text())
    tr = m["trees"]
    assert tr["dense_features"] is True and "day" not in tr
    assert tr["sha256"] == hashlib.sha256((models / "dense-trees.onnx").read_bytes()).hexdigest()
    assert [i.name for i in onnx.load(str(models / "dense-trees.onnx")).graph.input] == ["counts", "p_features"]
    assert sf.main(["--models", str(models)]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_trees_of_another_dense_graph_are_refused(tmp_path: Path) -> None:
    sf = load_script("share_dense_features")
    models = old_layout_set(tmp_path, features_sha="ab" * 32)
    before = (models / "dense-trees.onnx").read_bytes()
    with pytest.raises(SystemExit, match="another dense p_invoke graph"):
        sf.main(["--models", str(models)])
    assert (models / "dense-trees.onnx").read_bytes() == before
