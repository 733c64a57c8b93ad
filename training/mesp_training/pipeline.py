"""`make train-experts`: the dense model and one expert per cluster, the
winners exported to ONNX and listed in manifest.json.

The dense model is one more study over every cluster's data with the same
families and the same total budget as all experts together. An expert is
served only where it clearly beats the dense model on its cluster's
validation functions (serve_rule); the manifest records both numbers and
the decision.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .contract import (
    HORIZON,
    VERSION,
    is_test,
    is_validation,
    read_cluster_parquet,
    read_clusters,
    read_manifest,
    sha256_file,
    write_json_atomic,
    write_manifest,
)
from .export import export
from .search import Candidate, SearchConfig, SplitCache, Winner, final_fit, load_winner, save_winner, search
from .serve_rule import judge, per_minute, validation_errors


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_cluster(models: Path, cl: dict[str, Any], val_percent: int) -> tuple[np.ndarray, np.ndarray]:
    ids, counts = read_cluster_parquet(models / cl["parquet"])
    keep = [i for i, f in enumerate(ids) if not is_test(f)]
    if len(keep) < len(ids):
        # Never train on the held-out test part, even if clustered by mistake.
        log(f"cluster {cl['id']}: dropped {len(ids) - len(keep)} test-part functions")
    ids = [ids[i] for i in keep]
    counts = counts[keep]
    val = np.array([is_validation(f, val_percent) for f in ids], dtype=bool)
    if val.all() or not val.any():
        # Too few functions to hold some out by hash: alternate instead.
        val = np.arange(len(ids)) % 5 == 4
    return counts[~val], counts[val]


# Settings added after studies were first named: at their defaults they
# leave a study's name as it was.
LATER_SETTINGS = ("spaces", "loss_power", "seasonal_hours")


def _fingerprint(cfg: SearchConfig, *parts: Any) -> str:
    """Names a study by what it searches: the same data and settings resume
    the same study; re-clustered data or a changed budget start a new one
    (a stale study would hand back weights trained on other data)."""
    # as before spaces, the loss power and the seasonal input existed, where
    # they are at their defaults; the final fit comes after the study
    default = SearchConfig()
    settings = {k: v for k, v in cfg.__dict__.items()
                if k != "final_epochs" and not (k in LATER_SETTINGS and v == getattr(default, k))}
    h = hashlib.sha256(json.dumps([settings, *parts], sort_keys=True, default=str).encode())
    return h.hexdigest()[:10]


def _model_entry(model_id: str, file: str, models: Path, w: Winner) -> dict[str, Any]:
    c = w.candidate
    return {"id": model_id, "file": file, "sha256": sha256_file(models / file), "family": c.family,
            "input_len": c.window_len, "val_mae": w.val_mae,
            "naive_val_mae": w.naive_val_mae, "data": w.data,
            "params": {**c.params, "lr": c.lr, "init": c.init,
                       **({"recent_len": c.input_len, "seasonal": c.seasonal} if c.seasonal else {})}}


def _expert_entry(models: Path, cid: int, w: Winner, dense: dict[str, Any], val_c: np.ndarray) -> dict[str, Any]:
    """Exports a cluster's expert and its manifest entry; where it serves
    is serve_rule's verdict against the dense model's entry."""
    name = f"cluster-{cid}"
    file = f"expert-{cid}.onnx"
    export(w.model, models / file, name)
    entry = _model_entry(name, file, models, w)
    _decide(models, cid, entry, dense, val_c)
    return entry


def _decide(models: Path, cid: int, entry: dict[str, Any], dense: dict[str, Any], val_c: np.ndarray) -> None:
    """Sets an expert entry's ``serve``, ``dense_val_mae`` and ``serve_rule``
    from both exported graphs on the cluster's validation functions."""
    expert_err = validation_errors(models, entry, val_c)
    dense_err = validation_errors(models, dense, val_c)
    v = judge(expert_err, dense_err)
    entry.update({"cluster": cid, "dense_val_mae": per_minute(dense_err), "serve": v.serve,
                  "serve_rule": v.record()})
    log(f"cluster {cid}: {entry['family']} L={entry['input_len']} val MAE {per_minute(expert_err):.3f} vs dense "
        f"{per_minute(dense_err):.3f} ({v.ratio:.3f}x), lower in {v.win_share:.1%} of resamples of "
        f"{v.functions} functions -> serve {v.serve}")


def choose_serving(models: Path, cfg: SearchConfig) -> dict[str, Any]:
    """Applies serve_rule again, without training, to every expert the
    manifest lists (soft routing and the count trees are worth choosing
    again after it)."""
    man = read_manifest(models)
    if man is None:
        raise ValueError(f"{models}/manifest.json missing: train first")
    cs = read_clusters(models / man["clusters"])
    by_id = {cl["id"]: cl for cl in cs["clusters"]}
    for e in man["experts"]:
        _decide(models, e["cluster"], e, man["dense"], load_cluster(models, by_id[e["cluster"]], cfg.val_percent)[1])
    write_manifest(models, man)
    return man


def _candidate_of(entry: dict[str, Any]) -> Candidate:
    """The candidate a manifest entry records (family, L, params, lr, init;
    a seasonal input's recent length and hours, where it has one)."""
    p = dict(entry["params"])
    lr, init = p.pop("lr"), p.pop("init", "scratch")
    recent, seasonal = p.pop("recent_len", entry["input_len"]), p.pop("seasonal", 0)
    return Candidate(entry["family"], recent, p, lr, init, seasonal)


def refit(models: Path, cfg: SearchConfig) -> dict[str, Any]:
    """The final fit alone (cfg.final_epochs) of the candidates the
    manifest records, without searching again: the dense model from
    scratch, then every expert from it, as `train` does after its studies.
    Everything else in the manifest (p_invoke, routing, trees) stays; soft
    routing and the count trees' weight are worth choosing again after it."""
    if not cfg.final_epochs:
        raise ValueError("refit needs final_epochs > 0 (search.yaml)")
    man = read_manifest(models)
    if man is None:
        raise ValueError(f"{models}/manifest.json missing: train first")
    cs = read_clusters(models / man["clusters"])
    data = {cl["id"]: load_cluster(models, cl, cfg.val_percent) for cl in cs["clusters"]}
    fit_all = np.concatenate([d[0] for d in data.values()])
    val_all = np.concatenate([d[1] for d in data.values()])
    dense = final_fit(_candidate_of(man["dense"]), SplitCache(fit_all, val_all, cfg.train_stride), cfg,
                      log=log, name="dense")
    export(dense.model, models / "dense.onnx", "dense")
    save_winner(dense, models / "dense.pt")
    man["dense"] = {**man["dense"], **_model_entry("dense", "dense.onnx", models, dense)}
    for i, e in enumerate(man["experts"]):
        cid = e["cluster"]
        fit_c, val_c = data[cid]
        w = final_fit(_candidate_of(e), SplitCache(fit_c, val_c, cfg.train_stride), cfg, dense=dense.model,
                      log=log, name=f"cluster-{cid}")
        man["experts"][i] = {**e, **_expert_entry(models, cid, w, man["dense"], val_c)}
    write_manifest(models, man)
    return man


def train(models: Path, cfg: SearchConfig, *, clusters: list[int] | None = None, storage: str | None = None,
          work: Path | None = None) -> dict[str, Any]:
    models = Path(models)
    work = Path(work or models / ".work")
    cs = read_clusters(models / "clusters.json")
    by_id = {cl["id"]: cl for cl in cs["clusters"]}
    selected = sorted(by_id) if clusters is None else clusters
    unknown = [c for c in selected if c not in by_id]
    if unknown:
        raise ValueError(f"unknown cluster ids {unknown}; clusters.json has {sorted(by_id)}")
    data = {cid: load_cluster(models, by_id[cid], cfg.val_percent) for cid in sorted(by_id)}
    k = len(by_id)
    report: dict[str, Any] = {"config": cfg.__dict__, "studies": {}}

    old = read_manifest(models)
    # Each study's first trial is the candidate serving today, if any.
    previous = {e["cluster"]: _candidate_of(e) for e in old["experts"]} if old else {}
    if clusters is None or old is None:
        fit_all = np.concatenate([d[0] for d in data.values()])
        val_all = np.concatenate([d[1] for d in data.values()])
        log(f"dense: {len(fit_all)} training + {len(val_all)} validation functions, "
            f"{k * cfg.trials_per_cluster} trials, {k * cfg.minutes_per_cluster:.1f} min")
        members = sorted((m["function"], m["cluster"]) for m in cs["members"])
        dense_splits = SplitCache(fit_all, val_all, cfg.train_stride)  # windows built once, for both
        champion = _candidate_of(old["dense"]) if old else None
        dense = search(f"dense-{_fingerprint(cfg, members, champion and champion.__dict__)}", dense_splits, cfg,
                       trials=k * cfg.trials_per_cluster, minutes=k * cfg.minutes_per_cluster,
                       work=work, storage=storage, champion=champion, log=log)
        if cfg.final_epochs:
            dense = final_fit(dense.candidate, dense_splits, cfg, trials=dense.trials, log=log, name="dense")
        export(dense.model, models / "dense.onnx", "dense")
        save_winner(dense, models / "dense.pt")
        dense_entry = _model_entry("dense", "dense.onnx", models, dense)
        report["studies"]["dense"] = dense.trials
        log(f"dense: winner {dense.candidate.family} L={dense.candidate.input_len} val MAE {dense.val_mae:.3f} "
            f"(naive {dense.naive_val_mae:.3f})")
        experts: dict[int, dict[str, Any]] = {}
    else:
        # Adding clusters: the dense model and the other experts stay as they are.
        dense = load_winner(models / "dense.pt")
        dense_entry = old["dense"]
        experts = {e["cluster"]: e for e in old["experts"]}

    for cid in selected:
        fit_c, val_c = data[cid]
        log(f"cluster {cid}: {len(fit_c)} training + {len(val_c)} validation functions")
        name = f"cluster-{cid}"
        ids = sorted(m["function"] for m in cs["members"] if m["cluster"] == cid)
        champion = previous.get(cid)
        study = f"{name}-{_fingerprint(cfg, ids, dense.candidate.__dict__, champion and champion.__dict__)}"
        splits = SplitCache(fit_c, val_c, cfg.train_stride)
        w = search(study, splits, cfg, trials=cfg.trials_per_cluster, minutes=cfg.minutes_per_cluster,
                   work=work, storage=storage, warm=dense, champion=champion, log=log)
        if cfg.final_epochs:
            w = final_fit(w.candidate, splits, cfg, dense=dense.model, trials=w.trials, log=log, name=name)
        experts[cid] = _expert_entry(models, cid, w, dense_entry, val_c)
        report["studies"][name] = w.trials

    manifest = {"version": VERSION, "horizon": HORIZON, "clusters": "clusters.json",
                "clusters_sha256": sha256_file(models / "clusters.json"), "dense": dense_entry,
                "experts": [experts[c] for c in sorted(experts)]}
    if old is not None and clusters is not None:
        # Retraining some clusters keeps what the rest of the set chose: the
        # p_invoke threshold until those models are retrained, soft routing
        # and the count trees (one model for the whole set) until chosen again.
        for key in ("prewarm", "routing", "trees"):
            if key in old:
                manifest[key] = old[key]
    write_manifest(models, manifest)
    tag = "all" if clusters is None else "-".join(map(str, selected))
    write_json_atomic(work / f"training-report-{tag}.json", report)
    return manifest
