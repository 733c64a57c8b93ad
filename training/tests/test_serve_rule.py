from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from conftest import shipped_models

from mesp_training.contract import read_clusters, read_manifest
from mesp_training.data import EVAL_ORIGINS, windows
from mesp_training.pipeline import choose_serving, load_cluster
from mesp_training.search import SearchConfig
from mesp_training.serve_rule import WIN_CONFIDENCE, judge, validation_errors


@pytest.mark.parametrize(("expert", "dense", "ratio", "serve"), [
    # better on every function: every resample agrees
    ([1.0, 2.0, 3.0, 4.0] * 10, [2.0, 3.0, 4.0, 5.0] * 10, 100 / 140, "expert"),
    # a lower total owed to one busy function: the expert loses every
    # resample that misses it, about a third of them
    ([1.0] + [11.0] * 19, [30.0] + [10.0] * 19, 210 / 220, "dense"),
    # equal models never serve the expert
    ([5.0] * 30, [5.0] * 30, 1.0, "dense"),
    # worse everywhere
    ([3.0] * 30, [2.0] * 30, 1.5, "dense"),
])
def test_judge(expert: list[float], dense: list[float], ratio: float, serve: str) -> None:
    v = judge(np.array(expert), np.array(dense))
    assert v.ratio == pytest.approx(ratio) and v.functions == len(expert)
    assert v.serve == serve
    assert (v.win_share >= WIN_CONFIDENCE) == (serve == "expert")


def test_judge_is_paired_and_refuses_mismatched_errors() -> None:
    # One function is much harder than the rest for both models: a paired
    # test sees the expert win on every function, whichever are drawn.
    hard = np.array([1000.0] + [1.0] * 9)
    v = judge(hard * 0.99, hard)
    assert v.win_share == 1.0 and v.serve == "expert"
    with pytest.raises(ValueError, match="shape"):
        judge(np.ones(3), np.ones(4))
    assert judge(np.zeros(0), np.zeros(0)).serve == "dense"


def test_choose_serving_on_the_shipped_set(tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(shipped_models(), models, ignore=shutil.ignore_patterns(".work"))
    before = read_manifest(models)
    assert before is not None
    cfg = SearchConfig()
    man = choose_serving(models, cfg)
    cs = {cl["id"]: cl for cl in read_clusters(models / man["clusters"])["clusters"]}
    for e, old in zip(man["experts"], before["experts"], strict=True):
        # only the decision and its figures change
        assert {k: v for k, v in e.items() if k not in ("serve", "serve_rule", "dense_val_mae")} == \
            {k: v for k, v in old.items() if k not in ("serve", "serve_rule", "dense_val_mae")}
        val = load_cluster(models, cs[e["cluster"]], cfg.val_percent)[1]
        # per-function errors computed independently: the windows of
        # data.windows (function by function) through ONNX Runtime
        errs = []
        for entry in (e, man["dense"]):
            x, y = windows(val, entry["input_len"], EVAL_ORIGINS)
            pred = ort.InferenceSession(str(models / entry["file"]), providers=["CPUExecutionProvider"]).run(
                None, {"counts": x})[0]
            errs.append(np.abs(pred - y).reshape(len(val), -1).sum(axis=1))
        np.testing.assert_allclose(validation_errors(models, e, val), errs[0], rtol=1e-5)
        v = judge(errs[0], errs[1])
        assert e["serve"] == v.serve and e["serve_rule"]["win_share"] == pytest.approx(v.win_share, abs=1e-4)
        assert e["dense_val_mae"] == pytest.approx(errs[1].sum() / y.size, rel=1e-5)
        assert e["serve_rule"]["val_mae_ratio"] == pytest.approx(e["val_mae"] / e["dense_val_mae"], abs=2e-3)
