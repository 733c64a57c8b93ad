"""Variants of how the shipped models are *served*, scored on the training
part's validation functions only (never the test part), every window routed
as `mesp serve` routes it (mesp_training.routing). No training.

    python scripts/served_variants.py counts-blend [--models models]
        the routed count expert blended with the dense model, by weight,
        WAPE over the evaluation origins, overall and per cluster
    python scripts/served_variants.py dense-logloss [--models models]
        the dense p_invoke model's minute-1 log-loss on every minute of the
        loop and on every 2nd (the decisions the LightGBM peer reports on)
    python scripts/served_variants.py prewarm-experts [--models models]
        cold starts at keepalive10's idle (interpolated) with the dense
        p_invoke model everywhere, with every cluster's expert where routed,
        and as the manifest serves them
    python scripts/served_variants.py prewarm-thresholds [--models models]
        one global pre-warm threshold against per-cluster thresholds
        (coordinate descent under keepalive10's idle budget), two-fold
        cross-validation over the validation functions
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from mesp_training.contract import INPUT_NAME, read_clusters, read_manifest
from mesp_training.data import EVAL_ORIGINS
from mesp_training.invocation_train import (
    LOOP_END,
    LOOP_START,
    REFERENCE_KEEPALIVE,
    cold_at_budget,
    h1_logloss,
    keepalive_warm,
    loop_p1,
    loop_routes,
)
from mesp_training.pipeline import load_cluster
from mesp_training.routing import Router
from mesp_training.runtime import inference_session
from mesp_training.search import SearchConfig

ROOT = Path(__file__).resolve().parent.parent


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] served_variants: {msg}", file=sys.stderr, flush=True)


def validation(models: Path) -> tuple[dict[str, Any], dict[str, Any], np.ndarray]:
    man = read_manifest(models)
    if man is None:
        raise SystemExit(f"{models}/manifest.json missing")
    cs = read_clusters(models / man["clusters"])
    val_percent = SearchConfig.load(ROOT / "training" / "search.yaml").val_percent
    val = np.concatenate([load_cluster(models, cl, val_percent)[1] for cl in cs["clusters"]])
    log(f"{len(val)} validation functions")
    return man, cs, val


def forecast_at(models: Path, entry: dict[str, Any], val: np.ndarray, t: int) -> np.ndarray:
    """A count model's forecasts of minutes t+1..t+60 for every function."""
    out: np.ndarray = inference_session(str(models / entry["file"])).run(
        None, {INPUT_NAME: val[:, t - entry["input_len"]:t].astype(np.float32)})[0]
    return out


def counts_blend(models: Path) -> None:
    man, cs, val = validation(models)
    router = Router(cs)
    serve = {e["cluster"]: e for e in man["experts"] if e["serve"] == "expert"}
    weights = (0.0, 0.5, 0.75, 1.0)
    num = {w: np.zeros(len(cs["clusters"]) + 1) for w in weights}  # last: all
    den = np.zeros(len(cs["clusters"]) + 1)
    for t in EVAL_ORIGINS:
        routes = router.route_many(val[:, :t]).served_cluster()
        dense, y = forecast_at(models, man["dense"], val, t), val[:, t:t + 60]
        experts = {c: forecast_at(models, e, val, t) for c, e in serve.items()}
        for w in weights:
            pred = dense.copy()
            for c, ex in experts.items():
                m = routes == c
                pred[m] = w * ex[m] + (1 - w) * dense[m]
            err = np.abs(pred - y).sum(axis=1)
            for j, cl in enumerate(cs["clusters"]):
                num[w][j] += err[routes == cl["id"]].sum()
            num[w][-1] += err.sum()
        for j, cl in enumerate(cs["clusters"]):
            den[j] += np.abs(y[routes == cl["id"]]).sum()
        den[-1] += np.abs(y).sum()
        log(f"origin {t} done")
    print("weight on the routed expert: " + "  ".join(f"{w:>6}" for w in weights))
    print("all clusters (WAPE)        : " + "  ".join(f"{num[w][-1] / den[-1]:.4f}" for w in weights))
    for j, cl in enumerate(cs["clusters"]):
        tag = "" if cl["id"] in serve else " (dense serves)"
        print(f"cluster {cl['id']}{tag:15}    : " + "  ".join(f"{num[w][j] / max(den[j], 1):.4f}" for w in weights))


def dense_logloss(models: Path) -> None:
    man, _, val = validation(models)
    p1 = loop_p1(models / man["dense"]["p_invoke"]["file"], val)
    invoked = val[:, LOOP_START - 1:LOOP_END] > 0
    print(f"dense p_invoke log-loss(h=1): every minute {h1_logloss(p1.ravel(), invoked.ravel()):.5f}, "
          f"every 2nd minute {h1_logloss(p1[:, ::2].ravel(), invoked[:, ::2].ravel()):.5f}")


def routed_p1(models: Path, man: dict[str, Any], val: np.ndarray, routes: np.ndarray,
              experts: set[int]) -> np.ndarray:
    """p_invoke of every loop decision: the given clusters' experts where
    the router sends the decision to them, the dense model elsewhere."""
    p1 = loop_p1(models / man["dense"]["p_invoke"]["file"], val)
    for e in man["experts"]:
        if e["cluster"] in experts and "p_invoke" in e:
            m = routes == e["cluster"]
            rows = m.any(axis=1)
            sub = p1[rows]
            sub[m[rows]] = loop_p1(models / e["p_invoke"]["file"], val[rows])[m[rows]]
            p1[rows] = sub
    return p1


def served_experts(man: dict[str, Any]) -> set[int]:
    return {e["cluster"] for e in man["experts"] if e.get("p_invoke", {}).get("serve") == "expert"}


def prewarm_experts(models: Path) -> None:
    man, cs, val = validation(models)
    routes = loop_routes(Router(cs), val)
    log("validation decisions routed")
    every = {e["cluster"] for e in man["experts"]}
    for name, experts in [("dense everywhere", set()), ("every expert where routed", every),
                          ("as the manifest serves", served_experts(man))]:
        got = cold_at_budget(routed_p1(models, man, val, routes, experts), val)
        print(f"{name:26}: {got['cold_at_ka10_idle']:.1f} cold starts at keepalive10's idle "
              f"(keepalive10: {got['keepalive10_cold']} cold, {got['keepalive10_idle']} idle)")


def prewarm_thresholds(models: Path) -> None:
    man, cs, val = validation(models)
    routes = loop_routes(Router(cs), val)
    log("validation decisions routed")
    p1 = routed_p1(models, man, val, routes, served_experts(man))
    invoked = val[:, LOOP_START - 1:LOOP_END] > 0
    ka = keepalive_warm(val, REFERENCE_KEEPALIVE)
    groups = np.where(routes < 0, len(cs["clusters"]), routes)  # the last group: out of distribution
    thresholds = np.geomspace(0.002, 0.2, 80)

    def outcome(rows: np.ndarray, th: np.ndarray) -> tuple[int, int]:
        warm = p1[rows] >= th[groups[rows]]
        return int((invoked[rows] & ~warm).sum()), int((~invoked[rows] & warm).sum())

    k = len(cs["clusters"]) + 1
    idx = np.random.default_rng(0).permutation(len(val))
    halves = (idx[: len(idx) // 2], idx[len(idx) // 2:])
    for fold, (a, b) in enumerate((halves, halves[::-1])):
        budget = int((~invoked[a] & ka[a]).sum())
        fits = [(outcome(a, np.full(k, t)), t) for t in thresholds]
        t0 = min((c, t) for (c, i), t in fits if i <= budget)[1]
        th = np.full(k, t0)
        best = outcome(a, th)
        for _ in range(3):  # coordinate descent, one group's threshold at a time
            for g in range(k):
                for t in thresholds:
                    trial = th.copy()
                    trial[g] = t
                    c, i = outcome(a, trial)
                    if i <= budget and c < best[0]:
                        th, best = trial, (c, i)
        (cg, ig), (cp, ip) = outcome(b, np.full(k, t0)), outcome(b, th)
        print(f"fold {fold}: chosen on one half: global {t0:.4f}, per cluster {np.round(th, 4).tolist()}")
        print(f"  on the other half: global {cg} cold starts / {ig} idle minutes; "
              f"per cluster {cp} / {ip} ({ip / ig - 1:+.1%} idle)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("check", choices=["counts-blend", "dense-logloss", "prewarm-experts", "prewarm-thresholds"])
    p.add_argument("--models", type=Path, default=ROOT / "models")
    a = p.parse_args()
    checks = {"counts-blend": counts_blend, "dense-logloss": dense_logloss, "prewarm-experts": prewarm_experts,
              "prewarm-thresholds": prewarm_thresholds}
    checks[a.check](a.models)


if __name__ == "__main__":
    main()
