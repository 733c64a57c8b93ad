from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnxruntime as ort
import pytest
from conftest import TINY

from mesp_training.contract import sha256_file
from mesp_training.pipeline import train
from mesp_training.search import SearchConfig


def test_train_tiny_end_to_end_then_add_cluster(clustered: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(clustered, models)
    cfg = SearchConfig.load(TINY)
    manifest = train(models, cfg)
    assert manifest["dense"]["file"] == "dense.onnx"
    assert sorted(e["cluster"] for e in manifest["experts"]) == [0, 1, 2]
    for e in [manifest["dense"], *manifest["experts"]]:
        assert sha256_file(models / e["file"]) == e["sha256"]
        sess = ort.InferenceSession(str(models / e["file"]), providers=["CPUExecutionProvider"])
        assert sess.get_inputs()[0].shape[1] == e["input_len"]
    for e in manifest["experts"]:
        # The decision follows the two validation numbers.
        assert e["serve"] == ("expert" if e["val_mae"] < e["dense_val_mae"] else "dense")
    report = json.loads((models / ".work" / "training-report-all.json").read_text())
    tried = {t.get("family") for t in report["studies"]["dense"]}
    assert {"nbeats", "patchtst", "lstm", "autoformer"} <= tried

    # Retraining one cluster leaves every other entry and file byte-identical.
    before = {e["cluster"]: (dict(e), (models / e["file"]).read_bytes()) for e in manifest["experts"]}
    dense_bytes = (models / "dense.onnx").read_bytes()
    again = train(models, cfg, clusters=[1])
    assert (models / "dense.onnx").read_bytes() == dense_bytes
    for e in again["experts"]:
        if e["cluster"] != 1:
            assert e == before[e["cluster"]][0]
            assert (models / e["file"]).read_bytes() == before[e["cluster"]][1]


def test_bad_config_is_rejected(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("families: [nbeats, transformerxl]\n")
    with pytest.raises(ValueError, match="unknown model family"):
        SearchConfig.load(p)
    p.write_text("input_lens: [60, 2000]\n")
    with pytest.raises(ValueError, match="outside"):
        SearchConfig.load(p)
