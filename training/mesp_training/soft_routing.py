"""Soft routing of the count forecasts, chosen on validation functions.

Where a window lies within the radii of its two nearest clusters and their
served count models differ, the forecast blends them: (1 - w) times the
nearest's plus w times the runner-up's, w = 1 / (1 + exp((d2 - d1) / tau))
for distances d1 <= d2 (Go: manifest.Routing). A blend runs a second count
model, so it applies only where w is at least a minimum weight. Each
(tau, minimum) is scored by WAPE over the evaluation origins on every
validation window as routed (never the test part), against hard routing;
the best is written to the manifest as ``routing`` (absent: hard routing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .contract import INPUT_NAME, read_clusters, read_manifest, write_manifest
from .data import EVAL_ORIGINS
from .routing import Router
from .runtime import inference_session

TAUS = (0.1, 0.03, 0.01)
MIN_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3)
# A setting within this much WAPE of the best, with fewer blended windows
# (each a second model run), is preferred.
WAPE_TOLERANCE = 5e-4


def runner_weight(d1: np.ndarray, d2: np.ndarray, tau: float) -> np.ndarray:
    """The runner-up's weight for distances d1 <= d2 (as Go's Routing.RunnerWeight)."""
    w: np.ndarray = 1 / (1 + np.exp((d2 - d1) / tau))
    return w


@dataclass
class Outcome:
    tau: float | None  # None: hard routing
    min_weight: float
    wape: float
    blended: float  # share of windows that run a second model


def forecast_at(models: Path, entry: dict[str, Any], series: np.ndarray, t: int) -> np.ndarray:
    """A count model's forecasts of minutes t+1..t+60 for every function."""
    out: np.ndarray = inference_session(str(models / entry["file"])).run(
        None, {INPUT_NAME: series[:, t - entry["input_len"]:t].astype(np.float32)})[0]
    return out


@dataclass
class TwoNearest:
    """One origin's windows as routed: the served count forecasts of the
    nearest cluster (hard: dense out of distribution) and of the runner-up,
    their distances, and where a blend may apply (both radii hold and the
    two clusters serve different models)."""

    hard: np.ndarray
    first: np.ndarray
    runner: np.ndarray
    d1: np.ndarray
    d2: np.ndarray
    blendable: np.ndarray

    def blend(self, tau: float, min_weight: float) -> tuple[np.ndarray, np.ndarray]:
        """Soft routing at (tau, min_weight): the forecasts, and which windows blend."""
        w = runner_weight(self.d1, self.d2, tau)
        on = self.blendable & (w >= min_weight)
        soft = (1 - w)[:, None] * self.first + w[:, None] * self.runner
        out: np.ndarray = np.where(on[:, None], soft, self.hard)
        return out, on


def two_nearest(models: Path, man: dict[str, Any], router: Router, series: np.ndarray, t: int) -> TwoNearest:
    ids = list(router.ids)
    served = {e["cluster"]: e if e["serve"] == "expert" else man["dense"] for e in man["experts"]}
    routes = router.route_many(series[:, :t])
    rows = np.arange(len(series))
    d = routes.distances
    near = np.argsort(d, axis=1, kind="stable")[:, :2]
    d1, d2 = d[rows, near[:, 0]], d[rows, near[:, 1]]
    dense = forecast_at(models, man["dense"], series, t)
    preds = {c: dense if e is man["dense"] else forecast_at(models, e, series, t) for c, e in served.items()}
    first = np.stack([preds[ids[j]][r] for r, j in zip(rows, near[:, 0], strict=True)])
    runner = np.stack([preds[ids[j]][r] for r, j in zip(rows, near[:, 1], strict=True)])
    differ = np.array([served[ids[a]] is not served[ids[b]] for a, b in near])
    within = ~routes.ood & (d2 <= router.thresholds(t)[near[:, 1]])
    return TwoNearest(np.where(routes.ood[:, None], dense, first), first, runner, d1, d2, within & differ)


def served_forecast(models: Path, man: dict[str, Any], router: Router, series: np.ndarray, t: int) -> np.ndarray:
    """The routed count forecasts of minutes t+1..t+60 as `mesp serve`
    answers them before the count trees blend in: the nearest cluster's
    served model, blended with the runner-up's as the manifest's
    ``routing`` says."""
    two = two_nearest(models, man, router, series, t)
    soft = man.get("routing")
    return two.hard if soft is None else two.blend(soft["soft_tau"], soft["min_weight"])[0]


def evaluate(models: Path, val: np.ndarray, log: Callable[[str], None] = print) -> list[Outcome]:
    """Hard routing and every (tau, minimum weight) on the validation
    functions val, WAPE over the evaluation origins."""
    man = read_manifest(models)
    if man is None:
        raise ValueError(f"{models}/manifest.json missing")
    router = Router(read_clusters(models / man["clusters"]))
    settings = [(None, 0.0)] + [(tau, cut) for tau in TAUS for cut in MIN_WEIGHTS]
    err = np.zeros(len(settings))
    second = np.zeros(len(settings))
    den, windows = 0.0, 0
    for t in EVAL_ORIGINS:
        two = two_nearest(models, man, router, val, t)
        y = val[:, t:t + 60]
        for k, (tau, cut) in enumerate(settings):
            if tau is None:
                err[k] += np.abs(two.hard - y).sum()
                continue
            pred, on = two.blend(tau, cut)
            err[k] += np.abs(pred - y).sum()
            second[k] += on.sum()
        den += np.abs(y).sum()
        windows += len(val)
        log(f"soft routing: origin {t} done")
    return [Outcome(tau, cut, float(e / den), float(s / windows))
            for (tau, cut), e, s in zip(settings, err, second, strict=True)]


def choose(outcomes: list[Outcome]) -> Outcome:
    """The lowest WAPE, or within WAPE_TOLERANCE of it the setting that
    blends the fewest windows (hard routing blends none)."""
    best = min(o.wape for o in outcomes)
    return min((o for o in outcomes if o.wape <= best + WAPE_TOLERANCE), key=lambda o: (o.blended, o.wape))


def choose_soft_routing(models: Path, val: np.ndarray, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Chooses soft routing on the validation functions val and records it
    in manifest.json (removes ``routing`` when hard routing wins)."""
    outcomes = evaluate(models, val, log)
    for o in outcomes:
        name = "hard routing" if o.tau is None else f"tau {o.tau}, runner-up weight >= {o.min_weight}"
        log(f"soft routing: {name}: validation WAPE {o.wape:.4f}, second model for {o.blended:.1%} of windows")
    pick = choose(outcomes)
    man = read_manifest(models)
    assert man is not None
    hard = outcomes[0]
    if pick.tau is None:
        man.pop("routing", None)
        log("soft routing: hard routing kept")
    else:
        man["routing"] = {"soft_tau": pick.tau, "min_weight": pick.min_weight,
                          "validation": {"wape": round(pick.wape, 6), "hard_wape": round(hard.wape, 6),
                                         "blended_windows": round(pick.blended, 4),
                                         "chosen_on": "validation functions, every window as routed, "
                                                      "WAPE over the evaluation origins"}}
        log(f"soft routing: tau {pick.tau}, runner-up weight >= {pick.min_weight}: WAPE {pick.wape:.4f} "
            f"vs hard {hard.wape:.4f}")
    write_manifest(models, man)
    return man
