"""ONNX Runtime sessions with the library's usage telemetry switched off.

The stock onnxruntime build keeps a device id and an event queue under
~/.cache/Microsoft and leaves /tmp/mat-debug-<pid>.log; MESP switches that
off in every process that loads the library: the environment variable is
set when this package is imported (before onnxruntime loads), and the API's
own switch is called before each session.
"""

from __future__ import annotations

import os

os.environ["ORT_DISABLE_TELEMETRY"] = "1"

import onnxruntime as ort  # noqa: E402  (after the variable above)


def inference_session(path: str, options: ort.SessionOptions | None = None) -> ort.InferenceSession:
    ort.disable_telemetry_events()
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
