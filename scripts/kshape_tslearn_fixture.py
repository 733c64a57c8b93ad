"""Generates kshape/testdata/tslearn_fixture.json: tslearn's KShape on real
rows of the 100-row fixture, started from given initial centroids, so the Go
test can run k-Shape from the same start and compare clusters and objective.

usage: kshape_tslearn_fixture.py FIXTURE_PARQUET_DIR OUT.json
(FIXTURE_PARQUET_DIR: `mesp cluster --part all --data <fixture> --k 1 --out DIR`,
so Python reads the rows through the one Go loader.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from kshape_reference import objective, znorm
from tslearn.clustering import KShape

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from mesp_training.contract import read_cluster_parquet  # noqa: E402

K, N, SEED = 3, 60, 7


def main() -> None:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    ids, counts = read_cluster_parquet(src / "cluster-0.parquet")
    order = np.argsort(ids)[:N]  # the N smallest ids: stable and documented
    ids = [ids[i] for i in order]
    x = znorm(counts[order].astype(np.float64))
    rng = np.random.default_rng(SEED)
    init_rows = rng.choice(N, K, replace=False)
    init = x[init_rows][:, :, None]
    ks = KShape(n_clusters=K, max_iter=100, n_init=1, init=init.copy(), verbose=False)
    ks.fit(x[:, :, None])
    doc = {
        "source": "azure2019-invitro-dev-sample100.csv.gz, the 60 smallest HashFunction ids",
        "k": K,
        "functions": ids,
        "init_rows": init_rows.tolist(),
        "labels": ks.labels_.tolist(),
        "objective": objective(x, ks.labels_, ks.cluster_centers_[:, :, 0]),
        "tslearn_iterations": int(ks.n_iter_),
    }
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"objective {doc['objective']:.4f}, sizes {np.bincount(ks.labels_, minlength=K).tolist()}")


if __name__ == "__main__":
    main()
