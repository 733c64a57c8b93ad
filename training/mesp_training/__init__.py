"""MESP training: per-cluster forecasters searched with Optuna, exported to ONNX."""

import os

# Before anything imports onnxruntime: no usage telemetry (see runtime.py).
os.environ["ORT_DISABLE_TELEMETRY"] = "1"
