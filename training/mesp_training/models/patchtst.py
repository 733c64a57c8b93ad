"""PatchTST (Nie et al., ICLR 2023): the window is cut into patches, each
patch is a token for a Transformer encoder, and a flatten head maps all
tokens to the horizon. Channel independence is trivial here (one series
per function); RevIN-style instance normalisation is the wrapper's
(``scaling.Forecaster``), and the encoder uses BatchNorm as in the paper.

Patches are built by stacking strided slices rather than ``Tensor.unfold``,
which the classic ONNX exporter rejects.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..contract import HORIZON
from ..scaling import zero_init
from .attention import MultiHeadAttention
from .space import Choice, FloatRange, IntRange, Space


class _BatchNormTokens(nn.Module):
    """BatchNorm1d over the model dimension of [B, N, d] tokens."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y_out: torch.Tensor = self.bn(x.transpose(1, 2)).transpose(1, 2)
        return y_out


class EncoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ff: int, dropout: float) -> None:
        super().__init__()
        self.att = MultiHeadAttention(d, heads, dropout)
        self.norm1, self.norm2 = _BatchNormTokens(d), _BatchNormTokens(d)
        self.ff = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.drop(self.att(x)))
        y_out: torch.Tensor = self.norm2(x + self.drop(self.ff(x)))
        return y_out


class PatchTST(nn.Module):
    def __init__(self, input_len: int, patch_len: int = 16, stride: int = 8, d_model: int = 64,
                 heads: int = 4, layers: int = 2, ff: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        if patch_len > input_len:
            raise ValueError(f"patch_len {patch_len} > input_len {input_len}")
        self.patch_len, self.stride = patch_len, stride
        # The paper pads the end with `stride` copies of the last value.
        self.n_patches = (input_len + stride - patch_len) // stride + 1
        self.embed = nn.Linear(patch_len, d_model)
        self.pos = nn.Parameter(torch.randn(1, self.n_patches, d_model) * 0.02)
        self.layers = nn.ModuleList(EncoderLayer(d_model, heads, ff, dropout) for _ in range(layers))
        self.head = zero_init(nn.Linear(self.n_patches * d_model, HORIZON))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = torch.cat([z, z[:, -1:].expand(-1, self.stride)], dim=1)
        patches = torch.stack(
            [z[:, i * self.stride:i * self.stride + self.patch_len] for i in range(self.n_patches)], dim=1
        )
        x = self.embed(patches) + self.pos
        for layer in self.layers:
            x = layer(x)
        y_out: torch.Tensor = self.head(x.flatten(1))
        return y_out


# Every hyper-parameter's default (one place); SPACE says which are searched.
DEFAULTS: dict[str, Any] = {"patch_len": 16, "d_model": 64, "heads": 4, "layers": 2, "ff": 128, "dropout": 0.1}
SPACE: Space = {
    "patch_len": Choice((8, 16, 32)),
    "d_model": Choice((32, 64)),
    "layers": IntRange(1, 3),
    "dropout": FloatRange(0.0, 0.3),
}


def build(input_len: int, p: dict[str, Any]) -> nn.Module:
    p = {**DEFAULTS, **p}
    # Patches overlap by half unless a stride is given.
    stride = p.get("stride", p["patch_len"] // 2)
    return PatchTST(input_len, p["patch_len"], stride, p["d_model"], p["heads"], p["layers"], p["ff"], p["dropout"])

