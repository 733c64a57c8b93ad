"""ONNX Runtime time per row of model files on real histories, one thread:
files side by side, runs interleaved, the minimum of five per file and
batch size (the machine's noise only adds time).

    python scripts/time_onnx.py old/dense-p.onnx models/dense-p.onnx [--parquet models/cluster-4.parquet]

Rows are histories of the Parquet's functions at random minutes of the
platform's loop (1081..1440), padded as the server pads them; a count model
gets each history's last input_len minutes; a p_invoke expert that
continues the dense trees gets the dense graph's (``--dense``) features and
minute 1 on them, computed once outside the timing (the server runs the
dense graph anyway); count trees that read the dense features get the
window and those features.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mesp_training.contract import (
    DENSE_P1_INPUT_NAME,
    INPUT_NAME,
    P_FEATURES_NAME,
    P_INVOKE_OUTPUT_NAME,
    read_cluster_parquet,
)
from mesp_training.invocation_train import LOOP_END, LOOP_START, histories

BATCHES = (1, 8, 64)
REPEATS = 5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", type=Path, nargs="+")
    ap.add_argument("--parquet", type=Path, default=Path("models/cluster-4.parquet"))
    ap.add_argument("--dense", type=Path, default=Path("models/dense-p.onnx"))
    a = ap.parse_args()
    _, series = read_cluster_parquet(a.parquet)
    rng = np.random.default_rng(0)
    n = max(BATCHES)
    x = histories(series, rng.integers(0, len(series), n), rng.integers(LOOP_START, LOOP_END + 1, n))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sessions = {f: ort.InferenceSession(str(f), opts, providers=["CPUExecutionProvider"]) for f in a.files}
    takes_features = any(P_FEATURES_NAME in {i.name for i in s.get_inputs()} for s in sessions.values())
    if takes_features:
        dense = ort.InferenceSession(str(a.dense), opts, providers=["CPUExecutionProvider"])
        p, features = dense.run([P_INVOKE_OUTPUT_NAME, P_FEATURES_NAME], {INPUT_NAME: x})
    best: dict[tuple[Path, int], float] = {}
    for _ in range(REPEATS):
        for f, s in sessions.items():
            width = s.get_inputs()[0].shape[1]
            takes = [i.name for i in s.get_inputs()]
            for b in BATCHES:
                if takes[0] == P_FEATURES_NAME:  # an expert that continues the dense trees
                    feeds = {P_FEATURES_NAME: features[:b], DENSE_P1_INPUT_NAME: p[:b, :1]}
                else:
                    feeds = {INPUT_NAME: np.ascontiguousarray(x[:b, -width:])}
                    if P_FEATURES_NAME in takes:  # trees that read the dense features
                        feeds[P_FEATURES_NAME] = features[:b]
                s.run(None, feeds)
                k = max(20, 800 // b)
                t0 = time.perf_counter()
                for _ in range(k):
                    s.run(None, feeds)
                us = (time.perf_counter() - t0) / k / b * 1e6
                best[f, b] = min(best.get((f, b), float("inf")), us)
    for f in a.files:
        print(f"{f}: " + ", ".join(f"batch {b} {best[f, b]:.0f} us/row" for b in BATCHES))


if __name__ == "__main__":
    main()
