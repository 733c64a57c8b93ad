"""Reference inference with Python onnxruntime, for parity tests.

stdin: {"model": "path.onnx", "rows": [[counts...], ...], "dense": "dense-p.onnx"}
stdout: {"forecast": [[60 values], ...]} for a count model, or
        {"p_invoke": [[60 values], ...]} for a p_invoke model, whose rows
        may be shorter than its input: they are left-padded with -1 (the
        contract's "minute not known") by training's own padding function.
        An expert that continues the dense trees gets the dense model's
        (``dense``) features and minute 1 on the same rows; count trees
        that read the dense features get the window and those features of
        the rows (count_trees.run_trees).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

# No usage telemetry from the onnxruntime library (set before it loads).
os.environ["ORT_DISABLE_TELEMETRY"] = "1"
import onnxruntime as ort  # noqa: E402

ort.disable_telemetry_events()


def main() -> None:
    req = json.load(sys.stdin)
    sess = ort.InferenceSession(req["model"], providers=["CPUExecutionProvider"])
    out = sess.get_outputs()[0].name
    if out == "p_invoke":
        from mesp_training.invocation import pad_history
        from mesp_training.invocation_gbm import run_p_invoke

        x = np.stack([pad_history(np.asarray(r, dtype=np.float32)) for r in req["rows"]])
        dense = ort.InferenceSession(req["dense"], providers=["CPUExecutionProvider"]) if req.get("dense") else None
        y = run_p_invoke(sess, x, dense)
    elif len(sess.get_inputs()) > 1:
        from mesp_training.count_trees import run_trees

        dense = ort.InferenceSession(req["dense"], providers=["CPUExecutionProvider"]) if req.get("dense") else None
        y = run_trees(sess, np.asarray(req["rows"], dtype=np.float32), dense)
    else:
        y = sess.run([out], {"counts": np.asarray(req["rows"], dtype=np.float32)})[0]
    json.dump({out: y.tolist()}, sys.stdout)


if __name__ == "__main__":
    main()
