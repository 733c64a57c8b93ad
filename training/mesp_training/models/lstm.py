"""LSTM: a recurrent encoder over the scaled window and a linear head that
maps the last hidden state to the 60-minute horizon (Hochreiter &
Schmidhuber, 1997)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..contract import HORIZON
from ..scaling import zero_init
from .space import Choice, FloatRange, IntRange, Space


class LSTM(nn.Module):
    def __init__(self, input_len: int, hidden: int = 64, layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.head = zero_init(nn.Linear(hidden, HORIZON))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(z.unsqueeze(-1))
        y_out: torch.Tensor = self.head(out[:, -1])
        return y_out


# Every hyper-parameter's default (one place); SPACE says which are searched.
DEFAULTS: dict[str, Any] = {"hidden": 64, "layers": 1, "dropout": 0.0}
SPACE: Space = {
    "hidden": Choice((32, 64, 128)),
    "layers": IntRange(1, 2),
    "dropout": FloatRange(0.0, 0.3),
}


def build(input_len: int, p: dict[str, Any]) -> nn.Module:
    p = {**DEFAULTS, **p}
    return LSTM(input_len, p["hidden"], p["layers"], p["dropout"])

