"""Normalisation inside the exported graph: raw counts in, counts out.

Every family forecasts a *correction to the last observed value* in
log1p space, scaled RevIN-style by the window's own spread:

    z  = log1p(x);  a = z[-1];  s = sqrt(var(z) + eps)
    y  = expm1(a + s * core((z - a) / s)),  clipped at 0

With the core's output layer initialised to zero, every model starts as the
``naive`` forecast (the strongest simple baseline at one-minute
resolution) and learns departures from it. log1p copes with the heavy
tails and the many zeros (no division by a zero range).
"""

from __future__ import annotations

import torch
from torch import nn

from .contract import HORIZON

EPS = 1e-2


class Forecaster(nn.Module):
    """Wraps a family's core network with the scaling: raw counts [B,
    input_len] in, 60 counts out.

    seasonal (hours, 0: off) gives the core, after its recent_len minutes,
    the hour ahead as the same minutes of the last ``seasonal`` hours saw it
    (the mean of their log1p counts, in the same scale): a timer's hourly
    runs land on the minutes they ran on before. The graph then reads
    input_len = max(recent_len, 60 * seasonal) minutes; the core sees
    recent_len + 60 values.
    """

    def __init__(self, core: nn.Module, recent_len: int, family: str, seasonal: int = 0) -> None:
        super().__init__()
        self.core = core
        self.recent_len = recent_len
        self.seasonal = seasonal
        self.input_len = window_len(recent_len, seasonal)
        self.family = family

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # log(x + 1) and exp(.) - 1 rather than log1p/expm1, which the classic
        # ONNX exporter does not know.
        z = torch.log(torch.clamp(x, min=0.0) + 1.0)
        recent = z[:, -self.recent_len:]
        anchor = z[:, -1:]
        scale = torch.sqrt(recent.var(dim=1, keepdim=True, unbiased=False) + EPS)
        core_in = recent
        if self.seasonal:
            # Minute t+h of k hours back is index -60k + h - 1 of the window
            # (h = 1..60): block H - k of the last H hours, position h - 1.
            hours = z[:, -HORIZON * self.seasonal:].reshape(-1, self.seasonal, HORIZON)
            core_in = torch.cat([recent, hours.mean(dim=1)], dim=1)
        out = self.core((core_in - anchor) / scale)
        zh = anchor + scale * out
        # Cap the exponent: an untrained or diverging core must not give inf.
        return torch.relu(torch.exp(torch.clamp(zh, max=30.0)) - 1.0)


def window_len(recent_len: int, seasonal: int) -> int:
    """The minutes a count graph reads (Forecaster)."""
    return max(recent_len, HORIZON * seasonal)


def core_len(recent_len: int, seasonal: int) -> int:
    """The values the core network sees (Forecaster)."""
    return recent_len + (HORIZON if seasonal else 0)


def zero_init(layer: nn.Linear) -> nn.Linear:
    """Zero the output layer so the model starts as the naive forecast."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def scaled_l1(pred: torch.Tensor, target: torch.Tensor, x: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """L1 in counts divided by each window's mean level (+1) to the power.

    A per-function scale keeps busy functions from drowning the rest (as
    MASE weighs them) while errors stay in count units (as WAPE/MAE);
    power 1 weighs every function alike, 0 is plain L1 (as WAPE weighs
    them), 0.5 lies between (the LightGBM peer's sqrt(level) weight).
    """
    scale = (x.mean(dim=1, keepdim=True) + 1.0) ** power
    return ((pred - target).abs() / scale).mean()


__all__ = ["Forecaster", "zero_init", "scaled_l1", "window_len", "core_len", "HORIZON"]
