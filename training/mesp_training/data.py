"""Sliding windows of L inputs and 60 targets from daily per-minute counts."""

from __future__ import annotations

import numpy as np

from .contract import HORIZON

# Forecast origins of the evaluation protocol (minutes elapsed in the day);
# validation scores candidates at the same origins, on held-out functions.
EVAL_ORIGINS = (1080, 1140, 1200, 1260, 1320, 1380)


def windows(series: np.ndarray, input_len: int, origins: list[int] | tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """X [n*len(origins), L] = minutes t-L+1..t, Y = minutes t+1..t+60 (1-based t)."""
    n, m = series.shape
    ok = [t for t in origins if t >= input_len and t + HORIZON <= m]
    if n == 0 or not ok:
        return np.zeros((0, input_len), np.float32), np.zeros((0, HORIZON), np.float32)
    xs = np.stack([series[:, t - input_len:t] for t in ok], axis=1)
    ys = np.stack([series[:, t:t + HORIZON] for t in ok], axis=1)
    return xs.reshape(-1, input_len).astype(np.float32), ys.reshape(-1, HORIZON).astype(np.float32)


def train_origins(input_len: int, minutes: int, stride: int) -> list[int]:
    """Every stride-th origin that leaves L inputs before and 60 targets after."""
    return list(range(input_len, minutes - HORIZON + 1, stride))
