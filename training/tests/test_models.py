from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from mesp_training import models
from mesp_training.contract import HORIZON, INPUT_NAME, META_INPUT_LEN, META_MODEL_ID, OUTPUT_NAME
from mesp_training.export import export
from mesp_training.fit import fit, make_split
from mesp_training.scaling import Forecaster


@pytest.mark.parametrize("family", sorted(models.FAMILIES))
def test_each_family_starts_naive_learns_and_exports(family: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    length = 120
    # A periodic signal that naive cannot forecast well.
    t = np.arange(1440)
    series = (20 + 15 * np.sin(2 * np.pi * t / 30)[None, :] + rng.poisson(2, (24, 1440))).astype(np.float32)
    model = Forecaster(models.build(family, length, {}), length, family)
    x = torch.from_numpy(series[:3, :length])
    # Zero-initialised output: the untrained model is the naive forecast.
    np.testing.assert_allclose(model.eval()(x).detach().numpy(), np.repeat(series[:3, length - 1:length], 60, 1),
                               rtol=1e-4)
    split = make_split(series[:18], series[18:], length, stride=15)
    res = fit(model, split, epochs=3, lr=3e-3, batch_size=64, max_windows=2000, seed=0)
    naive = float(np.abs(split.x_val[:, -1:] - split.y_val).mean())
    assert res.val_mae < naive, f"{family}: val MAE {res.val_mae} not below naive {naive}"

    path = tmp_path / f"{family}.onnx"
    export(model, path, f"test-{family}")
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert meta[META_MODEL_ID] == f"test-{family}" and meta[META_INPUT_LEN] == str(length)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    assert inp.name == INPUT_NAME and inp.shape[1] == length and isinstance(inp.shape[0], str)
    for batch in (1, 7):
        xb = series[:batch, 500:500 + length]
        got = sess.run([OUTPUT_NAME], {INPUT_NAME: xb})[0]
        want = model.eval()(torch.from_numpy(xb)).detach().numpy()
        assert got.shape == (batch, HORIZON)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
        assert (got >= 0).all()


class _Recorder(torch.nn.Module):
    """A core that keeps what it was given and answers no change."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = torch.zeros(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x
        return torch.zeros(x.shape[0], HORIZON)


def test_seasonal_input_is_the_same_minutes_of_earlier_hours(tmp_path: Path) -> None:
    """The core sees the recent minutes, then for each minute t+h of the
    hour ahead the mean log1p count of minutes t+h-60k, k = 1..hours, all
    in the recent window's scale; the graph reads 60 * hours minutes, and
    the exported graph answers as torch does."""
    rng = np.random.default_rng(3)
    hours, recent = 4, 120
    x = rng.poisson(rng.uniform(0, 40, (5, 1)), (5, 60 * hours)).astype(np.float32)
    core = _Recorder()
    model = Forecaster(core, recent, "test", seasonal=hours).eval()
    assert model.input_len == 60 * hours
    y = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, np.repeat(x[:, -1:], HORIZON, 1), rtol=1e-5)  # the core answered 0
    z = np.log1p(x.astype(np.float64))
    anchor, scale = z[:, -1:], np.sqrt(z[:, -recent:].var(axis=1, keepdims=True) + 1e-2)
    seen = core.seen.numpy() * scale + anchor
    assert seen.shape == (5, recent + HORIZON)
    np.testing.assert_allclose(seen[:, :recent], z[:, -recent:], atol=1e-4)
    t = x.shape[1]  # the window's last minute is minute t (index t - 1)
    for h in (1, 17, 60):
        want = np.mean([z[:, t - 1 + h - 60 * k] for k in range(1, hours + 1)], axis=0)
        np.testing.assert_allclose(seen[:, recent + h - 1], want, atol=1e-4)

    trained = Forecaster(models.build("nbeats", recent + HORIZON, {}), recent, "nbeats", seasonal=hours)
    with torch.no_grad():  # away from the naive start, so the export check sees the seasonal path at work
        for w in trained.parameters():
            w.add_(0.01 * torch.randn_like(w))
    path = tmp_path / "seasonal.onnx"
    export(trained, path, "seasonal")
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert meta[META_INPUT_LEN] == str(60 * hours)


def test_zero_and_huge_windows_stay_finite() -> None:
    model = Forecaster(models.build("nbeats", 60, {}), 60, "nbeats").eval()
    x = torch.cat([torch.zeros(1, 60), torch.full((1, 60), 1e7)])
    y = model(x)
    assert torch.isfinite(y).all() and (y >= 0).all()
    assert float(y[0].abs().max()) == 0.0


def test_unknown_family_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown model family 'gru'"):
        models.build("gru", 60, {})


def test_autoformer_dft_path_equals_fft_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training uses torch.fft; export uses DFT matrix products: same numbers."""
    from mesp_training.models.autoformer import AutoCorrelation

    torch.manual_seed(0)
    for length in (60, 101):
        ac = AutoCorrelation(16, 4, length, 1.0).eval()
        x = torch.randn(3, length, 16)
        fft = ac(x, x, x)
        monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
        dft = ac(x, x, x)
        monkeypatch.undo()
        torch.testing.assert_close(fft, dft, rtol=1e-4, atol=1e-5)


def test_autoformer_time_delay_aggregation_matches_definition() -> None:
    """out[t] = sum_i w_i v[(t + tau_i) mod L] over the top-k delays."""
    from mesp_training.models.autoformer import AutoCorrelation

    torch.manual_seed(1)
    length, d = 48, 8
    ac = AutoCorrelation(d, 2, length, 1.0).eval()
    x = torch.randn(2, length, d)
    with torch.no_grad():
        got = ac(x, x, x)
        q, k, v = ac.q(x), ac.k(x), ac.v(x)
        corr = torch.zeros(2, length)
        for tau in range(length):
            corr[:, tau] = (torch.roll(q, -tau, dims=1) * k).sum(dim=(1, 2)) / d
        w, delays = torch.topk(corr, ac.top_k, dim=-1)
        w = torch.softmax(w, dim=-1)
        want = torch.zeros_like(v)
        for b in range(2):
            for i in range(ac.top_k):
                want[b] += w[b, i] * torch.roll(v[b], -int(delays[b, i]), dims=0)
        want = ac.out(want)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
