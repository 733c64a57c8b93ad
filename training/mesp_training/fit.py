"""Training loop shared by every family and every study."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .contract import HORIZON
from .data import EVAL_ORIGINS, train_origins, windows
from .scaling import Forecaster, scaled_l1


@dataclass
class Split:
    """Training windows from fit functions, validation windows from held-out ones."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def make_split(fit: np.ndarray, val: np.ndarray, input_len: int, stride: int) -> Split:
    minutes = fit.shape[1] if fit.size else val.shape[1]
    xt, yt = windows(fit, input_len, train_origins(input_len, minutes, stride))
    xv, yv = windows(val, input_len, EVAL_ORIGINS)
    return Split(xt, yt, xv, yv)


# Train on a GPU when there is one; export always happens on the CPU.
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def predict(model: torch.nn.Module, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    model.eval()
    dev = next(model.parameters()).device
    out = [model(torch.from_numpy(x[i:i + batch]).to(dev)).cpu().numpy() for i in range(0, len(x), batch)]
    return np.concatenate(out) if out else np.zeros((0, HORIZON), np.float32)


def mae(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.abs(pred - y).mean()) if len(y) else float("nan")


def naive_mae(x: np.ndarray, y: np.ndarray) -> float:
    return mae(np.repeat(x[:, -1:], y.shape[1], axis=1), y)


@dataclass
class FitResult:
    val_mae: float
    epochs: int
    state: dict[str, torch.Tensor]


def fit(
    model: Forecaster,
    split: Split,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    max_windows: int,
    seed: int,
    deadline: float | None = None,
    report: Callable[[int, float], bool] | None = None,
    progress: Callable[[str], None] | None = None,
    cosine: bool = False,
    loss_power: float = 1.0,
) -> FitResult:
    """Adam on the scaled L1 loss; keeps the weights of the best validation
    epoch. ``report(epoch, val_mae)`` returning True stops early (pruning).
    cosine: the learning rate decays from lr to 0 over the epochs (a long
    final fit; the single windows' losses are noisy, and a decaying step
    settles where a constant one keeps jumping). loss_power: scaled_l1's."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model.to(DEVICE)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    best = FitResult(mae(predict(model, split.x_val), split.y_val), 0,
                     {k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
    xt, yt = torch.from_numpy(split.x_train).to(DEVICE), torch.from_numpy(split.y_train).to(DEVICE)
    for epoch in range(1, epochs + 1):
        if cosine:
            for g in opt.param_groups:
                g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / epochs))
        model.train()
        idx = rng.permutation(len(xt))[:max_windows]
        total = 0.0
        for i in range(0, len(idx), batch_size):
            b = torch.from_numpy(idx[i:i + batch_size]).to(DEVICE)
            loss = scaled_l1(model(xt[b]), yt[b], xt[b], loss_power)
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += float(loss.detach()) * len(b)
            if deadline is not None and time.monotonic() > deadline:
                break  # the study's time budget is spent: score what we have
        val = mae(predict(model, split.x_val), split.y_val)
        if progress:
            progress(f"epoch {epoch}/{epochs} train loss {total / max(1, len(idx)):.4f} val MAE {val:.3f}")
        if val < best.val_mae:
            best = FitResult(val, epoch, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
        if report and report(epoch, val):
            break
        if deadline is not None and time.monotonic() > deadline:
            break
    model.to("cpu")
    model.load_state_dict(best.state)
    return best
