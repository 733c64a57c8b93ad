"""The p_invoke features against plain loops on real rows, the padding
contract the Go server relies on, and the trees family's two graph layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import fixture_rows

from mesp_training import invocation_gbm as gbm
from mesp_training.export import OPSET
from mesp_training.invocation import (
    GAP_HORIZONS,
    HOURS,
    MISSING,
    PERIODS,
    SCALES,
    WINDOW,
    InvocationFeatures,
    InvocationModel,
    pad_history,
)
from mesp_training.runtime import inference_session


def reference_features(history: np.ndarray) -> np.ndarray:
    """The same features, one function at a time, with Python loops."""
    t = len(history)
    a = history > 0
    active = [i for i in range(t) if a[i]]
    since = t - 1 - active[-1] if active else t
    prev_gap = active[-1] - active[-2] - 1 if len(active) >= 2 else 0
    gaps = [active[k + 1] - active[k] - 1 for k in range(len(active) - 1)]
    rate = a.sum() / t

    def at_least(j: int) -> int:
        return sum(g >= j for g in gaps)

    g0 = at_least(since)
    head = [np.log1p(since), float(since == 0), np.log1p(prev_gap), float(len(active) >= 2), np.log1p(g0)]
    scales = []
    for w in SCALES:
        win = history[-w:]
        scales += [np.log1p(win.sum() / w), (win > 0).sum() / len(win)]
    gap = []
    for k in GAP_HORIZONS:
        ended = g0 - at_least(since + k)
        gap += [(ended + rate) / (g0 + 1), np.log1p(ended)]
    tail = [np.log1p(history.sum() / max(1, a.sum())), rate, np.log1p(a.sum())]
    last_hour = np.zeros(60)
    num, den = np.zeros(60), np.zeros(60)
    rnum, rden = np.zeros(60), np.zeros(60)
    for p in range(60):
        for k in range(1, HOURS + 1):
            i = t - 60 * k + p  # the same minute of the hour, k hours back
            if i < 0:
                continue
            num[p] += a[i]
            den[p] += 1
            if k <= 4:
                rnum[p] += a[i]
                rden[p] += 1
        last_hour[p] = a[t - 60 + p] if t - 60 + p >= 0 else 0
    profile = num / np.maximum(den, 1)
    recent = rnum / np.maximum(rden, 1)
    # Minutes a whole number of periods before the next minute (index t),
    # within the last day.
    share_all, share_recent, back = [], [], []
    for q in PERIODS:
        same = [t - q * k for k in range(1, WINDOW // q + 1) if t - q * k >= 0]
        share_all.append(sum(a[i] for i in same) / max(1, len(same)))
        share_recent.append(sum(a[i] for i in same[:4]) / max(1, len(same[:4])))
        back.append(float(a[t - q]) if t - q >= 0 else 0.0)
    return np.concatenate([head, scales, gap, tail, last_hour, profile, recent, share_all, share_recent,
                           back]).astype(np.float32)


@pytest.mark.parametrize("t", [1440, 1200, 1080, 300])
def test_features_equal_plain_loops_on_real_rows(t: int) -> None:
    rows = list(fixture_rows().values())[::7]
    feats = InvocationFeatures()
    x = np.stack([pad_history(r[:t]) for r in rows])
    got = feats(torch.from_numpy(x)).numpy()
    assert got.shape == (len(rows), feats.n_features)
    for i, r in enumerate(rows):
        want = reference_features(r[:t].astype(np.float64))
        np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-5, err_msg=f"row {i} at t={t}")


def test_padding_is_not_silence() -> None:
    """A short history padded with MISSING is not a day of zeros: the share
    of invoked minutes counts known minutes only."""
    r = np.zeros(WINDOW, np.float32)
    r[-10:] = 1
    feats = InvocationFeatures()
    short = feats(torch.from_numpy(pad_history(r[-100:])[None])).numpy()[0]
    full = feats(torch.from_numpy(r[None])).numpy()[0]
    rate_index = 5 + 2 * len(SCALES) + 2 * len(GAP_HORIZONS) + 1
    assert short[rate_index] == pytest.approx(10 / 100)
    assert full[rate_index] == pytest.approx(10 / WINDOW)
    assert pad_history(r[-100:])[0] == MISSING


def test_default_threshold_holds_idle_budget_over_resampled_functions() -> None:
    """The default threshold is chosen so that idle minutes stay within
    keepalive10's over resampled functions, not just on the sample: it is
    never looser than the plain rule (fewest cold starts at no more idle on
    the sample itself) and its resampled idle ratio is at most 1."""
    from mesp_training.invocation_train import (
        LOOP_END,
        LOOP_START,
        REFERENCE_KEEPALIVE,
        InvokeConfig,
        choose_threshold,
        cold_idle,
        keepalive_warm,
    )

    series = np.stack(list(fixture_rows().values())).astype(np.float64)
    # p1 of minute m from minutes 1..m-1: the share of the last hour invoked
    active = (series > 0).astype(np.float64)
    c = np.concatenate([np.zeros((len(series), 1)), np.cumsum(active, axis=1)], axis=1)
    minutes = np.arange(LOOP_START, LOOP_END + 1)
    p1 = (c[:, minutes - 1] - c[:, minutes - 61]) / 60 * 0.98 + 0.01
    thresholds = InvokeConfig().thresholds
    got = choose_threshold(p1, series, thresholds)

    invoked = series[:, LOOP_START - 1:LOOP_END] > 0
    _, ka_idle = cold_idle(invoked, keepalive_warm(series, REFERENCE_KEEPALIVE))
    points = [(*cold_idle(invoked, p1 >= th), th) for th in thresholds]
    plain = min(p for p in points if p[1] <= ka_idle)
    assert got["val_idle_ratio_upper"] <= 1
    assert got["val_idle_minutes"] <= ka_idle
    assert got["val_idle_minutes"] <= cold_idle(invoked, p1 >= plain[2])[1]
    assert got["threshold"] > plain[2]  # on these rows the sample alone would overspend


def test_gbm_graphs_share_the_dense_features(tmp_path: Path) -> None:
    """The dense graph answers its features; an expert whose trees continue
    the dense model's takes them (and the dense minute 1) instead of the
    counts, and answers, fed as the server feeds it, what its MLP and its
    LightGBM trees answer in Python."""
    rows = list(fixture_rows().values())
    origins = range(700, 1440, 60)
    x = np.stack([pad_history(r[:t]) for r in rows for t in origins])
    y = np.array([r[t] > 0 for r in rows for t in origins], np.float32)
    model = InvocationModel(hidden=16, layers=1).eval()
    with torch.no_grad():
        f = model.features(torch.from_numpy(x)).numpy()
    dense = gbm.fit_gbm(f, y, f, y, rounds=8)
    expert = gbm.fit_gbm(f, y, f, y, rounds=4, init=dense)
    assert expert.num_trees() > dense.num_trees()
    gbm.export(model, dense, f, tmp_path / "dense-p.onnx", "dense-p", x[:8], OPSET)
    gbm.export(model, expert, f, tmp_path / "expert-p.onnx", "cluster-0-p", x[:8], OPSET, base=dense)
    d = inference_session(str(tmp_path / "dense-p.onnx"))
    e = inference_session(str(tmp_path / "expert-p.onnx"))
    assert [i.name for i in d.get_inputs()] == ["counts"]
    assert [o.name for o in d.get_outputs()] == ["p_invoke", "p_features"]
    assert [i.name for i in e.get_inputs()] == ["p_features", "dense_p1"]
    assert [o.name for o in e.get_outputs()] == ["p_invoke"]
    np.testing.assert_allclose(d.run(["p_features"], {"counts": x})[0], f, rtol=1e-5, atol=1e-5)
    got = gbm.run_p_invoke(e, x, d)
    with torch.no_grad():
        mlp = torch.sigmoid(model.logits_from_features(torch.from_numpy(f))).numpy()
    np.testing.assert_allclose(got[:, 1:], mlp[:, 1:], atol=1e-5)
    np.testing.assert_allclose(got[:, 0], expert.predict(f), atol=1e-5)
    with pytest.raises(ValueError, match="dense graph is needed"):
        gbm.run_p_invoke(e, x)
