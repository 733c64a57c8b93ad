"""python -m mesp_training train --models DIR [--clusters 3,4] [--config search.yaml] [--storage URL]
python -m mesp_training train-invoke --models DIR [--clusters 3,4] [--config search.yaml]
python -m mesp_training threshold --models DIR [--config search.yaml]
python -m mesp_training soft-routing --models DIR [--config search.yaml]
python -m mesp_training train-trees --models DIR [--config search.yaml] [--window-only] [--mean | --quantiles]
python -m mesp_training refit --models DIR [--config search.yaml]
python -m mesp_training serve-rule --models DIR [--config search.yaml]
python -m mesp_training train-stop --models DIR --decisions out/stop-decisions.parquet"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from .contract import read_clusters, read_manifest
from .count_trees import train_mean_trees, train_quantile_trees, train_trees
from .invocation_train import InvokeConfig, rechoose_threshold, train_invoke
from .pipeline import choose_serving, load_cluster, log, refit, train
from .search import SearchConfig
from .soft_routing import choose_soft_routing
from .stop import train_stop


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mesp_training")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="search, train and export experts and the dense model")
    t.add_argument("--models", required=True, type=Path, help="folder with clusters.json and cluster-*.parquet")
    t.add_argument("--clusters", help="comma-separated cluster ids: train only these (keeps the others)")
    t.add_argument("--config", type=Path, help="search settings (YAML)")
    t.add_argument("--storage", help="Optuna storage URL (default: SQLite in the work folder)")
    t.add_argument("--work", type=Path, help="folder for studies and trial weights")
    t.add_argument("--trials", type=int, help="override trials_per_cluster")
    t.add_argument("--minutes", type=float, help="override minutes_per_cluster")
    t.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    def on_set(name: str, summary: str, config: str) -> argparse.ArgumentParser:
        """A subcommand over a trained set: --models, --config, --threads."""
        c = sub.add_parser(name, help=summary)
        c.add_argument("--models", required=True, type=Path, help="folder with manifest.json, clusters.json, Parquet")
        c.add_argument("--config", type=Path, help=config)
        c.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
        return c

    i = on_set("train-invoke", "train and export the p_invoke models (after `train`)",
               "search settings (YAML, section invoke)")
    i.add_argument("--clusters", help="comma-separated cluster ids: train only these (keeps the others)")
    on_set("threshold", "choose again, without training, where each p_invoke expert serves (on validation windows "
           "as routed) and the default pre-warm threshold", "search settings (YAML, section invoke)")
    on_set("soft-routing", "choose, without training, soft routing of the count forecasts (a blend of the two "
           "nearest clusters' models) on validation windows as routed", "search settings (YAML): the validation split")
    tt = on_set("train-trees", "fit the count trees (LightGBM, after `train`, `train-invoke` and `soft-routing`) "
                "and choose their blend weight on validation windows as routed",
                "search settings (YAML): the validation split")
    tt.add_argument("--window-only", action="store_true",
                    help="trees that read the 240-minute window alone, not the dense p_invoke graph's features too")
    tt.add_argument("--mean", action="store_true",
                    help="the mean trees (Huber on the hour's volume): the expected count, beside the median, "
                         "as manifest 'mean'")
    tt.add_argument("--quantiles", action="store_true",
                    help="the quantile trees (pinball loss at 0.9 and 0.99): each minute's count quantiles, "
                         "beside the median, as manifest 'quantiles'")
    on_set("refit", "the final fit alone (search.yaml final_epochs) of the count models the manifest records, "
           "without searching again", "search settings (YAML)")
    on_set("serve-rule", "choose again, without training, where each count expert serves (serve_rule: a clear "
           "win over the dense model on the cluster's validation functions)", "search settings (YAML): the "
           "validation split")
    st = on_set("train-stop", "fit the stop model (p_invoke on a platform where functions also stop) on the "
                "decisions `mesp stop-decisions` wrote", "unused")
    st.add_argument("--decisions", required=True, type=Path, help="Parquet written by `mesp stop-decisions`")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        if a.cmd == "soft-routing":
            scfg = SearchConfig.load(a.config)
            man = read_manifest(a.models)
            if man is None:
                raise ValueError(f"{a.models}/manifest.json missing: train the count models first")
            cs = read_clusters(a.models / man["clusters"])
            val = np.concatenate([load_cluster(a.models, cl, scfg.val_percent)[1] for cl in cs["clusters"]])
            choose_soft_routing(a.models, val, log=log)
            return 0
        if a.cmd == "train-stop":
            train_stop(a.models, a.decisions, log=log)
            return 0
        if a.cmd == "serve-rule":
            choose_serving(a.models, SearchConfig.load(a.config))
            return 0
        if a.cmd == "refit":
            refit(a.models, SearchConfig.load(a.config))
            return 0
        if a.cmd == "train-trees":
            scfg = SearchConfig.load(a.config)
            if a.mean and a.quantiles:
                raise ValueError("train-trees: --mean or --quantiles, not both")
            fit_trees = train_mean_trees if a.mean else train_quantile_trees if a.quantiles else train_trees
            fit_trees(a.models, lambda cl: load_cluster(a.models, cl, scfg.val_percent), log=log,
                      p_features=not a.window_only)
            return 0
        if a.cmd == "threshold":
            scfg = SearchConfig.load(a.config)
            rechoose_threshold(a.models, InvokeConfig.load(a.config),
                               lambda cl: load_cluster(a.models, cl, scfg.val_percent), log=log)
            return 0
        clusters = [int(c) for c in a.clusters.split(",")] if a.clusters else None
        if a.cmd == "train-invoke":
            icfg = InvokeConfig.load(a.config)
            scfg = SearchConfig.load(a.config)
            train_invoke(a.models, icfg, lambda cl: load_cluster(a.models, cl, scfg.val_percent),
                         clusters=clusters, log=log)
            return 0
        cfg = SearchConfig.load(a.config, trials_per_cluster=a.trials, minutes_per_cluster=a.minutes)
        train(a.models, cfg, clusters=clusters, storage=a.storage, work=a.work)
    except (ValueError, FileNotFoundError) as e:
        print(f"mesp_training: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
