"""Do real small functions whose recent minutes look like one Poisson rate
keep that rate over the next hour? On the training part's validation
functions (never the test part): at origins every hour from minute 480,
rows with 0.05-1.5 calls a minute over their last 4 hours, grouped by the
index of dispersion of those hours' 15-minute sums (1 for a Poisson rate),
the next hour's calls over 60 x the 4 hours' rate: quantiles of the ratio
per row and the ratio of the sums.

    python research/steady_rates.py [--models models]

Where the ratio's median is 1 and its quartiles close around it, the rate
is the expected count (package steady, manifest sparse.steady); a sum
ratio far above the median is a few rows whose next hour burst.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mesp_training.contract import read_clusters
from mesp_training.pipeline import load_cluster
from mesp_training.search import SearchConfig

ROOT = Path(__file__).resolve().parent.parent

LOOK, BIN, HOUR = 240, 15, 60


def validation_days(models: Path) -> np.ndarray:
    """The validation functions' days, as training holds them out."""
    val_percent = SearchConfig.load(ROOT / "training" / "search.yaml").val_percent
    clusters = read_clusters(models / "clusters.json")["clusters"]
    return np.concatenate([load_cluster(models, cl, val_percent)[1] for cl in clusters]).astype(np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, default=Path("models"))
    a = ap.parse_args()
    days = validation_days(a.models)
    rate, disp, nxt = [], [], []
    for x in days:
        for t in range(480, 1440 - HOUR + 1, 60):
            h = x[t - LOOK:t]
            if not 0.05 <= h.mean() <= 1.5:
                continue
            b = h.reshape(-1, BIN).sum(axis=1)
            rate.append(h.mean())
            disp.append(b.var() / b.mean())
            nxt.append(x[t:t + HOUR].sum())
    r, d, y = np.array(rate), np.array(disp), np.array(nxt)
    print(f"{len(days)} validation functions, {len(r)} rows at 0.05-1.5 calls a minute over the last {LOOK} minutes")
    for lo, hi in ((0, 1.5), (1.5, 3), (3, np.inf)):
        s = (d >= lo) & (d < hi)
        ratio = y[s] / (HOUR * r[s])
        q = np.quantile(ratio, [0.1, 0.25, 0.5, 0.75, 0.9])
        print(f"dispersion {lo}-{hi}: {s.sum()} rows; next hour / (60 x rate): quantiles 10/25/50/75/90% "
              + " / ".join(f"{v:.3f}" for v in q) + f"; sums {y[s].sum() / (HOUR * r[s].sum()):.3f}")


if __name__ == "__main__":
    main()
