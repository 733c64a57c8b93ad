"""Variants of the dense count model's final fit, scored on the training
part's validation functions only (never the test part): the shipped dense
graph against the same candidate fitted with another seed (alone, and
averaged with the shipped graph) and fitted for more epochs. WAPE over the
evaluation origins, of the dense model alone and of the forecasts as served
(routed, soft routing as the manifest says, the experts unchanged).

    python scripts/dense_variants.py [--models models] [--seed 2] [--epochs 40]

Each fit takes the search.yaml settings the shipped set was trained with
(about 3 minutes per 20 epochs on 2 cores). The models folder is not
changed: each variant is scored on a copy of it.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from mesp_training.contract import INPUT_NAME, OUTPUT_NAME, read_clusters, read_manifest
from mesp_training.data import EVAL_ORIGINS
from mesp_training.export import export
from mesp_training.pipeline import _candidate_of, load_cluster
from mesp_training.routing import Router
from mesp_training.search import SearchConfig, SplitCache, final_fit
from mesp_training.soft_routing import forecast_at, served_forecast


def averaged(files: list[Path], dst: Path) -> None:
    """One count graph answering the mean of the graphs in files (all
    taking the same counts)."""
    first = onnx.load(str(files[0]))
    g = first.graph
    for n in g.node:
        n.output[:] = ["avg_0" if o == OUTPUT_NAME else o for o in n.output]
    parts = ["avg_0"]
    for k, f in enumerate(files[1:], 1):
        m = onnx.compose.add_prefix(onnx.load(str(f)), f"m{k}_")
        for n in m.graph.node:
            n.input[:] = [INPUT_NAME if i == f"m{k}_{INPUT_NAME}" else i for i in n.input]
            n.output[:] = [f"avg_{k}" if o == f"m{k}_{OUTPUT_NAME}" else o for o in n.output]
        g.node.extend(m.graph.node)
        g.initializer.extend(m.graph.initializer)
        parts.append(f"avg_{k}")
    g.initializer.append(helper.make_tensor("avg_scale", onnx.TensorProto.FLOAT, [], [1.0 / len(files)]))
    g.node.extend([helper.make_node("Sum", parts, ["avg_sum"]),
                   helper.make_node("Mul", ["avg_sum", "avg_scale"], [OUTPUT_NAME])])
    onnx.checker.check_model(first)
    onnx.save(first, str(dst))


def score(models: Path, dense_file: Path, val: np.ndarray) -> tuple[float, float]:
    """Validation WAPE of the dense model alone and as served, with
    dense_file in the dense model's place."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "set"
        shutil.copytree(models, work, ignore=shutil.ignore_patterns(".work", "*.parquet", "*-p.*"))
        man = read_manifest(models)
        assert man is not None
        shutil.copy(dense_file, work / man["dense"]["file"])
        router = Router(read_clusters(models / man["clusters"]))
        dense = served = total = 0.0
        for t in EVAL_ORIGINS:
            y = val[:, t:t + 60]
            dense += np.abs(forecast_at(work, man["dense"], val, t) - y).sum()
            served += np.abs(served_forecast(work, man, router, val, t) - y).sum()
            total += np.abs(y).sum()
    return dense / total, served / total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--config", type=Path, default=Path("training/search.yaml"))
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=40)
    a = ap.parse_args()
    cfg = SearchConfig.load(a.config)
    man = read_manifest(a.models)
    if man is None:
        raise SystemExit(f"{a.models}/manifest.json missing")
    cs = read_clusters(a.models / man["clusters"])
    data = [load_cluster(a.models, cl, cfg.val_percent) for cl in cs["clusters"]]
    val = np.concatenate([d[1] for d in data])
    splits = SplitCache(np.concatenate([d[0] for d in data]), val, cfg.train_stride)
    cand = _candidate_of(man["dense"])
    shipped = a.models / man["dense"]["file"]
    print(f"shipped dense ({cfg.final_epochs} epochs, seed {cfg.seed}): val MAE {man['dense']['val_mae']:.3f}, "
          "WAPE dense %.4f, served %.4f" % score(a.models, shipped, val), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, c in (("seed", dataclasses.replace(cfg, seed=a.seed)),
                        ("epochs", dataclasses.replace(cfg, final_epochs=a.epochs))):
            fitted = final_fit(cand, splits, c, log=print, name=f"dense ({name})")
            path = Path(tmp) / f"dense-{name}.onnx"
            export(fitted.model, path, "dense")
            label = f"seed {a.seed}" if name == "seed" else f"{a.epochs} epochs"
            print(f"{label}: val MAE {fitted.val_mae:.3f}, WAPE dense %.4f, served %.4f"
                  % score(a.models, path, val), flush=True)
            if name == "seed":
                both = Path(tmp) / "dense-mean.onnx"
                averaged([shipped, path], both)
                print(f"shipped and seed {a.seed} averaged: WAPE dense %.4f, served %.4f"
                      % score(a.models, both, val), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
