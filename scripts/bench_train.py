"""Training speed on this machine's torch device: each model family of the
search trained for a fixed number of epochs on one cluster's windows of the
shipped set, with the same seeded hyper-parameters and data on any device,
so two runs (one with CUDA_VISIBLE_DEVICES= for the CPU) compare directly.

usage: bench_train.py [--models models] [--cluster 5] [--epochs 2] [--input-len 240]
Prints one JSON document: per family, seconds per epoch and the validation
MAE reached (which should roughly agree between devices).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import optuna
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training"))
from mesp_training import models as families  # noqa: E402
from mesp_training.contract import read_clusters, read_manifest  # noqa: E402
from mesp_training.fit import DEVICE, fit, make_split  # noqa: E402
from mesp_training.pipeline import load_cluster  # noqa: E402
from mesp_training.search import SearchConfig  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=Path, default=Path("models"))
    p.add_argument("--cluster", type=int, default=5)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--input-len", type=int, default=240)
    a = p.parse_args()
    cfg = SearchConfig.load(Path(__file__).resolve().parent.parent / "training" / "search.yaml")
    cs = read_clusters(a.models / read_manifest(a.models)["clusters"])
    cl = next(c for c in cs["clusters"] if c["id"] == a.cluster)
    fit_rows, val_rows = load_cluster(a.models, cl, cfg.val_percent)
    split = make_split(fit_rows, val_rows, a.input_len, cfg.train_stride)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out: dict[str, object] = {"device": torch.cuda.get_device_name(0) if DEVICE.type == "cuda" else "cpu",
                              "torch_threads": torch.get_num_threads(), "cluster": a.cluster,
                              "train_windows": min(len(split.x_train), cfg.max_train_windows),
                              "epochs": a.epochs, "input_len": a.input_len, "families": {}}
    for family in sorted(families.FAMILIES):
        # The same hyper-parameters on every device: a seeded random draw.
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask()
        params = families.space(family, trial)
        torch.manual_seed(1)
        model = families.build(family, a.input_len, params)
        t0 = time.perf_counter()
        got = fit(model, split, epochs=a.epochs, lr=1e-3, batch_size=cfg.batch_size,
                  max_windows=cfg.max_train_windows, seed=1)
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        s = time.perf_counter() - t0
        out["families"][family] = {"seconds_per_epoch": round(s / a.epochs, 3), "val_mae": round(got.val_mae, 4),
                                   "params": params}
        print(f"bench_train: {family} {s / a.epochs:.2f} s/epoch on {out['device']}", file=sys.stderr)
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
