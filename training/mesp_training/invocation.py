"""Per-minute invocation probabilities (``p_invoke``): the features that carry
the signal, computed inside the exported graph, and the model on top.

What predicts the next invocation of a function is mostly in the timing of
its history: minutes since the last invocation, the function's own idle-gap
distribution so far (the chance that a gap that has lasted ``s`` minutes ends
now), recent activity at several scales and hourly periodicity. The
features are torch operations on the raw counts, exported with the model,
so training and serving share exactly one implementation: the graph takes
raw counts and answers probabilities.

Input contract: float32 ``[batch, 1440]``, the last 1440 minutes with the
most recent last; minutes not known (a history shorter than a day) are
``-1`` on the left. Output: float32 ``[batch, 60]`` in [0, 1], the
probability that the function is invoked (count > 0) in each of the next
60 minutes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .contract import HORIZON, MISSING, P_INVOKE_INPUT_LEN

WINDOW = P_INVOKE_INPUT_LEN
HOURS = WINDOW // 60
# Scales of recent activity (minutes).
SCALES = (1, 2, 5, 15, 60, 240, 1440)
# Horizons k of "the current gap ends within k minutes" from the gap history.
GAP_HORIZONS = (1, 2, 5, 15, 60)
# Periods (minutes) of timer-like activity besides the hour, for the next
# minute: the share of past minutes in the same phase that were invoked
# (all of them, and the last four), and whether the minute one period back
# was. Each divides the window, so the phase of the next minute is column 0.
# They cut validation cold starts at keepalive10's idle from 163 to 136
# for trees on horizon-1 features (README, variants table).
PERIODS = (2, 3, 4, 5, 6, 10, 15, 20, 30, 120, 180, 240, 360, 720)
FAMILY = "hazard-mlp"


def pad_history(counts: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """Left-pads (or cuts) 1-D counts to ``window`` minutes with MISSING."""
    out = np.full(window, MISSING, np.float32)
    tail = counts[-window:]
    out[window - len(tail):] = tail
    return out


class InvocationFeatures(nn.Module):
    """Raw counts [B, 1440] (-1 = unknown) -> features [B, n_features]."""

    # Buffers (register_buffer), typed for the checker.
    idx: torch.Tensor
    ahead_idx: torch.Tensor
    scale_mask: torch.Tensor
    scale_w: torch.Tensor
    phase: torch.Tensor
    period_back: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("idx", torch.arange(WINDOW, dtype=torch.float32), persistent=False)
        # Minutes 0..WINDOW + max horizon - 1 as gather indices (int64 from
        # the start: casting a float index tensor was among the graph's
        # costliest nodes).
        self.register_buffer("ahead_idx", torch.arange(WINDOW + max(GAP_HORIZONS)).unsqueeze(0), persistent=False)
        # Per scale w, which minutes are among the last w (all of them when
        # w exceeds the window): one matrix product sums every scale, where
        # running sums cost a CumSum per quantity.
        k = torch.arange(WINDOW).unsqueeze(1)
        self.register_buffer("scale_mask", (k >= WINDOW - torch.tensor(SCALES).unsqueeze(0)).float(),
                             persistent=False)
        self.register_buffer("scale_w", torch.tensor(SCALES, dtype=torch.float32), persistent=False)
        # Phase masks [WINDOW, 2 * periods] (all same-phase minutes, then the
        # last four): one matrix product sums every period's at once.
        p = torch.tensor(PERIODS).unsqueeze(0)
        same = (k % p == 0).float()
        self.register_buffer("phase", torch.cat([same, same * (k >= WINDOW - 4 * p).float()], 1), persistent=False)
        self.register_buffer("period_back", torch.tensor([WINDOW - q for q in PERIODS]), persistent=False)

    @property
    def n_features(self) -> int:
        return 5 + 2 * len(SCALES) + 2 * len(GAP_HORIZONS) + 3 + 3 * HORIZON + 3 * len(PERIODS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length = x.shape[0], WINDOW
        valid = (x >= 0).float()
        xc = torch.clamp(x, min=0.0)
        a = (xc > 0).float()
        idx = self.idx.unsqueeze(0)
        n_valid = valid.sum(1, keepdim=True)

        # Minutes since the last invocation (censored at the history's length).
        last = (a * (idx + 1)).amax(1, keepdim=True) - 1
        has = (last >= 0).float()
        since = has * (length - 1 - last) + (1 - has) * n_valid
        prev = (a * (idx + 1) * (idx < last).float()).amax(1, keepdim=True) - 1
        has_prev = (prev >= 0).float() * has
        prev_gap = has_prev * (last - prev - 1)

        # Completed idle gaps of length >= j: actives i with no invocation in
        # i+1..i+j and one later (c = running count of invoked minutes, held
        # at its end past the window). One gather of c shifted by `since`;
        # each horizon k is a fixed slice of it further on. All horizons at
        # once ([B, 1 + len(GAP_HORIZONS), WINDOW]): a graph of few, wide
        # operations runs faster than many narrow ones.
        c = torch.cumsum(a, 1)
        c_end = c[:, -1:]
        later = (a * (c_end > c).float()).unsqueeze(1)
        c_ext = torch.cat([c, c_end.expand(-1, length + max(GAP_HORIZONS))], 1)
        shifted = torch.gather(c_ext, 1, self.ahead_idx + since.long())  # c[i + since]
        ahead = torch.stack([shifted[:, k:k + length] for k in (0, *GAP_HORIZONS)], 1)
        at_least = (later * (ahead == c.unsqueeze(1)).float()).sum(2)
        g0 = at_least[:, :1]
        ended = g0 - at_least[:, 1:]
        rate = a.sum(1, keepdim=True) / torch.clamp(n_valid, min=1.0)
        # Shrunk towards the function's overall activity rate when few gaps
        # that long were seen.
        gap_share = (ended + rate) / (g0 + 1.0)
        gap_feats = torch.stack([gap_share, torch.log1p(ended)], 2).reshape(b, -1)

        # Activity over the last w minutes (a scale longer than the history
        # takes all of it).
        diff = torch.stack([xc, a, valid], 1) @ self.scale_mask  # [B, 3, scales]
        scale_feats = torch.stack([torch.log1p(diff[:, 0] / self.scale_w),
                                   diff[:, 1] / torch.clamp(diff[:, 2], min=1.0)], 2).reshape(b, -1)

        # Hourly periodicity: the minute one hour before each target minute,
        # and the share of past hours invoked at that minute of the hour.
        a_h = a.reshape(b, HOURS, 60)
        v_h = valid.reshape(b, HOURS, 60)
        last_hour = a_h[:, -1, :]
        profile = a_h.sum(1) / torch.clamp(v_h.sum(1), min=1.0)
        recent = a_h[:, -4:, :].sum(1) / torch.clamp(v_h[:, -4:, :].sum(1), min=1.0)

        # Other periods, for the next minute.
        share = (a @ self.phase) / torch.clamp(valid @ self.phase, min=1.0)
        back = torch.index_select(a, 1, self.period_back)
        period_feats = torch.cat([share, back], 1)

        per_active = torch.log1p(xc.sum(1, keepdim=True) / torch.clamp(a.sum(1, keepdim=True), min=1.0))
        head = [
            torch.log1p(since), (since == 0).float(), torch.log1p(prev_gap), has_prev,
            torch.log1p(g0),
        ]
        tail = [per_active, rate, torch.log1p(a.sum(1, keepdim=True))]
        return torch.cat(head + [scale_feats, gap_feats] + tail + [last_hour, profile, recent, period_feats], 1)


class InvocationModel(nn.Module):
    """Features, then an MLP to 60 logits; sigmoid out."""

    mu: torch.Tensor
    sd: torch.Tensor

    def __init__(self, hidden: int = 128, layers: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.family = FAMILY
        self.input_len = WINDOW
        self.params: dict[str, Any] = {"hidden": hidden, "layers": layers, "dropout": dropout}
        self.features = InvocationFeatures()
        n = self.features.n_features
        mods: list[nn.Module] = []
        for _ in range(layers):
            mods += [nn.Linear(n, hidden), nn.GELU(), nn.Dropout(dropout)]
            n = hidden
        self.body = nn.Sequential(*mods)
        self.out = nn.Linear(n, HORIZON)
        # Feature standardisation, fixed from the dense model's training data
        # and exported with the graph.
        self.register_buffer("mu", torch.zeros(self.features.n_features))
        self.register_buffer("sd", torch.ones(self.features.n_features))

    def logits_from_features(self, f: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.out(self.body((f - self.mu) / self.sd))
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits_from_features(self.features(x)))
