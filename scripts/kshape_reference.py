"""K-Shape peers on the same rows as `mesp cluster`: tslearn's KShape and the
`kshape` package, same K and iterations cap; prints wall time and final
objective (sum of SBD of every series to its assigned centroid, computed here
the same way for all three, including Go's result) and the ratios.

usage: kshape_reference.py GO_OUT_DIR GO_SUMMARY.json [--skip-kshape]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from mesp_training.contract import read_cluster_parquet, read_clusters  # noqa: E402


def znorm(x: np.ndarray) -> np.ndarray:
    mu = x.mean(axis=1, keepdims=True)
    sd = x.std(axis=1, keepdims=True)
    return np.where(sd > 0, (x - mu) / np.where(sd > 0, sd, 1), 0.0)


def sbd_to(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """SBD of every row of x (z-normalised) to one centroid c, by FFT."""
    m = x.shape[1]
    n = 1 << (2 * m - 1).bit_length()
    cc = np.fft.irfft(np.fft.rfft(x, n) * np.conj(np.fft.rfft(c, n)), n)
    cc = np.concatenate([cc[:, -(m - 1):], cc[:, :m]], axis=1)
    den = np.linalg.norm(x, axis=1) * np.linalg.norm(c)
    ncc = np.where(den > 0, cc.max(axis=1) / np.where(den > 0, den, 1), 0.0)
    return 1 - ncc


def objective(x: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> float:
    total = 0.0
    for j, c in enumerate(centroids):
        rows = labels == j
        if rows.any():
            total += float(sbd_to(x[rows], znorm(c[None, :])[0]).sum())
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("go_out", type=Path)
    ap.add_argument("go_summary", type=Path)
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-kshape", action="store_true")
    a = ap.parse_args()
    cs = read_clusters(a.go_out / "clusters.json")
    ids, rows = [], []
    for cl in cs["clusters"]:
        i, c = read_cluster_parquet(a.go_out / cl["parquet"])
        ids += i
        rows.append(c)
    raw = np.concatenate(rows).astype(np.float64)
    x = znorm(raw)
    k = cs["k"]
    by_id = {m["function"]: m["cluster"] for m in cs["members"]}
    go_labels = np.array([by_id[f] for f in ids])
    go_cent = np.array([cl["centroid"] for cl in cs["clusters"]])
    go = json.loads(a.go_summary.read_text())
    results = {"go": {"seconds": go["seconds"], "objective": objective(x, go_labels, go_cent),
                      "objective_go_reported": go["objective"], "iterations": go["iterations"]}}
    print(f"n={len(x)} m={x.shape[1]} k={k} max_iter={a.max_iter}", file=sys.stderr)

    from tslearn.clustering import KShape

    t0 = time.perf_counter()
    ks = KShape(n_clusters=k, max_iter=a.max_iter, n_init=1, random_state=a.seed, verbose=False)
    ks.fit(x[:, :, None])
    results["tslearn"] = {"seconds": time.perf_counter() - t0,
                          "objective": objective(x, ks.labels_, ks.cluster_centers_[:, :, 0]),
                          "iterations": int(getattr(ks, "n_iter_", -1))}
    print(f"tslearn: {results['tslearn']}", file=sys.stderr)
    if not a.skip_kshape:
        from kshape.core import KShapeClusteringCPU

        t0 = time.perf_counter()
        kp = KShapeClusteringCPU(k, centroid_init="zero", max_iter=a.max_iter, n_jobs=1)
        kp.fit(x[:, :, None])
        results["kshape"] = {"seconds": time.perf_counter() - t0,
                             "objective": objective(x, np.asarray(kp.labels_), np.asarray(kp.centroids_)[:, :, 0])}
        print(f"kshape: {results['kshape']}", file=sys.stderr)
    for peer in [p for p in ("tslearn", "kshape") if p in results]:
        results[f"speedup_vs_{peer}"] = results[peer]["seconds"] / results["go"]["seconds"]
        results[f"objective_go_over_{peer}"] = results["go"]["objective"] / results[peer]["objective"]
    results["machine"] = f"{platform.machine()}, {platform.processor() or 'cpu'}, {__import__('os').cpu_count()} cores"
    json.dump(results, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
