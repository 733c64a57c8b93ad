"""`make train-experts`, second half: the ``p_invoke`` models.

One dense model over every cluster's training functions (an Optuna study
over the MLP's size, dropout and learning rate), then per cluster a study
that fine-tunes the dense winner on the cluster's functions. Every
candidate is scored on held-out validation functions the way a platform
uses it: the log-loss of "invoked in minute m" predicted from minutes
1..m-1, for m = 1081..1440. An expert serves only where it beats the dense
model on the validation windows the router sends it (each minute's history
routed as the server routes it, whatever cluster the function's day is in).

The default pre-warm threshold is fixed here, on validation functions only:
the threshold with the fewest cold starts whose idle instance-minutes are
no more than a fixed 10-minute keep-alive's on the same functions. With
calibrated probabilities one threshold for every minute is the optimal rule
for a budget of idle minutes (each warm minute costs 1 - p idle and saves p
cold starts), so the threshold is global; the manifest records it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import optuna
import torch
import yaml

from . import invocation_gbm as gbm
from .contract import (
    HORIZON,
    MISSING,
    P_INVOKE_OUTPUT_NAME,
    read_cluster_parquet,
    read_clusters,
    read_manifest,
    sha256_file,
    write_manifest,
)
from .export import OPSET
from .invocation import FAMILY, WINDOW, InvocationFeatures, InvocationModel
from .routing import Router
from .runtime import inference_session

# Minutes of the platform's loop (EVALUATION.md §2): the decision for minute
# m is made from minutes 1..m-1.
LOOP_START, LOOP_END = 1081, 1440
# Horizon 1 drives the minutely decision; the other 59 minutes are served too.
H1_WEIGHT = 20.0
# The keep-alive window the default threshold must not exceed in idle memory.
REFERENCE_KEEPALIVE = 10
# The dense p_invoke model's id: what an expert's entry names as its "base".
DENSE_P_ID = "dense-p"


@dataclass
class InvokeConfig:
    dense_trials: int = 12
    dense_minutes: float = 8.0
    expert_trials: int = 3
    expert_minutes: float = 1.0
    epochs: int = 6
    batch_size: int = 1024
    # Training origins: every `stride`-th minute, and every `late_stride`-th
    # in the last six hours, where the evaluation's loop runs. Every late
    # minute (rather than every 4th, with every 8th earlier) cut validation
    # cold starts at keepalive10's idle by 10% (research/invoke_variants.py).
    stride: int = 4
    late_stride: int = 1
    min_history: int = 60
    # Validation decisions per function (all 360 when 1).
    val_stride: int = 1
    seed: int = 1
    # Trees for the next minute (0: MLP only): the dense model's boosting
    # rounds (early-stopped on validation functions), and the rounds a
    # cluster adds to them. 600 stopped the dense trees while validation
    # log-loss still fell; early stopping ends them near 1,500.
    gbm_rounds: int = 3000
    gbm_expert_rounds: int = 150
    thresholds: list[float] = field(default_factory=lambda: [round(x, 4) for x in np.geomspace(0.005, 0.9, 60)])

    @classmethod
    def load(cls, path: str | Path | None, **overrides: Any) -> InvokeConfig:
        values: dict[str, Any] = {}
        if path:
            with open(path) as f:
                values = (yaml.safe_load(f) or {}).get("invoke", {}) or {}
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown invoke settings: {sorted(unknown)}")
        return cls(**values)


@dataclass
class Samples:
    """Features of (function, origin t) pairs, targets a[t+1..t+60] and their
    mask (minutes past the day's end are not targets)."""

    x: np.ndarray  # [n, features] float32
    y: np.ndarray  # [n, 60] float32 in {0, 1}
    mask: np.ndarray  # [n, 60] float32 in {0, 1}
    function: np.ndarray  # [n] row index of the function
    origin: np.ndarray  # [n] t



def histories(series: np.ndarray, rows: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """The model inputs for (row, t): minutes 1..t of the row, left-padded to
    WINDOW with MISSING (the serving contract)."""
    m = series.shape[1]
    padded = np.concatenate([np.full((series.shape[0], WINDOW), MISSING, np.float32), series.astype(np.float32)], 1)
    # padded column WINDOW + k holds minute k + 1: minutes t-WINDOW+1..t
    # start at column t.
    cols = origins[:, None] + np.arange(WINDOW)[None, :]
    assert (origins <= m).all()
    out: np.ndarray = padded[rows[:, None], cols]
    return out


@torch.no_grad()
def featurize(series: np.ndarray, rows: np.ndarray, origins: np.ndarray, chunk: int = 8192,
              progress: Callable[[str], None] | None = None) -> Samples:
    feats = InvocationFeatures()
    xs = []
    for i in range(0, len(rows), chunk):
        h = histories(series, rows[i:i + chunk], origins[i:i + chunk])
        xs.append(feats(torch.from_numpy(h)).numpy())
        if progress and (i // chunk) % 20 == 0:
            progress(f"features {i + len(h)}/{len(rows)}")
    x = np.concatenate(xs) if xs else np.zeros((0, feats.n_features), np.float32)
    m = series.shape[1]
    tgt = origins[:, None] + np.arange(HORIZON)[None, :]  # 0-based index of minute t+h
    mask = (tgt < m).astype(np.float32)
    y = (series[rows[:, None], np.minimum(tgt, m - 1)] > 0).astype(np.float32) * mask
    return Samples(x, y, mask, rows, origins)


def train_samples(series: np.ndarray, cfg: InvokeConfig, seed: int, **kw: Any) -> Samples:
    rng = np.random.default_rng(seed)
    n, m = series.shape
    rows, origins = [], []
    for r in range(n):
        early = np.arange(cfg.min_history + rng.integers(cfg.stride), LOOP_START - 1, cfg.stride)
        late = np.arange(LOOP_START - 1 + rng.integers(cfg.late_stride), m, cfg.late_stride)
        t = np.concatenate([early, late])
        rows.append(np.full(len(t), r))
        origins.append(t)
    if not rows:
        return featurize(series, np.zeros(0, int), np.zeros(0, int))
    return featurize(series, np.concatenate(rows), np.concatenate(origins), **kw)


def loop_samples(series: np.ndarray, stride: int = 1, **kw: Any) -> Samples:
    """The platform's loop: the decision for minute m from minutes 1..m-1."""
    t = np.arange(LOOP_START - 1, LOOP_END, stride)
    n = series.shape[0]
    return featurize(series, np.repeat(np.arange(n), len(t)), np.tile(t, n), **kw)


def h1_logloss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()) if len(y) else float("nan")


@torch.no_grad()
def predict_features(model: InvocationModel, x: np.ndarray, batch: int = 65536) -> np.ndarray:
    model.eval()
    out = [torch.sigmoid(model.logits_from_features(torch.from_numpy(x[i:i + batch]))).numpy()
           for i in range(0, len(x), batch)]
    return np.concatenate(out) if out else np.zeros((0, HORIZON), np.float32)


def set_standardisation(model: InvocationModel, x: np.ndarray) -> None:
    model.mu.copy_(torch.from_numpy(x.mean(0)))
    model.sd.copy_(torch.from_numpy(np.maximum(x.std(0), 1e-3)))


def fit(model: InvocationModel, train: Samples, val: Samples, *, epochs: int, lr: float, batch_size: int,
        seed: int, deadline: float | None = None, report: Callable[[int, float], bool] | None = None) -> float:
    """AdamW on horizon-weighted binary cross-entropy; keeps the epoch with the
    lowest validation log-loss at horizon 1."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    w = torch.ones(HORIZON)
    w[0] = H1_WEIGHT
    x, y, mk = (torch.from_numpy(a) for a in (train.x, train.y, train.mask))
    bce = torch.nn.BCEWithLogitsLoss(reduction="none")

    def score() -> float:
        return h1_logloss(predict_features(model, val.x)[:, 0], val.y[:, 0])

    best, best_state = score(), {k: v.clone() for k, v in model.state_dict().items()}
    for epoch in range(1, epochs + 1):
        model.train()
        idx = torch.from_numpy(rng.permutation(len(x)))
        for i in range(0, len(idx), batch_size):
            b = idx[i:i + batch_size]
            loss = (bce(model.logits_from_features(x[b]), y[b]) * mk[b] * w).sum() / (mk[b] * w).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if deadline is not None and time.monotonic() > deadline:
                break
        val_loss = score()
        if val_loss < best:
            best, best_state = val_loss, {k: v.clone() for k, v in model.state_dict().items()}
        if (report and report(epoch, val_loss)) or (deadline is not None and time.monotonic() > deadline):
            break
    model.load_state_dict(best_state)
    return best


@dataclass
class Winner:
    model: InvocationModel
    val_logloss: float
    params: dict[str, Any]
    trials: list[dict[str, Any]]


def search(name: str, train: Samples, val: Samples, cfg: InvokeConfig, *, trials: int, minutes: float,
           warm: InvocationModel | None, log: Callable[[str], None]) -> Winner:
    """An in-memory Optuna study (a trial is seconds: no storage needed)."""
    sampler = optuna.samplers.TPESampler(seed=cfg.seed)
    study = optuna.create_study(direction="minimize", sampler=sampler,
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1))
    if warm is None:
        study.enqueue_trial({"hidden": 128, "layers": 2, "dropout": 0.1, "lr": 1e-3})
    else:
        study.enqueue_trial({"lr": 3e-4})
    deadline = time.monotonic() + minutes * 60
    kept: dict[int, tuple[InvocationModel, dict[str, Any]]] = {}

    def objective(trial: optuna.Trial) -> float:
        if warm is None:
            params = {"hidden": trial.suggest_categorical("hidden", [64, 128, 256]),
                      "layers": trial.suggest_int("layers", 1, 3),
                      "dropout": trial.suggest_float("dropout", 0.0, 0.3)}
            lr = trial.suggest_float("lr", 3e-4, 3e-3, log=True)
            model = InvocationModel(hidden=int(params["hidden"]), layers=int(params["layers"]),
                                    dropout=float(params["dropout"]))
            set_standardisation(model, train.x)
        else:
            lr = trial.suggest_float("lr", 3e-5, 1e-3, log=True)
            model = InvocationModel(**warm.params)
            model.load_state_dict(warm.state_dict())
            params = dict(warm.params)
        t0 = time.monotonic()

        def report(epoch: int, v: float) -> bool:
            trial.report(v, epoch)
            return trial.should_prune()

        val_loss = fit(model, train, val, epochs=cfg.epochs, lr=lr, batch_size=cfg.batch_size,
                       seed=cfg.seed + trial.number, deadline=deadline, report=report)
        kept[trial.number] = (model, {**params, "lr": lr, "init": "dense" if warm is not None else "scratch"})
        log(f"{name}: trial {trial.number} {kept[trial.number][1]} val log-loss(h=1) {val_loss:.5f} "
            f"({time.monotonic() - t0:.0f}s)")
        return val_loss

    study.optimize(objective, n_trials=trials, timeout=max(1.0, minutes * 60))
    done = {t.number: t.value for t in study.trials
            if t.state == optuna.trial.TrialState.COMPLETE and t.number in kept and t.value is not None}
    if not done:
        raise RuntimeError(f"{name}: no trial completed")
    number = min(done, key=lambda n: done[n])
    model, params = kept[number]
    history = [{"trial": t.number, "state": t.state.name, "value": t.value, **t.params} for t in study.trials]
    return Winner(model.eval(), done[number], params, history)


# ---- provisioning on validation functions (the threshold) -------------------

def keepalive_warm(series: np.ndarray, window: int) -> np.ndarray:
    """[n, 360] warm flags of a fixed keep-alive (provision.KeepAlive in Go)."""
    n, m = series.shape
    a = series > 0
    warm = np.zeros((n, LOOP_END - LOOP_START + 1), bool)
    last = np.full(n, -(10**9))
    for minute in range(1, LOOP_END + 1):
        if minute >= LOOP_START:
            warm[:, minute - LOOP_START] = minute - last <= window
        last = np.where(a[:, minute - 1], minute, last)
    return warm


def cold_idle(invoked: np.ndarray, warm: np.ndarray) -> tuple[int, int]:
    return int((invoked & ~warm).sum()), int((~invoked & warm).sum())


def cold_at_budget(p1: np.ndarray, series: np.ndarray) -> dict[str, float]:
    """Cold starts at keepalive10's idle minutes, interpolated on the curve."""
    invoked = series[:, LOOP_START - 1:LOOP_END] > 0
    ka_cold, ka_idle = cold_idle(invoked, keepalive_warm(series, REFERENCE_KEEPALIVE))
    pts = sorted(cold_idle(invoked, p1 >= th)[::-1] for th in np.geomspace(0.001, 0.9, 240))  # (idle, cold)
    idle = np.array([p[0] for p in pts], float)
    cold = np.array([p[1] for p in pts], float)
    return {"cold_at_ka10_idle": float(np.interp(ka_idle, idle, cold)), "keepalive10_cold": ka_cold,
            "keepalive10_idle": ka_idle}


# The default threshold must hold idle memory within keepalive10's on the
# functions a platform will run, not only on the validation sample: a
# threshold qualifies when its idle minutes over keepalive10's stay at or
# below 1 in IDLE_CONFIDENCE of bootstrap resamples of the validation
# functions.
IDLE_CONFIDENCE = 0.95
BOOTSTRAP = 2000


def choose_threshold(p1: np.ndarray, series: np.ndarray, thresholds: list[float], seed: int = 0) -> dict[str, Any]:
    """p1 [n, 360]: p_invoke of minute m made at m-1. The threshold with the
    fewest cold starts whose idle minutes stay within keepalive10's with
    IDLE_CONFIDENCE over resampled functions."""
    invoked = series[:, LOOP_START - 1:LOOP_END] > 0
    ka_warm = keepalive_warm(series, REFERENCE_KEEPALIVE)
    ka_cold, ka_idle = cold_idle(invoked, ka_warm)
    n = len(series)
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=BOOTSTRAP).astype(float)
    ka_resampled = np.maximum(weights @ (~invoked & ka_warm).sum(axis=1), 1)
    curve = []
    for th in thresholds:
        warm = p1 >= th
        cold, idle = cold_idle(invoked, warm)
        ratio = weights @ (~invoked & warm).sum(axis=1) / ka_resampled
        curve.append({"threshold": th, "cold_starts": cold, "idle_minutes": idle,
                      "idle_ratio_upper": float(np.quantile(ratio, IDLE_CONFIDENCE))})
    ok = [c for c in curve if c["idle_ratio_upper"] <= 1] or [max(curve, key=lambda c: c["threshold"])]
    best = min(ok, key=lambda c: (c["cold_starts"], c["idle_minutes"]))
    return {"threshold": best["threshold"], "val_cold_starts": best["cold_starts"],
            "val_idle_minutes": best["idle_minutes"], "val_keepalive10_cold_starts": ka_cold,
            "val_keepalive10_idle_minutes": ka_idle, "val_invoked_minutes": int(invoked.sum()),
            "val_idle_ratio_upper": round(best["idle_ratio_upper"], 4),
            "chosen_on": f"validation functions of the training part: fewest cold starts with idle "
                         f"instance-minutes at most keepalive10's in {IDLE_CONFIDENCE:.0%} of {BOOTSTRAP} "
                         f"bootstrap resamples of the functions"}


def loop_routes(router: Router, series: np.ndarray) -> np.ndarray:
    """[n, 360]: the cluster whose expert the server may use for minute m's
    decision (the history 1..m-1 routed as `mesp serve` routes it), -1 where
    the window is out of distribution and the dense model answers."""
    out = np.empty((len(series), LOOP_END - LOOP_START + 1), int)
    for k, t in enumerate(range(LOOP_START - 1, LOOP_END)):
        out[:, k] = router.route_many(series[:, :t]).served_cluster()
    return out


# An expert needs this many routed validation decisions before it may serve:
# fewer say too little about whether it beats the dense model there.
MIN_ROUTED_DECISIONS = 360


def operating_cost(p1: np.ndarray, invoked: np.ndarray, threshold: float) -> float:
    """Cold starts plus idle minutes priced at the threshold's rate, for the
    decisions given. Warming at probability p costs 1 - p idle and saves p
    cold starts, so a threshold t prices an idle minute at t / (1 - t) cold
    starts; a model that lowers this sum on a cluster's decisions lowers the
    whole policy's cold starts at its idle budget."""
    warm = p1 >= threshold
    return float((invoked & ~warm).sum() + threshold / (1 - threshold) * (~invoked & warm).sum())


def choose_prewarm(models: Path, manifest: dict[str, Any], data: dict[int, tuple[np.ndarray, np.ndarray]],
                   cfg: InvokeConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Where each p_invoke expert serves, and the default threshold, chosen
    on every validation function answered as the server answers it.

    Each minute's history is routed, so a cluster's expert is judged on the
    windows the router sends it, whichever cluster the function's whole day
    belongs to. An expert serves only where it beats the dense model on
    those decisions both in log-loss and in operating_cost at the threshold
    the dense model alone would get (log-loss alone favoured every expert,
    yet all experts together had no fewer cold starts at keepalive10's idle
    than the dense model). The threshold is then chosen for the mixture.
    Sets each expert's ``serve``."""
    val = np.concatenate([data[c][1] for c in sorted(data) if len(data[c][1])])
    invoked = val[:, LOOP_START - 1:LOOP_END] > 0
    t0 = time.monotonic()
    routes = loop_routes(Router(read_clusters(models / manifest["clusters"])), val)
    log(f"p_invoke: {routes.size} validation decisions routed ({time.monotonic() - t0:.0f}s), "
        f"{(routes < 0).mean():.1%} out of distribution")
    dense_file = models / manifest["dense"]["p_invoke"]["file"]
    served = loop_p1(dense_file, val)
    dense_threshold = choose_threshold(served, val, cfg.thresholds)["threshold"]
    for e in manifest["experts"]:
        entry = e.get("p_invoke")
        if entry is None:
            continue
        routed = routes == e["cluster"]
        rows = routed.any(axis=1)
        n = int(routed.sum())
        got = {"decisions": n, "functions": int(rows.sum()), "at_threshold": dense_threshold}
        serve = "dense"
        if n:
            p1 = np.zeros_like(served)
            p1[rows] = loop_p1(models / entry["file"], val[rows], dense_file)
            y, expert, dense = invoked[routed], p1[routed], served[routed]
            got |= {"logloss": round(h1_logloss(expert, y), 6), "dense_logloss": round(h1_logloss(dense, y), 6),
                    "cost": round(operating_cost(expert, y, dense_threshold), 2),
                    "dense_cost": round(operating_cost(dense, y, dense_threshold), 2)}
            if n >= MIN_ROUTED_DECISIONS and got["logloss"] < got["dense_logloss"] and got["cost"] < got["dense_cost"]:
                serve = "expert"
                served[routed] = expert
            log(f"p_invoke cluster {e['cluster']}: {n} routed validation decisions from {got['functions']} "
                f"functions, log-loss(h=1) {got['logloss']:.5f} vs dense {got['dense_logloss']:.5f}, cost at "
                f"threshold {dense_threshold} {got['cost']:.1f} vs dense {got['dense_cost']:.1f} -> serve {serve}")
        entry["routed_val"], entry["serve"] = got, serve
    return choose_threshold(served, val, cfg.thresholds)


def rechoose_threshold(models: Path, cfg: InvokeConfig, load_cluster: ClusterLoader,
                       log: Callable[[str], None] = print) -> dict[str, Any]:
    """Chooses the default threshold again for the served p_invoke models
    (after a change of the rule), without training anything."""
    models = Path(models)
    manifest = read_manifest(models)
    if manifest is None or "p_invoke" not in manifest.get("dense", {}):
        raise ValueError(f"{models}/manifest.json has no p_invoke models: run train-invoke")
    cs = read_clusters(models / manifest["clusters"])
    data = {cl["id"]: load_cluster(cl) for cl in cs["clusters"]}
    manifest["prewarm"] = choose_prewarm(models, manifest, data, cfg, log)
    write_manifest(models, manifest)
    _log_prewarm(manifest["prewarm"], log)
    return manifest


def _log_prewarm(prewarm: dict[str, Any], log: Callable[[str], None]) -> None:
    log(f"p_invoke: default threshold {prewarm['threshold']} (validation: {prewarm['val_cold_starts']} cold starts, "
        f"{prewarm['val_idle_minutes']} idle vs keepalive10 {prewarm['val_keepalive10_cold_starts']}, "
        f"{prewarm['val_keepalive10_idle_minutes']}; idle ratio {prewarm['val_idle_ratio_upper']} at "
        f"{IDLE_CONFIDENCE:.0%} confidence)")


# ---- export -----------------------------------------------------------------


def export(model: InvocationModel, path: Path, model_id: str, probe: np.ndarray) -> None:
    """ONNX with the contract's names and metadata, checked against torch."""
    import os
    import tempfile
    import warnings

    import onnx

    from .contract import INPUT_NAME
    from .export import ExportMismatch, stamp

    model = model.eval()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".onnx")
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = torch.from_numpy(probe)
            torch.onnx.export(model, (x,), tmp, input_names=[INPUT_NAME], output_names=[P_INVOKE_OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, P_INVOKE_OUTPUT_NAME: {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
            want = model(x).numpy()
        graph = stamp(onnx.load(tmp), model_id, WINDOW, FAMILY)
        onnx.save(graph, tmp)
        sess = inference_session(tmp)
        got = sess.run([P_INVOKE_OUTPUT_NAME], {INPUT_NAME: probe})[0]
        if got.shape != (len(probe), HORIZON) or not np.allclose(got, want, atol=1e-5):
            raise ExportMismatch(f"{model_id}: ONNX p_invoke differs from torch by up to {np.abs(got - want).max()}")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a model file is not
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def set_histories(models: Path, manifest: dict[str, Any]) -> np.ndarray:
    """Many real histories of several lengths (padded ones among them) of a
    set's own functions: what a graph rewritten without retraining must
    answer as before."""
    cs = read_clusters(models / manifest["clusters"])
    series = np.concatenate([read_cluster_parquet(models / cl["parquet"])[1] for cl in cs["clusters"]])
    return np.concatenate([probe_rows(series, 64, seed) for seed in range(4)])


def probe_rows(series: np.ndarray, n: int = 8, seed: int = 0) -> np.ndarray:
    """Real histories of several lengths (some padded) for the parity check."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(series), n)
    origins = rng.integers(120, series.shape[1] + 1, n)
    origins[0] = series.shape[1]
    out = histories(series, rows, origins)
    return np.concatenate([out, np.full((1, WINDOW), MISSING, np.float32), np.zeros((1, WINDOW), np.float32)])


def save_model(w: Winner, path: Path) -> None:
    torch.save({"params": w.model.params, "state": w.model.state_dict(), "val_logloss": w.val_logloss}, path)


def load_model(path: Path) -> InvocationModel:
    saved = torch.load(path, weights_only=False)
    model = InvocationModel(**saved["params"])
    model.load_state_dict(saved["state"])
    return model.eval()


def _export_best(model_id: str, file: str, models: Path, w: Winner, trees: lgb.Booster | None, val: Samples,
                 probe: np.ndarray, log: Callable[[str], None], base: lgb.Booster | None = None) -> dict[str, Any]:
    """Exports the better family on validation (horizon-1 log-loss): the MLP
    alone, or the MLP with trees for the next minute; returns its entry.
    base is the dense model's trees when trees continue them: the graph
    then holds only the added trees (entry "base": the dense model's id)."""
    family, val_logloss, params = FAMILY, w.val_logloss, dict(w.params)
    if trees is not None:
        tree_val = h1_logloss(gbm.predict_h1(trees, val.x), val.y[:, 0])
        log(f"{model_id}: MLP {w.val_logloss:.5f}, with trees {tree_val:.5f} ({trees.num_trees()} trees)")
        if tree_val < w.val_logloss:
            family, val_logloss = gbm.FAMILY, tree_val
            params.update({"trees": trees.num_trees(), "mlp_val_logloss": w.val_logloss, **gbm.PARAMS})
    entry: dict[str, Any] = {}
    if family == gbm.FAMILY and trees is not None:
        gbm.export(w.model, trees, val.x, models / file, model_id, probe, OPSET, base)
        if base is not None:
            entry["base"] = DENSE_P_ID
    else:
        export(w.model, models / file, model_id, probe)
    return {"id": model_id, "file": file, "sha256": sha256_file(models / file), "family": family,
            "input_len": WINDOW, "val_logloss": val_logloss, "params": params, **entry}


ClusterLoader = Callable[[dict[str, Any]], tuple[np.ndarray, np.ndarray]]


def train_invoke(models: Path, cfg: InvokeConfig, load_cluster: ClusterLoader,
                 *, clusters: list[int] | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Trains and exports the p_invoke models and records them in manifest.json
    (which the count models' training wrote first)."""
    models = Path(models)
    manifest = read_manifest(models)
    if manifest is None:
        raise ValueError(f"{models}/manifest.json missing: train the count models first")
    pinned, now = manifest.get("clusters_sha256"), sha256_file(models / manifest["clusters"])
    if pinned and pinned != now:
        raise ValueError(f"{manifest['clusters']} changed since the count models were trained (sha256 {now}, "
                         f"manifest pins {pinned}): train them again first")
    manifest["clusters_sha256"] = now
    cs = read_clusters(models / manifest["clusters"])
    by_id = {cl["id"]: cl for cl in cs["clusters"]}
    selected = sorted(by_id) if clusters is None else clusters
    data = {cid: load_cluster(by_id[cid]) for cid in sorted(by_id)}
    seed = cfg.seed
    feats: dict[int, tuple[Samples, Samples]] = {}
    for cid in sorted(by_id):
        if clusters is not None and cid not in selected:
            continue
        fit_c, val_c = data[cid]
        tr = train_samples(fit_c, cfg, seed + cid)
        va = loop_samples(val_c, cfg.val_stride)
        feats[cid] = (tr, va)
        log(f"p_invoke cluster {cid}: {len(tr.x)} training and {len(va.x)} validation decisions")

    dense_pt, dense_gbm_file = models / "dense-p.pt", models / "dense-p.lgb"
    if clusters is None or not dense_pt.exists() or "p_invoke" not in manifest["dense"]:
        tr_all = _concat([feats[c][0] for c in sorted(feats)])
        va_all = _concat([feats[c][1] for c in sorted(feats)])
        log(f"p_invoke dense: {len(tr_all.x)} training, {len(va_all.x)} validation decisions, "
            f"{cfg.dense_trials} trials, {cfg.dense_minutes} min")
        dense = search("p_invoke dense", tr_all, va_all, cfg, trials=cfg.dense_trials, minutes=cfg.dense_minutes,
                       warm=None, log=log)
        save_model(dense, dense_pt)
        dense_gbm = None
        if cfg.gbm_rounds > 0:
            t0 = time.monotonic()
            dense_gbm = gbm.fit_gbm(tr_all.x, tr_all.y[:, 0], va_all.x, va_all.y[:, 0], rounds=cfg.gbm_rounds)
            dense_gbm.save_model(str(dense_gbm_file))
            log(f"p_invoke dense: {dense_gbm.num_trees()} trees, val log-loss(h=1) "
                f"{h1_logloss(gbm.predict_h1(dense_gbm, va_all.x), va_all.y[:, 0]):.5f} ({time.monotonic() - t0:.0f}s)")
        all_fit = np.concatenate([d[0] for d in data.values()])
        manifest["dense"]["p_invoke"] = _export_best(DENSE_P_ID, "dense-p.onnx", models, dense, dense_gbm, va_all,
                                                     probe_rows(all_fit), log)
        manifest["dense"]["p_invoke"]["data"] = {"train_decisions": len(tr_all.x), "val_decisions": len(va_all.x)}
    dense_model = load_model(dense_pt)
    dense_family = manifest["dense"]["p_invoke"]["family"]
    dense_gbm = lgb.Booster(model_file=str(dense_gbm_file)) if dense_gbm_file.exists() else None

    def dense_h1(x: np.ndarray) -> np.ndarray:
        if dense_family == gbm.FAMILY and dense_gbm is not None:
            return gbm.predict_h1(dense_gbm, x)
        return predict_features(dense_model, x)[:, 0]

    experts = {e["cluster"]: e for e in manifest["experts"]}
    for cid in selected:
        tr, va = feats[cid]
        dense_val = h1_logloss(dense_h1(va.x), va.y[:, 0])
        w = search(f"p_invoke cluster {cid}", tr, va, cfg, trials=cfg.expert_trials, minutes=cfg.expert_minutes,
                   warm=dense_model, log=log)
        trees = None
        if dense_gbm is not None and cfg.gbm_expert_rounds > 0:
            trees = gbm.fit_gbm(tr.x, tr.y[:, 0], va.x, va.y[:, 0], rounds=cfg.gbm_expert_rounds, init=dense_gbm)
        rows = data[cid][0] if len(data[cid][0]) else data[cid][1]
        entry = _export_best(f"cluster-{cid}-p", f"expert-{cid}-p.onnx", models, w, trees, va, probe_rows(rows), log,
                             base=dense_gbm if dense_family == gbm.FAMILY else None)
        entry["data"] = {"train_decisions": len(tr.x), "val_decisions": len(va.x)}
        # Where it serves is decided afterwards, on windows as routed
        # (choose_prewarm); these are the figures on the cluster's members.
        entry.update({"dense_val_logloss": dense_val, "serve": "dense"})
        if cid not in experts:
            raise ValueError(f"cluster {cid} has no count expert in manifest.json: train it first")
        experts[cid]["p_invoke"] = entry
        log(f"p_invoke cluster {cid}: {entry['family']} val log-loss(h=1) {entry['val_logloss']:.5f} "
            f"vs dense {dense_val:.5f} on the cluster's members")

    manifest["experts"] = [experts[c] for c in sorted(experts)]
    manifest["prewarm"] = choose_prewarm(models, manifest, data, cfg, log)
    write_manifest(models, manifest)
    _log_prewarm(manifest["prewarm"], log)
    return manifest


def loop_p1(onnx_file: Path, series: np.ndarray, dense_file: Path | None = None, chunk: int = 4096) -> np.ndarray:
    """[n, 360]: the exported model's p_invoke of minute m from minutes 1..m-1.
    An expert graph that continues the dense trees is fed the dense graph
    (dense_file) on the same histories, as the server feeds it."""
    sess = inference_session(str(onnx_file))
    dense = inference_session(str(dense_file)) if dense_file is not None else None
    t = np.arange(LOOP_START - 1, LOOP_END)
    rows, origins = np.repeat(np.arange(len(series)), len(t)), np.tile(t, len(series))
    out = [gbm.run_p_invoke(sess, histories(series, rows[i:i + chunk], origins[i:i + chunk]), dense)[:, 0]
           for i in range(0, len(rows), chunk)]
    p1: np.ndarray = np.concatenate(out).reshape(len(series), len(t))
    return p1


def _concat(parts: list[Samples]) -> Samples:
    return Samples(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("x", "y", "mask", "function", "origin")))

