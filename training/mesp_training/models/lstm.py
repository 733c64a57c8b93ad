"""LSTM: a recurrent encoder over the scaled window and a linear head that
maps the last hidden state to the 60-minute horizon (Hochreiter &
Schmidhuber, 1997)."""

from __future__ import annotations

from typing import Any

import optuna
import torch
from torch import nn

from ..contract import HORIZON
from ..scaling import zero_init


class LSTM(nn.Module):
    def __init__(self, input_len: int, hidden: int = 64, layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.head = zero_init(nn.Linear(hidden, HORIZON))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(z.unsqueeze(-1))
        y_out: torch.Tensor = self.head(out[:, -1])
        return y_out


def build(input_len: int, p: dict[str, Any]) -> nn.Module:
    return LSTM(input_len, p.get("hidden", 64), p.get("layers", 1), p.get("dropout", 0.0))


def space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "hidden": trial.suggest_categorical("lstm_hidden", [32, 64, 128]),
        "layers": trial.suggest_int("lstm_layers", 1, 2),
        "dropout": trial.suggest_float("lstm_dropout", 0.0, 0.3),
    }
