"""Variants of how the shipped models are *served*, scored on the training
part's validation functions only (never the test part), every window routed
as `mesp serve` routes it (mesp_training.routing). No training.

    python research/served_variants.py counts-blend [--models models]
        the routed count expert blended with the dense model, by weight,
        WAPE over the evaluation origins, overall and per cluster
    python research/served_variants.py counts-gate [--models models]
        the served count forecasts (whole invocations) set to zero in the
        minutes whose dense p_invoke is below a cut (0.5: the L1-optimal
        point forecast of a minute more likely idle than not is 0), WAPE
        over the evaluation origins and the median over functions of MAE /
        the last value's
    python research/served_variants.py soft-routing [--models models]
        hard routing against a blend of the two nearest clusters' served
        count models, weighted by their distance (SBD) to the window, WAPE
        over the evaluation origins
    python research/served_variants.py dense-logloss [--models models]
        the dense p_invoke model's minute-1 log-loss on every minute of the
        loop and on every 2nd (the decisions the LightGBM peer reports on)
    python research/served_variants.py prewarm-experts [--models models]
        cold starts at keepalive10's idle (interpolated) with the dense
        p_invoke model everywhere, with every cluster's expert where routed,
        and as the manifest serves them
    python research/served_variants.py prewarm-thresholds [--models models]
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

from mesp_training.contract import read_clusters, read_manifest, whole_invocations
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
from mesp_training.search import SearchConfig
from mesp_training.invocation import pad_history
from mesp_training.invocation_gbm import run_p_invoke
from mesp_training.runtime import inference_session
from mesp_training.soft_routing import forecast_at, runner_weight, served_forecast

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


def counts_gate(models: Path) -> None:
    man, cs, val = validation(models)
    router = Router(cs)
    dense_p = inference_session(str(models / man["dense"]["p_invoke"]["file"]))
    cuts = (0.0, 0.3, 0.4, 0.5, 0.6)
    err = np.zeros((len(cuts), len(val)))
    naive = np.zeros(len(val))
    total = 0.0
    for t in EVAL_ORIGINS:
        y = val[:, t:t + 60]
        f = whole_invocations(served_forecast(models, man, router, val, t))
        p = run_p_invoke(dense_p, np.stack([pad_history(r[:t]) for r in val]))
        for k, cut in enumerate(cuts):
            err[k] += np.abs(np.where(p < cut, 0.0, f) - y).sum(1)
        naive += np.abs(val[:, t - 1:t] - y).sum(1)
        total += np.abs(y).sum()
        log(f"origin {t} done")
    some = naive > 0
    for k, cut in enumerate(cuts):
        print(f"zero where dense p_invoke < {cut}: WAPE {err[k].sum() / total:.4f}, median per-function "
              f"MAE / last value's {np.median(err[k][some] / naive[some]):.4f}")


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


# Soft-routing weights: exp(-(d - d_nearest) / tau) over the two nearest
# clusters (small tau: nearly hard routing), and weights proportional to
# the NCC, 1 - d (None).
SOFT_TAUS = (None, 0.1, 0.03, 0.01)
# Blending costs a second count model's run: at tau 0.1, the blend only
# where the runner-up's weight is at least this (0: wherever both radii
# hold), against the share of windows that then run two different models.
MIN_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3)


def soft_routing(models: Path) -> None:
    """Each validation window answered by the count model its nearest
    cluster serves (hard, as `mesp serve`), or by a blend of the models of
    the two nearest clusters where the window lies within both clusters'
    radii (out-of-distribution windows stay with the dense model)."""
    man, cs, val = validation(models)
    router = Router(cs)
    by_cluster = {e["cluster"]: e if e["serve"] == "expert" else man["dense"] for e in man["experts"]}
    ids = list(router.ids)
    err = {tau: 0.0 for tau in ("hard", *SOFT_TAUS)}
    cut_err = dict.fromkeys(MIN_WEIGHTS, 0.0)
    # per nearest cluster: hard and tau-0.1 soft errors, and |y|
    per = {c: np.zeros(3) for c in ids}
    two_runs = dict.fromkeys(MIN_WEIGHTS, 0)
    den, blended, windows = 0.0, 0, 0
    for t in EVAL_ORIGINS:
        routes = router.route_many(val[:, :t])
        d = routes.distances
        near = np.argsort(d, axis=1)[:, :2]
        rows = np.arange(len(val))
        d1, d2 = d[rows, near[:, 0]], d[rows, near[:, 1]]
        radius = router.thresholds(t)
        both = ~routes.ood & (d2 <= radius[near[:, 1]])
        y = val[:, t:t + 60]
        dense = forecast_at(models, man["dense"], val, t)
        preds = {c: forecast_at(models, e, val, t) if e is not man["dense"] else dense for c, e in by_cluster.items()}
        first = np.stack([preds[ids[j]][r] for r, j in zip(rows, near[:, 0], strict=True)])
        second = np.stack([preds[ids[j]][r] for r, j in zip(rows, near[:, 1], strict=True)])
        hard = np.where(routes.ood[:, None], dense, first)
        err["hard"] += np.abs(hard - y).sum()
        for tau in SOFT_TAUS:
            w2 = (1 - d2) / np.maximum((1 - d1) + (1 - d2), 1e-9) if tau is None else runner_weight(d1, d2, tau)
            soft = (1 - w2)[:, None] * first + w2[:, None] * second
            err[tau] += np.abs(np.where(both[:, None], soft, hard) - y).sum()
            if tau == 0.1:
                for j, c in enumerate(ids):
                    m = ~routes.ood & (near[:, 0] == j)
                    per[c] += [np.abs(hard[m] - y[m]).sum(), np.abs(np.where(both[:, None], soft, hard)[m] - y[m]).sum(),
                               np.abs(y[m]).sum()]
                same = np.array([by_cluster[ids[a]] is by_cluster[ids[b]] for a, b in near])
                for cut in MIN_WEIGHTS:
                    on = both & (w2 >= cut)
                    err_cut = np.where(on[:, None], soft, hard)
                    cut_err[cut] += np.abs(err_cut - y).sum()
                    two_runs[cut] += int((on & ~same).sum())
        den += np.abs(y).sum()
        blended += int(both.sum())
        windows += len(val)
        log(f"origin {t} done")
    print(f"windows blended (within both clusters' radii): {blended} of {windows}")
    for k, v in err.items():
        name = "hard routing" if k == "hard" else ("weights 1 - SBD" if k is None else f"softmax of -SBD/{k}")
        print(f"{name:24}: WAPE {v / den:.4f}")
    for c, (h, soft_err, y_abs) in per.items():
        print(f"nearest cluster {c}: WAPE hard {h / max(y_abs, 1):.4f}, soft (tau 0.1) {soft_err / max(y_abs, 1):.4f}")
    for cut in MIN_WEIGHTS:
        print(f"tau 0.1, runner-up weight >= {cut:<4}: WAPE {cut_err[cut] / den:.4f}, "
              f"two different models run for {two_runs[cut] / windows:.1%} of windows")


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
    dense_file = models / man["dense"]["p_invoke"]["file"]
    p1 = loop_p1(dense_file, val)
    for e in man["experts"]:
        if e["cluster"] in experts and "p_invoke" in e:
            m = routes == e["cluster"]
            rows = m.any(axis=1)
            sub = p1[rows]
            sub[m[rows]] = loop_p1(models / e["p_invoke"]["file"], val[rows], dense_file)[m[rows]]
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
    p.add_argument("check", choices=["counts-blend", "counts-gate", "soft-routing", "dense-logloss", "prewarm-experts",
                                     "prewarm-thresholds"])
    p.add_argument("--models", type=Path, default=ROOT / "models")
    a = p.parse_args()
    checks = {"counts-blend": counts_blend, "counts-gate": counts_gate, "soft-routing": soft_routing, "dense-logloss": dense_logloss,
              "prewarm-experts": prewarm_experts, "prewarm-thresholds": prewarm_thresholds}
    checks[a.check](a.models)


if __name__ == "__main__":
    main()
