"""What the peer scripts share: their command line, the training part they
fit on and the cache of their predictions by the hash of their inputs (so
`make eval` refits a peer only when something it reads changed)."""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np


def parse_args(doc: str, out_help: str, argv: list[str] | None,
               flags: dict[str, str] | None = None) -> argparse.Namespace:
    """The peers' command line; flags are a script's own on/off options
    (name: help)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--models", type=Path, required=True, help="folder with clusters.json and the training Parquet")
    ap.add_argument("--eval", type=Path, required=True, help="Parquet of the evaluated functions (mesp export)")
    ap.add_argument("--out", type=Path, required=True, help=out_help)
    for name, text in (flags or {}).items():
        ap.add_argument(f"--{name}", action="store_true", help=text)
    return ap.parse_args(argv)


def training_part(models: Path) -> tuple[np.ndarray, np.ndarray]:
    """The training part's fit and validation functions [n, 1440] (float64)
    from the clusters' Parquet files, the test functions dropped."""
    from mesp_training.contract import is_test, is_validation, read_cluster_parquet, read_clusters

    fit_rows, val_rows = [], []
    for cl in read_clusters(models / "clusters.json")["clusters"]:
        ids, counts = read_cluster_parquet(models / cl["parquet"])
        for fid, row in zip(ids, counts, strict=True):
            if not is_test(fid):
                (val_rows if is_validation(fid) else fit_rows).append(row)
    return np.stack(fit_rows).astype(np.float64), np.stack(val_rows).astype(np.float64)


def inputs_key(models: Path, files: list[Path], settings: str = "") -> str:
    """sha256 of the given files, the training clusters and Parquet, and
    the settings' text."""
    h = hashlib.sha256()
    for p in [*files, models / "clusters.json", *sorted(models.glob("cluster-*.parquet"))]:
        h.update(p.read_bytes())
    h.update(settings.encode())
    return h.hexdigest()[:16]


def up_to_date(out: Path, key: str) -> bool:
    stamp = out.with_suffix(out.suffix + ".key")
    return out.exists() and stamp.exists() and stamp.read_text() == key


def mark(out: Path, key: str) -> None:
    out.with_suffix(out.suffix + ".key").write_text(key)


def write(out: Path, key: str, header: str, lines: Iterable[str]) -> None:
    """Writes the predictions CSV whole or not at all, then marks it as made
    from the inputs with this key."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(header + "\n")
        f.writelines(lines)
    tmp.replace(out)
    mark(out, key)
