"""Autoformer (Wu et al., NeurIPS 2021): an encoder-decoder Transformer with
series decomposition blocks (moving-average trend / seasonal residual) in
every layer and auto-correlation in place of attention: period-based
dependencies found from the series' autocorrelation (via FFT) and
time-delay aggregation of the top-k lags.

Two changes keep it exportable to ONNX with the classic exporter, neither
changing the math: the FFTs are products with real DFT matrices (exact,
cheap at these lengths), and time-delay aggregation gathers rolled values
with tensor indices instead of a Python loop over ``int(index)``, which
tracing would freeze.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..contract import HORIZON
from ..scaling import zero_init
from .space import Choice, FloatRange, IntRange, Space


class SeriesDecomp(nn.Module):
    """Trend = moving average (edges padded by repetition); seasonal = rest."""

    def __init__(self, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # x [B, L, d]
        front = x[:, :1].expand(-1, (self.kernel - 1) // 2, -1)
        end = x[:, -1:].expand(-1, self.kernel // 2, -1)
        padded = torch.cat([front, x, end], dim=1)
        trend = F.avg_pool1d(padded.transpose(1, 2), self.kernel, stride=1).transpose(1, 2)
        return x - trend, trend


def _dft(length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Real matrices for rfft (cos, -sin) and irfft of a given length."""
    freqs = length // 2 + 1
    n = torch.arange(length, dtype=torch.float64)
    k = torch.arange(freqs, dtype=torch.float64)
    ang = 2 * math.pi * torch.outer(n, k) / length  # [L, F]
    fwd_c, fwd_s = torch.cos(ang), -torch.sin(ang)
    w = torch.full((freqs,), 2.0, dtype=torch.float64)
    w[0] = 1.0
    if length % 2 == 0:
        w[-1] = 1.0
    inv_c = (w[:, None] * torch.cos(ang.T)) / length  # [F, L]
    inv_s = (-w[:, None] * torch.sin(ang.T)) / length
    return fwd_c.float(), fwd_s.float(), inv_c.float(), inv_s.float()


class AutoCorrelation(nn.Module):
    """Auto-correlation with top-k time-delay aggregation, per sample."""

    # The real DFT matrices (buffers), typed for the checker.
    fc: torch.Tensor
    fs: torch.Tensor
    ic: torch.Tensor
    is_: torch.Tensor

    def __init__(self, d_model: int, heads: int, q_len: int, factor: float) -> None:
        super().__init__()
        self.heads, self.dk = heads, d_model // heads
        self.q_len = q_len
        self.top_k = max(1, int(factor * math.log(q_len)))
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        fc, fs, ic, is_ = _dft(q_len)
        self.register_buffer("fc", fc)
        self.register_buffer("fs", fs)
        self.register_buffer("ic", ic)
        self.register_buffer("is_", is_)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        b, lq, d = queries.shape
        lk = keys.shape[1]
        q = self.q(queries)
        k, v = self.k(keys), self.v(values)
        # Match key/value length to the queries: truncate or zero-pad (paper).
        if lk > lq:
            k, v = k[:, :lq], v[:, :lq]
        elif lk < lq:
            pad = torch.zeros(b, lq - lk, d, dtype=q.dtype, device=q.device)
            k, v = torch.cat([k, pad], dim=1), torch.cat([v, pad], dim=1)
        # Correlation over time per channel: irfft(rfft(q) * conj(rfft(k))).
        qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, d, L]
        exporting = torch.onnx.is_in_onnx_export()
        if exporting:
            # Exact DFT products: the classic exporter rejects torch.fft.
            corr = self._circular_corr_dft(qt, kt)
        else:
            corr = torch.fft.irfft(torch.fft.rfft(qt, dim=-1) * torch.conj(torch.fft.rfft(kt, dim=-1)), n=lq, dim=-1)
        mean_corr = corr.mean(dim=1)  # over heads and channels: [B, L]
        weights, delays = torch.topk(mean_corr, self.top_k, dim=-1)  # [B, k]
        weights = torch.softmax(weights, dim=-1)
        # Time-delay aggregation out[t] = sum_i w_i v[(t + tau_i) mod L] is a
        # circular correlation of v with a kernel holding w_i at tau_i: built
        # with a tensor scatter (no Python loop over delays for tracing to
        # freeze) and applied in the frequency domain.
        kernel = torch.zeros(b, lq, dtype=v.dtype, device=v.device).scatter(1, delays, weights)
        if exporting:
            agg = self._circular_corr_dft(vt, kernel.unsqueeze(1))
        else:
            agg = torch.fft.irfft(torch.fft.rfft(vt, dim=-1) * torch.conj(torch.fft.rfft(kernel, dim=-1)).unsqueeze(1),
                                  n=lq, dim=-1)
        y_out: torch.Tensor = self.out(agg.transpose(1, 2))
        return y_out


    def _circular_corr_dft(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """sum_t a[t + tau] b[t] (circular) for every tau, by real DFT matrices."""
        ar, ai = a @ self.fc, a @ self.fs
        br, bi = b @ self.fc, b @ self.fs
        return (ar * br + ai * bi) @ self.ic + (ai * br - ar * bi) @ self.is_


class EncoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, length: int, factor: float, ff: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.ac = AutoCorrelation(d, heads, length, factor)
        self.ff = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff, d))
        self.d1, self.d2 = SeriesDecomp(kernel), SeriesDecomp(kernel)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = self.d1(x + self.drop(self.ac(x, x, x)))
        x, _ = self.d2(x + self.drop(self.ff(x)))
        return x


class DecoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, length: int, factor: float, ff: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.self_ac = AutoCorrelation(d, heads, length, factor)
        self.cross_ac = AutoCorrelation(d, heads, length, factor)
        self.ff = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff, d))
        self.d1, self.d2, self.d3 = SeriesDecomp(kernel), SeriesDecomp(kernel), SeriesDecomp(kernel)
        self.trend_proj = nn.Linear(d, 1, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, enc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, t1 = self.d1(x + self.drop(self.self_ac(x, x, x)))
        x, t2 = self.d2(x + self.drop(self.cross_ac(x, enc, enc)))
        x, t3 = self.d3(x + self.drop(self.ff(x)))
        return x, self.trend_proj(t1 + t2 + t3)


class Autoformer(nn.Module):
    def __init__(self, input_len: int, d_model: int = 32, heads: int = 4, enc_layers: int = 1, dec_layers: int = 1,
                 ff: int = 64, kernel: int = 25, factor: float = 1.0, dropout: float = 0.05) -> None:
        super().__init__()
        self.label_len = input_len // 2
        dec_len = self.label_len + HORIZON
        self.decomp = SeriesDecomp(kernel)
        self.enc_embed = nn.Conv1d(1, d_model, 3, padding=1, padding_mode="circular")
        self.dec_embed = nn.Conv1d(1, d_model, 3, padding=1, padding_mode="circular")
        self.encoder = nn.ModuleList(
            EncoderLayer(d_model, heads, input_len, factor, ff, kernel, dropout) for _ in range(enc_layers)
        )
        self.decoder = nn.ModuleList(
            DecoderLayer(d_model, heads, dec_len, factor, ff, kernel, dropout) for _ in range(dec_layers)
        )
        self.season_proj = nn.Linear(d_model, 1)
        self.head = zero_init(nn.Linear(HORIZON, HORIZON))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z.unsqueeze(-1)  # [B, L, 1]
        seasonal, trend = self.decomp(x)
        # Decoder input: the last label_len of the decomposition, then the
        # horizon initialised with zeros (seasonal) and the mean (trend).
        mean = x.mean(dim=1, keepdim=True).expand(-1, HORIZON, -1)
        zeros = torch.zeros_like(mean)
        season_init = torch.cat([seasonal[:, -self.label_len:], zeros], dim=1)
        trend_acc = torch.cat([trend[:, -self.label_len:], mean], dim=1)
        enc = self.enc_embed(x.transpose(1, 2)).transpose(1, 2)
        for layer in self.encoder:
            enc = layer(enc)
        dec = self.dec_embed(season_init.transpose(1, 2)).transpose(1, 2)
        for layer in self.decoder:
            dec, t = layer(dec, enc)
            trend_acc = trend_acc + t
        out = (self.season_proj(dec) + trend_acc)[:, -HORIZON:, 0]
        # Residual head, zero-initialised: the model starts as naive.
        y_out: torch.Tensor = self.head(out)
        return y_out


# Every hyper-parameter's default (one place); SPACE says which are searched.
DEFAULTS: dict[str, Any] = {"d_model": 32, "heads": 4, "enc_layers": 1, "dec_layers": 1, "ff": 64, "kernel": 25,
                            "factor": 1.0, "dropout": 0.05}
SPACE: Space = {
    "d_model": Choice((16, 32)),
    "enc_layers": IntRange(1, 2),
    "kernel": Choice((13, 25)),
    "factor": FloatRange(0.5, 2.0),
    "dropout": FloatRange(0.0, 0.2),
}


def build(input_len: int, p: dict[str, Any]) -> nn.Module:
    p = {**DEFAULTS, **p}
    return Autoformer(input_len, p["d_model"], p["heads"], p["enc_layers"], p["dec_layers"], p["ff"], p["kernel"],
                      p["factor"], p["dropout"])

