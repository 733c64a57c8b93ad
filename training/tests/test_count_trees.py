from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import assert_whole_invocations, fixture_rows

from mesp_training import count_trees as ct
from mesp_training.export import ExportMismatch


@pytest.fixture(scope="module")
def series() -> np.ndarray:
    return np.stack(list(fixture_rows().values()))


def test_features_are_the_recipe_by_hand(series: np.ndarray) -> None:
    w = series[:3, 900:900 + ct.WINDOW]
    f, level = ct.features(w)
    assert f.shape == (3, ct.FEATURES.n_features)
    for i in range(3):
        x = w[i].astype(np.float64)
        lv = 1 + x[-60:].mean()
        want = [x[-k] for k in ct.LAGS] + [x[-m:].mean() for m in ct.MEANS] + [x[-60:].std()]
        np.testing.assert_allclose(f[i, :-1], np.array(want) / lv, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose([f[i, -1], level[i]], [np.log(lv), lv], rtol=1e-5)


def test_trees_export_one_target_ensembles_equal_to_lightgbm(series: np.ndarray, tmp_path: Path) -> None:
    train, val = series[:80], series[80:]
    params = dict(ct.PARAMS, min_data_in_leaf=5, num_leaves=7)
    boosters = ct.fit(train, val, (1080, 1200), params=params, rounds=4, stride=120, log=lambda _: None)
    assert len(boosters) == 60 and all(1 <= b.num_trees() <= 4 for b in boosters)
    probe, _ = ct.windows(val, (1080, 1320))
    path = tmp_path / "trees.onnx"
    ct.export(boosters, path, "dense-trees", probe)
    graph = onnx.load(str(path)).graph
    # one one-target ensemble a horizon, each with its booster's trees,
    # joined in horizon order
    ensembles = [n for n in graph.node if n.op_type == "TreeEnsembleRegressor"]
    assert len(ensembles) == 60
    for h, node in enumerate(ensembles):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["n_targets"] == 1 and set(attrs["target_ids"]) == {0}
        assert len(set(attrs["nodes_treeids"])) == boosters[h].num_trees()
    (join,) = [n for n in graph.node if n.op_type == "Concat" and n.input[0] == ensembles[0].output[0]]
    assert list(join.input) == [n.output[0] for n in ensembles]
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"counts": probe})[0]
    want = ct.predict(boosters, probe)
    assert got.shape == (len(probe), 60) and (got >= 0).all()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
    assert np.abs(want).sum() > 0  # the trees answer something, not zeros


def test_trees_on_the_dense_features_read_the_day(series: np.ndarray, tmp_path: Path) -> None:
    """Trees fitted on the dense p_invoke graph's features too: the graph
    takes those features as a second input (and carries none of that
    graph's operations) and answers LightGBM's forecast of the window and
    those features; fed as the server feeds it, another day gives another
    answer."""
    from conftest import shipped_models

    from mesp_training.contract import read_manifest

    models = shipped_models()
    man = read_manifest(models)
    assert man is not None
    dense_p = models / man["dense"]["p_invoke"]["file"]
    pf = ct.dense_features(dense_p)
    train, val = series[:80], series[80:]
    params = dict(ct.PARAMS, min_data_in_leaf=5, num_leaves=7)
    boosters = ct.fit(train, val, (1080,), params=params, rounds=4, stride=120, p_features=pf, log=lambda _: None)
    n_window = ct.FEATURES.n_features
    # the features are columns after the window's, and the trees split on some
    used = {f for b in boosters for f, gain in enumerate(b.feature_importance("split")) if gain and f >= n_window}
    assert used, "no tree splits on a dense p_invoke feature"
    t = 1200
    probe, _ = ct.windows(val, (t,))
    days = ct.days(val, t)
    # each function's day up to t, as the server pads it
    np.testing.assert_array_equal(days[3, -t:], val[3, :t])
    assert (days[3, :-t] == -1).all()
    feats = pf(val, t)
    path = tmp_path / "trees.onnx"
    ct.export(boosters, path, "dense-trees", probe, feats)
    graph = onnx.load(str(path)).graph
    assert [n.op_type for n in graph.node].count("TreeEnsembleRegressor") == 60
    # the features come from the dense graph: none of its operations here
    assert not any(n.op_type in ("TreeEnsembleClassifier", "CumSum", "MatMul") for n in graph.node)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape[1]) for i in sess.get_inputs()] == [("counts", ct.WINDOW), ("p_features", feats.shape[1])]
    got = sess.run(None, {"counts": probe, "p_features": feats})[0]
    np.testing.assert_allclose(got, ct.predict(boosters, probe, feats), rtol=1e-4, atol=1e-3)
    # as the server feeds it: the dense graph's features of each history
    dense = ort.InferenceSession(str(dense_p), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(ct.run_trees(sess, val[:, :t], dense), got)
    blind = val[:, t - ct.WINDOW:t]  # the day unknown but for the window
    other = ct.run_trees(sess, blind, dense)
    assert np.abs(other - got).max() > 1e-3  # the rest of the day is read


def test_export_refuses_trees_that_do_not_match(series: np.ndarray, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    train, val = series[:80], series[80:]
    params = dict(ct.PARAMS, min_data_in_leaf=5, num_leaves=7)
    a = ct.fit(train, val, (1080,), params=params, rounds=3, stride=120, log=lambda _: None)
    b = ct.fit(train * 3 + 1, val, (1080,), params=params, rounds=3, stride=120, log=lambda _: None)
    probe, _ = ct.windows(val, (1080,))
    path = tmp_path / "trees.onnx"
    path.write_bytes(b"good")
    real_ensemble = ct._ensemble
    # the check expects a's trees, the graph is given b's
    monkeypatch.setattr(ct, "_ensemble", lambda _boosters: real_ensemble(b))
    with pytest.raises(ExportMismatch):
        ct.export(a, path, "dense-trees", probe)
    assert path.read_bytes() == b"good"  # nothing replaced


def test_the_chooser_scores_what_the_server_answers(server: str) -> None:
    """The blend weight is chosen on soft_routing.served_forecast blended
    with the trees' graph: on real rows, that is what `mesp serve` answers."""
    from conftest import shipped_models
    from test_kserve_v2 import v1

    from mesp_training.contract import read_clusters, read_manifest
    from mesp_training.routing import Router
    from mesp_training.soft_routing import served_forecast

    models = shipped_models()
    man = read_manifest(models)
    assert man is not None
    t = 1200
    series = np.stack(list(fixture_rows().values())[:40])
    want = served_forecast(models, man, Router(read_clusters(models / man["clusters"])), series, t)
    got = v1(server, series[:, :t])["forecasts"]
    if "trees" in man:
        w = man["trees"]["weight"]
        # the server sends the trees what it has: minutes up to t
        trees = ct.forecast_at(models, man, series[:, :t], t)
        want = (1 - w) * want + w * trees
    # a timer's counts come from the timers' expert (Go's periodic), not
    # the models the chooser scores
    models_rows = [i for i, f in enumerate(got) if "timer" not in f]
    assert len(models_rows) >= len(got) // 2
    if "trees" in man:
        assert all(got[i]["trees"] == {"model": man["trees"]["id"], "weight": w} for i in models_rows)
    answered = np.array([got[i]["median"] for i in models_rows])
    assert_whole_invocations(answered, want[models_rows])
    assert answered.max() > 0  # something was compared
    # the forecast is the expected count: the level, or the mean trees'
    # hour spread as the level shapes it at their share, plus the expected
    # entry's share of the served upper quantile above the level (neither
    # in a silence no day shows)
    forecast = np.array([got[i]["forecast"] for i in models_rows])
    ex = man.get("expected")
    if "mean" not in man and ex is None:
        np.testing.assert_array_equal(forecast, answered)
        return
    expected = want.copy()
    if "mean" in man:
        a = man["mean"]["weight"]
        hour = ct.shaped(want, ct.forecast_at(models, man, series[:, :t], t, man["mean"]))
        expected = (1 - a) * want + a * hour
    median = np.zeros_like(want)
    median[models_rows] = answered
    upper = dict(served_levels(models, man, series[:, :t], median))[ex["quantile"]] if ex else want
    raised = 0  # rows whose expected count is the mean trees' blend or the upper share's
    sp = man.get("sparse")
    min_gap = man["silence"]["min_gap"] if "silence" in man else None
    sparse_rows = 0
    for k, i in enumerate(models_rows):
        history = series[i, :t]
        recent = history[-sp["look"]:] if sp else history
        idle, unprecedented = _gap(history)
        in_silence = min_gap is not None and unprecedented and idle >= min_gap  # left to the level
        if sp and not in_silence and history.sum() * 1440 / t < sp["below_daily"] and (recent > 0).any():
            # a small function: p_invoke times the mean size of its recent
            # invocations (manifest sparse), whatever the count models say
            size = sparse_size(history, sp)
            assert got[i]["sparse"]["size_when_invoked"] == pytest.approx(size)
            if "steady" in got[i]["sparse"]:
                # a steady rate (sparse.steady): the mean of its minutes
                st = got[i]["sparse"]["steady"]
                assert sp.get("steady")
                assert st["rate"] == pytest.approx(history[-st["minutes"]:].mean())
                np.testing.assert_allclose(forecast[k], st["rate"], rtol=1e-6)
                sparse_rows += 1
                continue
            p = forecast[k] / size
            assert ((p >= 0) & (p <= 1 + 1e-6)).all()
            sparse_rows += 1
            continue
        assert "sparse" not in got[i]
        if "mean" in got[i] or "upper" in got[i]:
            e = expected[i] if "mean" in got[i] else want[i]
            if "mean" in got[i]:
                assert got[i]["mean"] == {"model": man["mean"]["id"], "weight": man["mean"]["weight"]}
            if "upper" in got[i]:
                assert ex is not None and got[i]["upper"] == {"quantile": ex["quantile"], "share": ex["share"]}
                e = e + ex["share"] * np.maximum(upper[i] - want[i], 0)
            np.testing.assert_allclose(forecast[k], e, rtol=1e-4, atol=1e-4)
            raised += 1
        else:
            # outside a silence no day shows, every row the count models
            # answer has the set's expected count, not the median
            assert in_silence, f"row {i}: the median for the forecast, though the set has {man.get('mean') or ex}"
            np.testing.assert_array_equal(forecast[k], answered[k])
    assert raised > 0  # the expected count was compared
    assert not sp or sparse_rows > 0  # the rule was compared


def test_hour_figures_by_hand() -> None:
    y = np.array([[1.0, 0.0, 3.0], [0.0, 0.0, 0.0], [2.0, 2.0, 0.0]])
    f = np.array([[2.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 2.0, 2.0]])
    # hours: y 4, 0, 4; f 2, 1, 6 -> |diff| 2 + 1 + 2 over 8; bias 9 / 8
    assert ct.hour_figures(f, y) == pytest.approx((5 / 8, 9 / 8))


def test_hour_trees_answer_the_hours_volume(series: np.ndarray, tmp_path: Path) -> None:
    """The hour model (fit_hour): one booster whose graph answers the
    hour's volume as 60 even shares, equal to LightGBM; over the windows
    it was fitted on its hours add up to the actual ones within 10%; and
    shaped spreads an hour as a level shapes it."""
    train = series[:80]
    origins = (900, 1080, 1200)
    params = ct.PARAMS_HOUR | {"min_data_in_leaf": 5, "num_leaves": 7}
    boosters = ct.fit_hour(train, train, origins, params=params, rounds=80, stride=120)
    assert len(boosters) == 1
    w, y = ct.windows(train, origins)
    hour = ct.predict(boosters, w)
    assert hour.shape == (len(w), 60) and np.allclose(hour, hour[:, :1])  # even shares
    assert 0.9 < ct.hour_figures(hour, y.astype(np.float64))[1] < 1.1
    path = tmp_path / "hour.onnx"
    ct.export(boosters, path, ct.MEAN_ID, w[:40])
    graph = onnx.load(str(path)).graph
    (trees,) = [n for n in graph.node if n.op_type == "TreeEnsembleRegressor"]
    assert {a.name: onnx.helper.get_attribute_value(a) for a in trees.attribute}["n_targets"] == 1
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"counts": w[:40]})[0]
    np.testing.assert_allclose(got, hour[:40], rtol=1e-4, atol=1e-3)
    level = np.array([[1.0, 0.0, 3.0], [0.2, 0.1, 0.1]])
    even = np.array([[2.0, 2.0, 2.0], [1.0, 1.0, 1.0]])
    np.testing.assert_allclose(ct.shaped(level, even), [[1.5, 0.0, 4.5], [1.0, 1.0, 1.0]])


def test_quantile_trees_cover_their_level(series: np.ndarray, tmp_path: Path) -> None:
    """Quantile trees (the count trees' recipe at the pinball loss),
    exported (export checks the graph against LightGBM on the graph's own
    features): the 0.9 graph's answer covers about 90% of the minutes the
    trees were fitted on and the 0.99 graph's more, and the validation
    figures are the coverage and pinball loss by hand."""
    train = series[:80]
    origins = (900, 1080, 1200)
    w, y = ct.windows(train, origins)
    cover = {}
    for q in (0.9, 0.99):
        params = ct.PARAMS | {"objective": "quantile", "alpha": q, "min_data_in_leaf": 5, "num_leaves": 7}
        boosters = ct.fit(train, train, origins, params=params, rounds=30, stride=60, log=lambda _: None)
        path = tmp_path / ct.quantile_file(q)
        ct.export(boosters, path, path.stem, w[:40])
        got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"counts": w})[0]
        cover[q] = float((y <= got).mean())
    assert 0.85 <= cover[0.9] <= 0.97, cover
    assert cover[0.99] > cover[0.9], cover
    # figures by hand: y 0, 2, 5 against 1, 1, 1 at q 0.9
    f = ct.quantile_figures(np.ones((1, 3)), np.array([[0.0, 2.0, 5.0]]), 0.9)
    assert f["coverage"] == pytest.approx(1 / 3)
    assert f["pinball"] == pytest.approx((0.1 * 1 + 0.9 * 1 + 0.9 * 4) / 3)


def _gap(history: np.ndarray) -> tuple[int, bool]:
    """Go's silence.Gap: idle minutes since the last invocation and whether
    that gap is longer than every gap closed before it."""
    hits = np.flatnonzero(history > 0)
    idle = len(history) - 1 - (int(hits[-1]) if len(hits) else -1)
    longest = int((np.diff(hits) - 1).max()) if len(hits) > 1 else -1
    return idle, idle > longest


def test_served_quantiles_are_the_graphs_in_python(server: str) -> None:
    """Go's onnxruntime and Python's give the same quantiles (1e-4): on real
    rows, each served level is the largest of the level below (the served
    median first) and its scale times the largest of its graph's answer
    (run here in Python) and the median; a timer's and a silent pattern's
    are the server's own rule (Go's tests)."""
    from conftest import shipped_models
    from test_kserve_v2 import v1

    from mesp_training.contract import read_manifest

    models = shipped_models()
    man = read_manifest(models)
    assert man is not None and len(man.get("quantiles", [])) >= 2
    t = 1200
    series = np.stack(list(fixture_rows().values())[:40])
    names = [f"q{q['q']:g}" for q in man["quantiles"]]
    got = v1(server, series[:, :t], ["median", *names])["forecasts"]
    min_gap = man["silence"]["min_gap"] if "silence" in man else None
    median = np.array([f["median"] for f in got], np.float64)
    levels = list(served_levels(models, man, series[:, :t], median))
    compared = 0
    for i, f in enumerate(got):
        idle, unprecedented = _gap(series[i, :t])
        if "timer" in f or (min_gap is not None and unprecedented and idle >= min_gap):
            continue
        for name, (_, want) in zip(names, levels, strict=True):
            np.testing.assert_allclose(f["quantiles"][name], want[i], rtol=1e-4, atol=1e-4, err_msg=f"row {i} {name}")
        compared += 1
    assert compared >= 20  # 26 of the 40 rows: the rest are timers or silent


def served_levels(models: Path, man: dict[str, Any], history: np.ndarray,
                  median: np.ndarray) -> Iterator[tuple[float, np.ndarray]]:
    """Each quantile level the set serves, [functions, 60], as the server
    answers it where the quantile trees run: the largest of the level below
    (the median first) and its scale times the largest of its graph's
    answer and the median."""
    lower = median
    for q in man["quantiles"]:
        trees = ct.forecast_at(models, man, history, history.shape[1], q)
        lower = np.maximum(lower, q.get("scale", 1.0) * np.maximum(trees, median))
        yield q["q"], lower


def sparse_size(history: np.ndarray, sp: dict[str, Any]) -> float:
    """The size of an invocation as manifest sparse defines it: the mean
    count of the invoked minutes among the last `look`, each capped at the
    `cap` quantile of the history's invoked counts and weighted by
    2^-(minutes back / half_life) where those are set."""
    recent = history[-sp["look"]:].astype(np.float64)
    if sp.get("cap"):
        invoked = np.sort(history[history > 0])
        recent = np.minimum(recent, invoked[max(0, int(np.ceil(sp["cap"] * len(invoked))) - 1)])
    age = np.arange(len(recent))[::-1]
    w = np.exp2(-age / sp["half_life"]) if sp.get("half_life") else np.ones(len(recent))
    on = history[-sp["look"]:] > 0
    return float((w[on] * recent[on]).sum() / w[on].sum())


def test_one_target_ensembles_answer_as_the_many_target_one(series: np.ndarray, tmp_path: Path) -> None:
    """The 60-target ensemble of earlier exports, split: the same answers
    in ONNX Runtime (within float32's rounding: it sums in another order),
    a one-target node left as it is, and an ensemble whose tree feeds two
    targets refused."""
    train, val = series[:80], series[80:]
    params = dict(ct.PARAMS, min_data_in_leaf=5, num_leaves=7)
    boosters = ct.fit(train, val, (1080,), params=params, rounds=3, stride=120, log=lambda _: None)
    probe, _ = ct.windows(val, (1080, 1320))
    whole = ct._ensemble(boosters)
    f, _ = ct.features(probe)

    def run(nodes: list[onnx.NodeProto]) -> np.ndarray:
        g = onnx.helper.make_graph(nodes, "t", [onnx.helper.make_tensor_value_info("trees_in", onnx.TensorProto.FLOAT,
                                                                                  ["batch", f.shape[1]])],
                                   [onnx.helper.make_tensor_value_info("trees_out", onnx.TensorProto.FLOAT,
                                                                       ["batch", 60])])
        m = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", 17),
                                                     onnx.helper.make_opsetid("ai.onnx.ml", 3)])
        path = tmp_path / f"t{len(nodes)}.onnx"
        onnx.save(m, str(path))
        out: np.ndarray = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
            None, {"trees_in": f.astype(np.float32)})[0]
        return out

    split = ct.one_target_ensembles(whole)
    assert len(split) == 61 and split[-1].op_type == "Concat"
    want, got = run([whole]), run(split)
    assert np.abs(want).sum() > 0
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert ct.one_target_ensembles(split[0]) == [split[0]]
    # a tree whose leaves feed two targets has no one ensemble to go to
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in whole.attribute}
    leaves = [i for i, t in enumerate(attrs["target_treeids"]) if t == attrs["target_treeids"][0]]
    assert len(leaves) > 1
    ids = list(attrs["target_ids"])
    ids[leaves[1]] = (ids[leaves[0]] + 1) % 60
    twice = onnx.helper.make_node("TreeEnsembleRegressor", ["trees_in"], ["trees_out"], domain="ai.onnx.ml",
                                  **(attrs | {"target_ids": ids}))
    with pytest.raises(ExportMismatch, match="feeds targets"):
        ct.one_target_ensembles(twice)
