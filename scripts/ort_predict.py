"""Reference inference with Python onnxruntime, for parity tests.

stdin: {"model": "path.onnx", "rows": [[counts...], ...]}
stdout: {"forecast": [[60 values], ...]}
"""

from __future__ import annotations

import json
import sys

import numpy as np
import onnxruntime as ort


def main() -> None:
    req = json.load(sys.stdin)
    sess = ort.InferenceSession(req["model"], providers=["CPUExecutionProvider"])
    x = np.asarray(req["rows"], dtype=np.float32)
    y = sess.run(["forecast"], {"counts": x})[0]
    json.dump({"forecast": y.tolist()}, sys.stdout)


if __name__ == "__main__":
    main()
