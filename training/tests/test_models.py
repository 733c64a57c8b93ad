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
