"""N-BEATS (Oreshkin et al., ICLR 2020): stacks of fully connected blocks
with doubly residual backcast/forecast links. ``generic`` blocks learn their
bases; the ``interpretable`` configuration uses a polynomial trend stack
followed by a Fourier seasonality stack."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..contract import HORIZON
from .space import Choice, IntRange, Space


def _trend_basis(degree: int, length: int) -> torch.Tensor:
    t = torch.arange(length, dtype=torch.float32) / length
    return torch.stack([t**i for i in range(degree + 1)])  # [p+1, length]


def _season_basis(harmonics: int, length: int) -> torch.Tensor:
    t = torch.arange(length, dtype=torch.float32) / length
    rows = [torch.ones(length)]
    for k in range(1, harmonics + 1):
        rows += [torch.cos(2 * math.pi * k * t), torch.sin(2 * math.pi * k * t)]
    return torch.stack(rows)


class Block(nn.Module):
    def __init__(self, input_len: int, units: int, layers: int, kind: str, degree: int, harmonics: int) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        width = input_len
        for _ in range(layers):
            mods += [nn.Linear(width, units), nn.ReLU()]
            width = units
        self.fc = nn.Sequential(*mods)
        self.kind = kind
        if kind == "generic":
            self.backcast = nn.Linear(units, input_len)
            self.forecast = nn.Linear(units, HORIZON)
        else:
            if kind == "trend":
                bb, fb = _trend_basis(degree, input_len), _trend_basis(degree, HORIZON)
            else:
                bb, fb = _season_basis(harmonics, input_len), _season_basis(harmonics, HORIZON)
            self.register_buffer("back_basis", bb)
            self.register_buffer("fore_basis", fb)
            self.theta_b = nn.Linear(units, bb.shape[0], bias=False)
            self.theta_f = nn.Linear(units, fb.shape[0], bias=False)
        # Start at the naive forecast: forecasts begin at zero.
        last = self.forecast if kind == "generic" else self.theta_f
        nn.init.zeros_(last.weight)
        if last.bias is not None:
            nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.fc(x)
        if self.kind == "generic":
            return self.backcast(h), self.forecast(h)
        return self.theta_b(h) @ self.back_basis, self.theta_f(h) @ self.fore_basis


class NBEATS(nn.Module):
    def __init__(self, input_len: int, stacks: str = "generic", blocks: int = 3, layers: int = 4,
                 units: int = 256, degree: int = 3, harmonics: int = 8) -> None:
        super().__init__()
        kinds = ["generic"] if stacks == "generic" else ["trend", "seasonality"]
        self.blocks = nn.ModuleList(
            Block(input_len, units, layers, kind, degree, harmonics) for kind in kinds for _ in range(blocks)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        residual = z
        forecast = torch.zeros(z.shape[0], HORIZON, dtype=z.dtype, device=z.device)
        for block in self.blocks:
            b, f = block(residual)
            residual = residual - b
            forecast = forecast + f
        return forecast


# Every hyper-parameter's default (one place); SPACE says which are searched.
DEFAULTS: dict[str, Any] = {"stacks": "generic", "blocks": 3, "layers": 4, "units": 256, "degree": 3, "harmonics": 8}
SPACE: Space = {
    "stacks": Choice(("generic", "interpretable")),
    "blocks": IntRange(1, 3),
    "layers": IntRange(2, 4),
    "units": Choice((64, 128, 256)),
}


def build(input_len: int, p: dict[str, Any]) -> nn.Module:
    p = {**DEFAULTS, **p}
    return NBEATS(input_len, p["stacks"], p["blocks"], p["layers"], p["units"], p["degree"], p["harmonics"])

