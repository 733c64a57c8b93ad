"""Variants of the dense count model's final fit, scored on the training
part's validation functions only (never the test part): the shipped dense
graph against the same candidate fitted with another seed (alone, and
averaged with the shipped graph), fitted for more epochs, and fitted with
another loss power (scaling.scaled_l1: how much busy functions weigh) or
with the seasonal input (scaling.Forecaster: the same minutes of earlier
hours beside the recent window).
WAPE and MASE median over the evaluation origins, of the dense model alone
and of the forecasts as served (routed, soft routing as the manifest says,
the experts unchanged).

    python research/dense_variants.py [--models models] [--variants seed,epochs,loss,seasonal]
        [--seed 2] [--epochs 40] [--loss-power 0.5] [--seasonal 4]

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

from mesp_training.contract import INPUT_NAME, META_INPUT_LEN, OUTPUT_NAME, read_clusters, read_manifest
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


def score(models: Path, dense_file: Path, val: np.ndarray) -> tuple[float, float, float, float]:
    """Validation WAPE of the dense model alone and as served, with
    dense_file in the dense model's place, then the two MASE medians
    (EVALUATION.md section 1: each function's MAE over the origins divided
    by its one-step naive MAE inside minutes 1..1080, 1 where that is 0)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "set"
        shutil.copytree(models, work, ignore=shutil.ignore_patterns(".work", "*.parquet", "*-p.*"))
        man = read_manifest(models)
        assert man is not None
        shutil.copy(dense_file, work / man["dense"]["file"])
        meta = {p.key: p.value for p in onnx.load(str(dense_file)).metadata_props}
        man["dense"] = {**man["dense"], "input_len": int(meta[META_INPUT_LEN])}  # a seasonal graph reads more
        router = Router(read_clusters(models / man["clusters"]))
        err = np.zeros((2, len(val)))
        total = 0.0
        for t in EVAL_ORIGINS:
            y = val[:, t:t + 60]
            err[0] += np.abs(forecast_at(work, man["dense"], val, t) - y).sum(axis=1)
            err[1] += np.abs(served_forecast(work, man, router, val, t) - y).sum(axis=1)
            total += np.abs(y).sum()
    naive = np.abs(np.diff(val[:, :EVAL_ORIGINS[0]], axis=1)).mean(axis=1)
    mase = err / (60 * len(EVAL_ORIGINS)) / np.where(naive > 0, naive, 1.0)
    return err[0].sum() / total, err[1].sum() / total, float(np.median(mase[0])), float(np.median(mase[1]))


def report(label: str, path: Path, models: Path, val: np.ndarray) -> None:
    print(f"{label}: WAPE dense %.4f, served %.4f; MASE median dense %.3f, served %.3f"
          % score(models, path, val), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--config", type=Path, default=Path("training/search.yaml"))
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--loss-power", type=float, default=0.5)
    ap.add_argument("--seasonal", type=int, default=4, help="hours of same-phase history (Forecaster's seasonal)")
    ap.add_argument("--variants", default="seed,epochs",
                    help="comma-separated: seed (and the two averaged), epochs, loss (the loss power), "
                         "seasonal (the same candidate with the seasonal input)")
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
    report(f"shipped dense ({cfg.final_epochs} epochs, seed {cfg.seed}, loss power {cfg.loss_power}, "
           f"val MAE {man['dense']['val_mae']:.3f})", shipped, a.models, val)
    variants = {"seed": (f"seed {a.seed}", dataclasses.replace(cfg, seed=a.seed)),
                "epochs": (f"{a.epochs} epochs", dataclasses.replace(cfg, final_epochs=a.epochs)),
                "loss": (f"loss power {a.loss_power}", dataclasses.replace(cfg, loss_power=a.loss_power)),
                "seasonal": (f"seasonal input of {a.seasonal} hours", cfg)}
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.variants.split(","):
            if name not in variants:
                raise SystemExit(f"unknown variant {name!r}; known: {sorted(variants)}")
            label, c = variants[name]
            cn = dataclasses.replace(cand, seasonal=a.seasonal) if name == "seasonal" else cand
            fitted = final_fit(cn, splits, c, log=print, name=f"dense ({name})")
            path = Path(tmp) / f"dense-{name}.onnx"
            export(fitted.model, path, "dense")
            report(f"{label} (val MAE {fitted.val_mae:.3f})", path, a.models, val)
            if name == "seed":
                both = Path(tmp) / "dense-mean.onnx"
                averaged([shipped, path], both)
                report(f"shipped and seed {a.seed} averaged", both, a.models, val)
    return 0


if __name__ == "__main__":
    sys.exit(main())
