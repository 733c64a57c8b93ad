from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import FIXTURE, fixture_rows, mesp_bin, serving, shipped_models

from mesp_training.contract import STOP_FEATURES, _stop_errors
from mesp_training.stop import fit, predict, read_decisions, to_entry, train_stop


def reference_inputs(counts: np.ndarray, p: float) -> np.ndarray:
    """silence.StopInputs, written again from its documentation."""
    n = len(counts)
    inv = np.flatnonzero(counts > 0)
    if len(inv) == 0:
        idle, since, share, gaps = n, n, 0.0, np.array([], dtype=int)
    else:
        idle, since = n - 1 - inv[-1], n - inv[0]
        share = len(inv) / since
        gaps = np.diff(inv) - 1
    longest = gaps.max() if len(gaps) else -1
    as_long = int((gaps >= max(idle, 1)).sum())
    p = min(max(p, 1e-6), 1 - 1e-6)
    return np.array([np.log(p / (1 - p)), np.log1p(idle), np.log1p(idle) - np.log(longest + 2), np.log1p(as_long),
                     share, np.log1p(since)])


def test_walk_is_lightgbms_and_monotone_in_p() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20000, 6))
    y = (rng.random(20000) < 1 / (1 + np.exp(-(x[:, 0] - x[:, 1] + 0.5 * x[:, 3] * x[:, 4])))).astype(float)
    b = fit(x, y, rounds=30)
    e = to_entry(b)
    assert _stop_errors(e) == []
    np.testing.assert_allclose(predict(e, x), b.predict(x), rtol=0, atol=1e-9)
    up = x.copy()
    up[:, 0] += 1.0
    assert (predict(e, up) >= predict(e, x) - 1e-12).all(), "a higher served p_invoke lowered the answer"


def test_contract_refuses_what_go_refuses() -> None:
    stump = {"split_feature": [0], "threshold": [0.0], "left_child": [-1], "right_child": [-2],
             "leaf_value": [0.0, 1.0]}
    ok = {"features": STOP_FEATURES, "init": 0.0, "trees": [stump]}
    assert _stop_errors(ok) == []
    bad = [
        ok | {"features": STOP_FEATURES[:5]},
        ok | {"trees": []},
        ok | {"trees": [stump | {"split_feature": [6]}]},
        ok | {"trees": [stump | {"right_child": [-1]}]},  # a leaf twice, one never
        ok | {"trees": [{"split_feature": [0, 1], "threshold": [0.0, 0.0], "left_child": [1, 0],
                         "right_child": [-1, -2], "leaf_value": [0.0, 1.0, 2.0]}]},  # a cycle
        ok | {"trees": [stump | {"leaf_value": [0.0, float("nan")]}]},
    ]
    for e in bad:
        assert _stop_errors(e), e


def test_train_stop_on_the_fixture_and_served(tmp_path: Path) -> None:
    """`mesp stop-decisions` on the fixture, `train-stop` on them, then the
    server answers the next minute's p_invoke as the stop model does on the
    inputs written again here, and scales the later minutes where it
    lowered it."""
    models = tmp_path / "models"
    shutil.copytree(shipped_models(), models, ignore=shutil.ignore_patterns(".work"))
    man = json.loads((models / "manifest.json").read_text())
    man.pop("stop", None)
    (models / "manifest.json").write_text(json.dumps(man))
    out = tmp_path / "stop.parquet"
    subprocess.run([str(mesp_bin()), "stop-decisions", "--data", str(FIXTURE), "--models", str(models),
                    "--out", str(out)], check=True, capture_output=True)
    t = pq.read_table(out)
    hours = set(t.column("silent_hours").to_pylist())
    assert hours == {0, 6, 12, 24}, hours
    assert t.num_rows % 360 == 0
    x, y = read_decisions(out)
    timers = np.asarray(t.column("timer"))
    assert len(y) == t.num_rows - timers.sum() and 0 < y.sum() < len(y), "the timers' minutes are not left out"
    stopped = np.asarray(t.column("silent_hours")) > 0
    invoked = np.asarray(t.column("invoked"))
    assert not invoked[stopped & (np.asarray(t.column("minute")) > 1080)].any(), "a stopped copy was invoked"
    rows = list(fixture_rows().items())[:24]
    lengths = [1440, 1200, 1081, 600]
    cases = []
    for i, (fid, counts) in enumerate(rows):
        c = counts[:lengths[i % len(lengths)]].astype(np.float64)
        if i % 3 == 0:  # stopped: the last 3 hours silent
            c[-180:] = 0
        cases.append((fid, c))
    body = json.dumps({"functions": [{"id": f, "counts": c.tolist()} for f, c in cases]}).encode()

    def prewarm() -> list[dict]:
        with serving(models) as addr:
            req = urllib.request.Request(f"http://{addr}/v1/prewarm", body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(req) as r:
                return list(json.load(r)["functions"])

    plain = prewarm()
    entry = train_stop(models, out, log=lambda _: None)
    assert json.loads((models / "manifest.json").read_text())["stop"]["trees"] == entry["trees"]
    lowered = 0
    for (fid, c), f, g in zip(cases, prewarm(), plain, strict=True):
        assert f["id"] == fid and "stop" not in g, (f.keys(), g.keys())
        if "timer" in f:  # a timer's minutes are its floor's and cap's
            assert "stop" not in f and f["p_invoke"] == g["p_invoke"], f.keys()
            continue
        assert "stop" in f, f.keys()
        before = f["stop"]["p_invoke_before"]
        assert abs(before - g["p_invoke"][0]) <= 1e-6
        want = float(predict(entry, reference_inputs(c, before)[None, :])[0])
        assert abs(f["p_invoke"][0] - want) <= 1e-6, (fid, f["p_invoke"][0], want)
        # the later minutes: the chance it still runs, read at p_invoke max(p, 0.01)
        ref = max(before, 0.01)
        at_ref = reference_inputs(c, ref)
        scale = min(1.0, float(predict(entry, at_ref[None, :])[0]) / ref)
        lowered += scale < 1
        np.testing.assert_allclose(f["p_invoke"][1:], np.asarray(g["p_invoke"][1:]) * scale, rtol=1e-5, atol=1e-7)
        assert f["forecast"] == g["forecast"], "the stop model changed the counts"
    assert lowered > 0, "the stop model lowered no answer: the scaling of later minutes went unchecked"


@pytest.mark.parametrize("column", ["log_idle", "invoked"])
def test_decisions_without_a_column_are_refused(tmp_path: Path, column: str) -> None:
    import pyarrow as pa

    cols = {c: pa.array([0.0]) for c in STOP_FEATURES} | {"invoked": pa.array([True])}
    del cols[column]
    pq.write_table(pa.table(cols), tmp_path / "d.parquet")
    with pytest.raises(ValueError, match=column):
        read_decisions(tmp_path / "d.parquet")
