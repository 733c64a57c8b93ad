"""One Optuna study (TPE sampler, median pruner) over the four families and
their hyper-parameters, for one cluster or for the dense model.

Every finished trial's weights go to the work folder and its path into the
trial's user attributes, so workers sharing one study through PostgreSQL
(``--storage postgresql://...``) can each run trials and any of them can
export the winner.
"""

from __future__ import annotations

import os
import random
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
import yaml

from . import models
from .fit import Split, fit, make_split, naive_mae
from .models.space import enqueued
from .scaling import Forecaster, core_len, window_len


@dataclass
class SearchConfig:
    families: list[str] = field(default_factory=lambda: ["nbeats", "patchtst", "lstm", "autoformer"])
    input_lens: list[int] = field(default_factory=lambda: [60, 120, 240, 480])
    trials_per_cluster: int = 8
    minutes_per_cluster: float = 4.0
    epochs: int = 6
    batch_size: int = 256
    max_train_windows: int = 20000
    train_stride: int = 20
    val_percent: int = 20
    lr_min: float = 3e-4
    lr_max: float = 3e-3
    seed: int = 1
    # The winning candidate of each study is trained again from its start
    # (scratch, or the final dense model for a fine-tuned expert) for this
    # many epochs with a cosine-decaying learning rate before it is
    # exported: the trials' few epochs choose a candidate, they do not
    # train it out (0: export the winning trial's weights as they are).
    final_epochs: int = 0
    # The training loss divides each window's errors by (its mean level +
    # 1) to this power (scaling.scaled_l1): 1 weighs functions alike, 0 as
    # WAPE does.
    loss_power: float = 1.0
    # Hours of same-phase history every candidate a search draws also sees
    # (scaling.Forecaster's seasonal; 0: the recent window alone). `refit`
    # keeps the manifest's candidates, seasonal input or not.
    seasonal_hours: int = 0
    # No single trial may take more than this share of its study's minutes,
    # so one slow candidate (an LSTM over 480 steps on a CPU) cannot eat the
    # whole budget; it is scored on the epochs it finished.
    trial_share: float = 0.34
    # Upper bound on the input length: the earliest evaluation origin (1080)
    # leaves at most 1080 minutes of history.
    max_input_len: int = 720
    # Overrides of the families' search spaces, e.g. {"patchtst": {"layers":
    # [1, 2], "dropout": {"low": 0.0, "high": 0.2}}} (models/space.py).
    spaces: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None, **overrides: Any) -> SearchConfig:
        values: dict[str, Any] = {}
        if path:
            with open(path) as f:
                values = yaml.safe_load(f) or {}
        values.pop("invoke", None)  # the p_invoke models' section (invocation_train.InvokeConfig)
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown search settings: {sorted(unknown)}")
        cfg = cls(**values)
        for fam in cfg.families:
            if fam not in models.FAMILIES:
                raise ValueError(f"unknown model family {fam!r}; known: {sorted(models.FAMILIES)}")
        bad = [n for n in cfg.input_lens if not 16 <= n <= cfg.max_input_len]
        if bad:
            raise ValueError(f"input_lens {bad} outside 16..{cfg.max_input_len}")
        models.spaces(cfg.spaces)  # refuses an unknown family, hyper-parameter or value
        return cfg


@dataclass
class Candidate:
    family: str
    input_len: int
    params: dict[str, Any]
    lr: float
    init: str = "scratch"  # or "dense": fine-tune from the dense model's weights
    seasonal: int = 0  # hours of same-phase history beside the input_len recent minutes

    @property
    def window_len(self) -> int:
        """The minutes the graph reads (its manifest input_len)."""
        return window_len(self.input_len, self.seasonal)

    def build(self) -> Forecaster:
        core = models.build(self.family, core_len(self.input_len, self.seasonal), self.params)
        return Forecaster(core, self.input_len, self.family, self.seasonal)


@dataclass
class Winner:
    candidate: Candidate
    model: Forecaster
    val_mae: float
    naive_val_mae: float
    trials: list[dict[str, Any]]
    data: dict[str, int] = field(default_factory=dict)


class SplitCache:
    """Windows per input length, built once per study."""

    def __init__(self, fit_series: np.ndarray, val_series: np.ndarray, stride: int) -> None:
        self.fit_series, self.val_series, self.stride = fit_series, val_series, stride
        self._cache: dict[int, Split] = {}

    def get(self, input_len: int) -> Split:
        if input_len not in self._cache:
            self._cache[input_len] = make_split(self.fit_series, self.val_series, input_len, self.stride)
        return self._cache[input_len]


def _candidate(trial: optuna.Trial, cfg: SearchConfig, warm: Winner | None) -> Candidate:
    init = trial.suggest_categorical("init", ["scratch", "dense"]) if warm else "scratch"
    if init == "dense" and warm is not None:
        c = warm.candidate
        lr = trial.suggest_float("finetune_lr", cfg.lr_min / 3, cfg.lr_max / 3, log=True)
        return Candidate(c.family, c.input_len, dict(c.params), lr, "dense", c.seasonal)
    family = trial.suggest_categorical("family", cfg.families)
    input_len = trial.suggest_categorical("input_len", cfg.input_lens)
    params = models.space(family, trial, models.spaces(cfg.spaces)[family])
    lr = trial.suggest_float("lr", cfg.lr_min, cfg.lr_max, log=True)
    return Candidate(family, input_len, params, lr, seasonal=cfg.seasonal_hours)


def champion_trial(champion: Candidate, cfg: SearchConfig, *, expert: bool) -> dict[str, Any] | None:
    """The Optuna parameters that draw the candidate serving today (a
    manifest's entry), or None where this search's settings cannot draw it
    (another family list, input length, space or seasonal input)."""
    if champion.seasonal != cfg.seasonal_hours:
        return None
    if champion.init == "dense":
        inside = cfg.lr_min / 3 <= champion.lr <= cfg.lr_max / 3  # _candidate's fine-tuning range
        return {"init": "dense", "finetune_lr": champion.lr} if expert and inside else None
    if champion.family not in cfg.families or champion.input_len not in cfg.input_lens:
        return None
    params = enqueued(champion.family, models.spaces(cfg.spaces)[champion.family], champion.params)
    if params is None or not cfg.lr_min <= champion.lr <= cfg.lr_max:
        return None
    return {**({"init": "scratch"} if expert else {}), "family": champion.family, "input_len": champion.input_len,
            **params, "lr": champion.lr}


optuna.logging.set_verbosity(optuna.logging.WARNING)

# Identifies this process among workers sharing a study.
WORKER = f"{socket.gethostname()}:{os.getpid()}"


def search(
    name: str,
    splits: SplitCache,
    cfg: SearchConfig,
    *,
    trials: int,
    minutes: float,
    work: Path,
    storage: str | None = None,
    warm: Winner | None = None,
    champion: Candidate | None = None,
    log: Callable[[str], None] = print,
) -> Winner:
    """An Optuna study over the families; champion, the candidate serving
    today, is its first trial where the settings can draw it, so a short
    budget starts from what won before instead of rediscovering it."""
    work.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{work / 'optuna.db'}"
    sampler = optuna.samplers.TPESampler(seed=cfg.seed)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    study = _create_study(name, storage, sampler, pruner)
    if not study.trials:
        # Start from what won before, then from what the reference trials
        # say works: fine-tuning the dense model (experts), then each family
        # once with defaults.
        first = champion_trial(champion, cfg, expert=warm is not None) if champion is not None else None
        if first is not None:
            study.enqueue_trial(first)
        elif champion is not None:
            log(f"{name}: the serving candidate {champion.family} L={champion.input_len} is outside this search")
        if warm is not None and (first is None or first.get("init") != "dense"):
            study.enqueue_trial({"init": "dense"})
        for fam in cfg.families:
            study.enqueue_trial({"init": "scratch", "family": fam} if warm else {"family": fam})
    deadline = time.monotonic() + minutes * 60

    def objective(trial: optuna.Trial) -> float:
        cand = _candidate(trial, cfg, warm)
        model = cand.build()
        if cand.init == "dense" and warm is not None:
            model.load_state_dict(warm.model.state_dict())
        split = splits.get(cand.window_len)
        if len(split.x_train) == 0 or len(split.x_val) == 0:
            raise optuna.TrialPruned(f"no windows for input_len {cand.input_len}")

        def report(epoch: int, val: float) -> bool:
            trial.report(val, epoch)
            return trial.should_prune()

        t0 = time.monotonic()
        trial_deadline = min(deadline, t0 + cfg.trial_share * minutes * 60)
        res = fit(model, split, epochs=cfg.epochs, lr=cand.lr, batch_size=cfg.batch_size,
                  max_windows=cfg.max_train_windows, seed=cfg.seed + trial.number, deadline=trial_deadline,
                  report=report, loss_power=cfg.loss_power)
        path = work / f"{name}-trial-{trial.number}.pt"
        torch.save({"candidate": cand.__dict__, "state": res.state}, path)
        trial.set_user_attr("weights", str(path))
        trial.set_user_attr("candidate", cand.__dict__)
        trial.set_user_attr("seconds", round(time.monotonic() - t0, 1))
        trial.set_user_attr("worker", WORKER)
        log(f"{name}: trial {trial.number} {cand.init}/{cand.family} L={cand.input_len} "
            f"val MAE {res.val_mae:.3f} (best epoch {res.epochs}, {time.monotonic() - t0:.0f}s)")
        if trial.should_prune():
            raise optuna.TrialPruned()
        return res.val_mae

    # The budget is global to the study: several workers sharing it through
    # one storage stop together once `trials` trials have finished.
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    if sum(t.state in finished for t in study.trials) < trials:
        study.optimize(objective, timeout=max(1.0, minutes * 60), catch=(RuntimeError,),
                       callbacks=[optuna.study.MaxTrialsCallback(trials, states=finished)])
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
    if not complete:
        raise RuntimeError(f"{name}: no trial completed (budget too small?)")
    best = min(complete, key=lambda t: float("inf") if t.value is None else t.value)
    cand, model, _ = load_weights(best.user_attrs["weights"])
    history = [
        {"trial": t.number, "state": t.state.name, "value": t.value, **t.user_attrs.get("candidate", {}),
         "seconds": t.user_attrs.get("seconds"), "worker": t.user_attrs.get("worker")}
        for t in study.trials
    ]
    return _winner(cand, model, float(best.value or 0.0), splits, history)


def _winner(cand: Candidate, model: Forecaster, val_mae: float, splits: SplitCache,
            trials: list[dict[str, Any]]) -> Winner:
    """A study's result: the naive forecast's MAE on the same validation
    windows and the size of the data beside the candidate's."""
    split = splits.get(cand.window_len)
    data = {"train_functions": len(splits.fit_series), "val_functions": len(splits.val_series),
            "train_windows": len(split.x_train), "val_windows": len(split.x_val)}
    return Winner(cand, model, val_mae, naive_mae(split.x_val, split.y_val), trials, data)


def final_fit(cand: Candidate, splits: SplitCache, cfg: SearchConfig, *, dense: Forecaster | None = None,
              trials: list[dict[str, Any]] | None = None, log: Callable[[str], None] = print,
              name: str = "") -> Winner:
    """The candidate trained for cfg.final_epochs from its start: fresh
    weights, or dense's for a candidate that fine-tunes the dense model."""
    model = cand.build()
    if cand.init == "dense":
        if dense is None:
            raise ValueError(f"{name}: a fine-tuned candidate needs the dense model")
        model.load_state_dict(dense.state_dict())
    split = splits.get(cand.window_len)
    t0 = time.monotonic()
    res = fit(model, split, epochs=cfg.final_epochs, lr=cand.lr, batch_size=cfg.batch_size,
              max_windows=cfg.max_train_windows, seed=cfg.seed, cosine=True, loss_power=cfg.loss_power)
    log(f"{name}: final fit {cand.init}/{cand.family} L={cand.input_len}, {cfg.final_epochs} epochs: val MAE "
        f"{res.val_mae:.3f} (best epoch {res.epochs}, {time.monotonic() - t0:.0f}s)")
    return _winner(cand, model, res.val_mae, splits, trials or [])


def _create_study(name: str, storage: str, sampler: optuna.samplers.BaseSampler,
                  pruner: optuna.pruners.BasePruner) -> optuna.Study:
    """create_study, retried: workers starting together on a fresh database
    race to create Optuna's schema (one of them gets a unique violation) and
    to create the study; the loser finds both in place on its next try."""
    for attempt in range(5):
        try:
            return optuna.create_study(study_name=name, storage=storage, direction="minimize", sampler=sampler,
                                       pruner=pruner, load_if_exists=True)
        except Exception as e:  # sqlalchemy's IntegrityError / ProgrammingError, optuna's DuplicatedStudyError
            if attempt == 4:
                raise
            print(f"{name}: storage busy ({type(e).__name__}), retrying", file=sys.stderr)
            time.sleep(0.5 + random.random())
    raise AssertionError("unreachable")


def load_weights(path: str | Path) -> tuple[Candidate, Forecaster, dict[str, Any]]:
    """The one loader of saved weights (a trial's, a winner's): the
    candidate, its model with the weights in eval mode, and the whole file."""
    saved: dict[str, Any] = torch.load(path, weights_only=False)
    cand = Candidate(**saved["candidate"])
    model = cand.build()
    model.load_state_dict(saved["state"])
    model.eval()
    return cand, model, saved


def load_winner(path: str | Path) -> Winner:
    cand, model, saved = load_weights(path)
    return Winner(cand, model, saved.get("val_mae", float("nan")), float("nan"), [])


def save_winner(w: Winner, path: str | Path) -> None:
    torch.save({"candidate": w.candidate.__dict__, "state": w.model.state_dict(), "val_mae": w.val_mae}, path)
