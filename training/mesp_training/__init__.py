"""MESP training: per-cluster forecasters searched with Optuna, exported to ONNX."""
