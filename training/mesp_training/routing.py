"""The Go router (router.Route) in numpy: which cluster's expert a window of
counts is sent to, or that it is out of distribution.

A full day is compared with each centroid by SBD; a shorter window by the
best NCC with any same-length stretch of each centroid (wrapping past
midnight), against that length's interpolated radius. Training uses it to
choose, on validation windows routed as the server routes them, where an
expert serves; `scripts/reference_server.py` uses it to route as `mesp
serve` does. `router/calibrate_test.go` checks it against Go on real rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# A window with no shape (constant after the transform) routes to the first
# cluster, flagged out of distribution, as in Go.
_FLAT = 1e-12


def znorm(x: np.ndarray) -> np.ndarray:
    """z-normalise along the last axis; a flat row becomes zeros."""
    x = np.asarray(x, float)
    mean = x.mean(axis=-1, keepdims=True)
    sd = x.std(axis=-1, keepdims=True)
    ok = sd > _FLAT * np.maximum(1.0, np.abs(mean))
    return np.where(ok, (x - mean) / np.where(ok, sd, 1.0), 0.0)


def transform(x: np.ndarray, log1p: bool, smooth: int) -> np.ndarray:
    """kshape.Transform along the last axis: log1p, then a centred moving
    average whose edges shrink."""
    y = np.log1p(x) if log1p else np.asarray(x, float)
    if smooth <= 1:
        return y
    n = y.shape[-1]
    prefix = np.concatenate([np.zeros(y.shape[:-1] + (1,)), np.cumsum(y, axis=-1)], axis=-1)
    i = np.arange(n)
    lo = np.maximum(0, i - smooth // 2)
    hi = np.minimum(n, i - smooth // 2 + smooth)
    out: np.ndarray = (prefix[..., hi] - prefix[..., lo]) / (hi - lo)
    return out


@dataclass(frozen=True)
class Routes:
    """Per window: the nearest cluster's id, its distance, and whether the
    distance is beyond that cluster's radius (served by the dense model);
    and the distance to every cluster ([windows, clusters], in the order
    of Router.ids)."""

    cluster: np.ndarray
    distance: np.ndarray
    ood: np.ndarray
    distances: np.ndarray

    def served_cluster(self) -> np.ndarray:
        """The cluster whose expert may serve each window, -1 where none."""
        return np.where(self.ood, -1, self.cluster)


class Router:
    def __init__(self, clusters: dict[str, Any]) -> None:
        tr = clusters.get("transform", {})
        self.log1p, self.smooth = bool(tr.get("log1p")), int(tr.get("smooth", 0))
        self.m = int(clusters["length"])
        self.n = 1 << (2 * self.m).bit_length()
        self.ids = np.array([c["id"] for c in clusters["clusters"]])
        self.thr = np.array([c["threshold"] for c in clusters["clusters"]], float)
        self.partial = [c.get("partial_thresholds") or [] for c in clusters["clusters"]]
        cents = znorm(np.array([c["centroid"] for c in clusters["clusters"]], float))
        self.spec = np.conj(np.fft.rfft(cents, self.n))
        self.norms = np.linalg.norm(cents, axis=1)
        twice = np.concatenate([cents, cents], axis=1)
        self.twice_spec = np.fft.rfft(twice, self.n)
        zero = np.zeros((len(cents), 1))
        self.sum = np.concatenate([zero, np.cumsum(twice, axis=1)], axis=1)
        self.sum_sq = np.concatenate([zero, np.cumsum(twice**2, axis=1)], axis=1)

    def thresholds(self, n: int) -> np.ndarray:
        """Each cluster's radius for an n-minute window."""
        out = self.thr.copy()
        if n == self.m:
            return out
        for j, pt in enumerate(self.partial):
            if pt:
                out[j] = np.interp(n, [p["length"] for p in pt], [p["threshold"] for p in pt])
        return out

    def route(self, counts: np.ndarray) -> tuple[int, float, bool]:
        r = self.route_many(np.asarray(counts, float)[None, :])
        return int(r.cluster[0]), float(r.distance[0]), bool(r.ood[0])

    def route_many(self, windows: np.ndarray, chunk: int = 64) -> Routes:
        """Routes windows of one length ([rows, n], n <= the clusters' length)."""
        windows = np.asarray(windows, float)
        rows, n = windows.shape
        if not 0 < n <= self.m:
            raise ValueError(f"routing: a window of {n} minutes (the clusters' length is {self.m})")
        z = znorm(transform(windows, self.log1p, self.smooth))
        d = np.concatenate([self._distances(z[i:i + chunk]) for i in range(0, rows, chunk)]) \
            if rows else np.zeros((0, len(self.ids)))
        j = d.argmin(axis=1)
        best = d[np.arange(rows), j]
        flat = np.linalg.norm(z, axis=1) == 0
        j = np.where(flat, 0, j)
        best = np.where(flat, 1.0, best)
        ood = flat | (best > self.thresholds(n)[j])
        return Routes(self.ids[j], best, ood, d)

    def _distances(self, z: np.ndarray) -> np.ndarray:
        """[rows, clusters] of 1 - the best NCC, for transformed, z-normalised
        windows."""
        n = z.shape[1]
        nz = np.linalg.norm(z, axis=1)[:, None]
        zs = np.fft.rfft(z, self.n)
        if n == self.m:
            cc = np.fft.irfft(zs[:, None, :] * self.spec[None], self.n)
            cc = np.concatenate([cc[..., -(self.m - 1):], cc[..., : self.m]], axis=-1).max(axis=-1)
            ncc = cc / (np.where(nz > 0, nz, np.inf) * np.where(self.norms > 0, self.norms, np.inf)[None])
        else:
            # cc[s] = sum_t doubled[t+s] z[t], s = 0..m-1
            cc = np.fft.irfft(self.twice_spec[None] * np.conj(zs)[:, None, :], self.n)[..., : self.m]
            s = np.arange(self.m)
            mean = (self.sum[:, s + n] - self.sum[:, s]) / n
            ss = self.sum_sq[:, s + n] - self.sum_sq[:, s] - n * mean**2
            ok = ss > 1e-9 * n
            denom = np.where(nz > 0, nz, np.inf)[..., None] * np.sqrt(np.where(ok, ss, 1.0))[None]
            ncc = np.where(ok[None], cc / denom, 0.0).max(axis=-1)
            ncc = np.maximum(ncc, 0.0)
        d: np.ndarray = 1 - np.clip(ncc, -1.0, 1.0)
        return d
