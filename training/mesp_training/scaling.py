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
    """Wraps a family's core network ([B, L] -> [B, 60]) with the scaling."""

    def __init__(self, core: nn.Module, input_len: int, family: str) -> None:
        super().__init__()
        self.core = core
        self.input_len = input_len
        self.family = family

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # log(x + 1) and exp(.) - 1 rather than log1p/expm1, which the classic
        # ONNX exporter does not know.
        z = torch.log(torch.clamp(x, min=0.0) + 1.0)
        anchor = z[:, -1:]
        scale = torch.sqrt(z.var(dim=1, keepdim=True, unbiased=False) + EPS)
        out = self.core((z - anchor) / scale)
        zh = anchor + scale * out
        # Cap the exponent: an untrained or diverging core must not give inf.
        return torch.relu(torch.exp(torch.clamp(zh, max=30.0)) - 1.0)


def zero_init(layer: nn.Linear) -> nn.Linear:
    """Zero the output layer so the model starts as the naive forecast."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def scaled_l1(pred: torch.Tensor, target: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """L1 in counts divided by each window's mean level (+1).

    A per-function scale keeps busy functions from drowning the rest (as
    MASE weighs them) while errors stay in count units (as WAPE/MAE).
    """
    scale = x.mean(dim=1, keepdim=True) + 1.0
    return ((pred - target).abs() / scale).mean()


__all__ = ["Forecaster", "zero_init", "scaled_l1", "HORIZON"]
