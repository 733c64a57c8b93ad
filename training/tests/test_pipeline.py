from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import TINY

from mesp_training import count_trees as ct
from mesp_training import invocation_gbm as gbm
from mesp_training.contract import sha256_file
from mesp_training.count_trees import train_trees
from mesp_training.invocation import WINDOW
from mesp_training.invocation_train import LOOP_END, LOOP_START, MIN_ROUTED_DECISIONS, InvokeConfig, train_invoke
from mesp_training.pipeline import load_cluster, refit, train
from mesp_training.search import SearchConfig
from mesp_training.serve_rule import WIN_CONFIDENCE


def assert_serve_rule(e: dict[str, Any]) -> None:
    r = e["serve_rule"]
    assert e["serve"] == ("expert" if r["win_share"] >= WIN_CONFIDENCE else "dense")
    assert r["functions"] == e["data"]["val_functions"]
    assert r["val_mae_ratio"] == pytest.approx(e["val_mae"] / e["dense_val_mae"], abs=2e-3)
    if e["val_mae"] >= e["dense_val_mae"]:
        assert e["serve"] == "dense"


def test_train_tiny_end_to_end_then_add_cluster(clustered: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(clustered, models)
    cfg = SearchConfig.load(TINY)
    manifest = train(models, cfg)
    assert manifest["dense"]["file"] == "dense.onnx"
    assert sorted(e["cluster"] for e in manifest["experts"]) == [0, 1, 2]
    for e in [manifest["dense"], *manifest["experts"]]:
        assert sha256_file(models / e["file"]) == e["sha256"]
        sess = ort.InferenceSession(str(models / e["file"]), providers=["CPUExecutionProvider"])
        assert sess.get_inputs()[0].shape[1] == e["input_len"]
    for e in manifest["experts"]:
        # The decision follows serve_rule's verdict on the validation functions.
        assert_serve_rule(e)
    report = json.loads((models / ".work" / "training-report-all.json").read_text())
    tried = {t.get("family") for t in report["studies"]["dense"]}
    assert {"nbeats", "patchtst", "lstm", "autoformer"} <= tried

    # The p_invoke models: dense, one per cluster, the threshold from
    # validation functions; each graph takes a padded day and answers
    # probabilities.
    icfg = InvokeConfig.load(TINY)
    manifest = train_invoke(models, icfg, lambda cl: load_cluster(models, cl, cfg.val_percent))
    assert 0 < manifest["prewarm"]["threshold"] < 1
    assert manifest["prewarm"]["val_idle_minutes"] <= manifest["prewarm"]["val_keepalive10_idle_minutes"]
    x = np.full((2, WINDOW), -1.0, np.float32)
    x[0, -600:] = np.arange(600) % 5
    dense_p = manifest["dense"]["p_invoke"]
    dense_out = ort.InferenceSession(str(models / dense_p["file"]), providers=["CPUExecutionProvider"]).run(
        None, {"counts": x})
    if dense_p["family"] == gbm.FAMILY:
        # minute 1 is the sigmoid of the trees' margin: one one-target
        # ensemble, which ONNX Runtime walks across a batch's rows
        dense_graph = onnx.load(str(models / dense_p["file"])).graph
        assert not any(n.op_type == "TreeEnsembleClassifier" for n in dense_graph.node)
        (margin,) = [n for n in dense_graph.node if n.op_type == "TreeEnsembleRegressor"]
        assert next(a.i for a in margin.attribute if a.name == "n_targets") == 1
    for e in [manifest["dense"], *manifest["experts"]]:
        p = e["p_invoke"]
        assert sha256_file(models / p["file"]) == p["sha256"] and p["input_len"] == WINDOW
        sess = ort.InferenceSession(str(models / p["file"]), providers=["CPUExecutionProvider"])
        outputs = [o.name for o in sess.get_outputs()]
        feeds = {"counts": x}
        if e is not manifest["dense"] and p["family"] == dense_p["family"] == gbm.FAMILY:
            # An expert's trees continue the dense model's: its graph holds
            # only the trees it added and takes the dense graph's features
            # and minute 1 instead of the counts.
            assert p["base"] == dense_p["id"] and outputs == ["p_invoke"]
            assert [i.name for i in sess.get_inputs()] == ["p_features", "dense_p1"]
            graph = onnx.load(str(models / p["file"])).graph
            (trees,) = [n for n in graph.node if n.op_type == "TreeEnsembleRegressor"]
            ids = next(a.ints for a in trees.attribute if a.name == "nodes_treeids")
            assert len(set(ids)) == p["params"]["trees"] - dense_p["params"]["trees"] > 0
            feeds = {"p_features": dense_out[1], "dense_p1": dense_out[0][:, :1]}
        else:
            assert "base" not in p
            # A graph with trees of its own answers its features too.
            assert outputs == (["p_invoke", "p_features"] if p["family"] == gbm.FAMILY else ["p_invoke"])
        y = sess.run(None, feeds)[0]
        assert y.shape == (2, 60) and (y >= 0).all() and (y <= 1).all()
    routed = 0
    for e in manifest["experts"]:
        p, r = e["p_invoke"], e["p_invoke"]["routed_val"]
        # Served only where it beat dense on the validation windows routed
        # to it, in log-loss and in cost at the operating threshold.
        wins = (r["decisions"] >= MIN_ROUTED_DECISIONS and r["logloss"] < r["dense_logloss"]
                and r["cost"] < r["dense_cost"])
        assert p["serve"] == ("expert" if wins else "dense")
        routed += r["decisions"]
    val_functions = sum(len(load_cluster(models, cl, cfg.val_percent)[1])
                        for cl in json.loads((models / "clusters.json").read_text())["clusters"])
    assert 0 < routed <= val_functions * (LOOP_END - LOOP_START + 1)

    # The count trees: fitted on every cluster's training functions, their
    # weight chosen on the validation half early stopping did not read.
    tiny = dict(ct.PARAMS, min_data_in_leaf=5, num_leaves=7)
    manifest = train_trees(models, lambda cl: load_cluster(models, cl, cfg.val_percent), params=tiny, rounds=3,
                           stride=120, log=lambda _: None)
    # the graph stays only where it is blended (within the tolerance it is not)
    assert (models / "dense-trees.onnx").is_file() == ("trees" in manifest)
    assert (models / ".work" / "count-trees.json").is_file()
    if "trees" in manifest:
        t = manifest["trees"]
        assert sha256_file(models / t["file"]) == t["sha256"] and t["input_len"] == ct.WINDOW
        # fitted on the set's dense p_invoke features, read from the day
        assert t["dense_features"] is True
        assert t["features_of"] == {"model": manifest["dense"]["p_invoke"]["id"],
                                    "sha256": manifest["dense"]["p_invoke"]["sha256"]}
        assert 0 < t["weight"] <= 1 and t["validation"]["wape"] <= t["validation"]["routed_wape"]

    # The final fit alone, of the candidates the manifest records: every
    # other entry (p_invoke, the trees) stays, the serve decisions follow
    # the new validation figures.
    before_refit = json.loads((models / "manifest.json").read_text())
    manifest = refit(models, cfg)
    assert manifest.get("trees") == before_refit.get("trees")
    for e, old_e in zip([manifest["dense"], *manifest["experts"]], [before_refit["dense"], *before_refit["experts"]],
                        strict=True):
        assert e.get("p_invoke") == old_e.get("p_invoke") and e["params"] == old_e["params"]
        assert sha256_file(models / e["file"]) == e["sha256"]
    for e in manifest["experts"]:
        assert_serve_rule(e)

    # Retraining one cluster leaves every other entry and file byte-identical.
    before = {e["cluster"]: (dict(e), (models / e["file"]).read_bytes(), (models / e["p_invoke"]["file"]).read_bytes())
              for e in manifest["experts"]}
    dense_bytes = (models / "dense.onnx").read_bytes(), (models / "dense-p.onnx").read_bytes()
    kept = train(models, cfg, clusters=[1])
    assert kept.get("trees") == manifest.get("trees")  # the set's count trees stay
    again = train_invoke(models, icfg, lambda cl: load_cluster(models, cl, cfg.val_percent), clusters=[1])
    assert ((models / "dense.onnx").read_bytes(), (models / "dense-p.onnx").read_bytes()) == dense_bytes
    for e in again["experts"]:
        if e["cluster"] != 1:
            assert e == before[e["cluster"]][0]
            assert (models / e["file"]).read_bytes() == before[e["cluster"]][1]
            assert (models / e["p_invoke"]["file"]).read_bytes() == before[e["cluster"]][2]


def test_bad_config_is_rejected(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("families: [nbeats, transformerxl]\n")
    with pytest.raises(ValueError, match="unknown model family"):
        SearchConfig.load(p)
    p.write_text("input_lens: [60, 2000]\n")
    with pytest.raises(ValueError, match="outside"):
        SearchConfig.load(p)
    for bad, match in [("spaces: {gru: {layers: 2}}", "unknown model family"),
                       ("spaces: {lstm: {width: 2}}", "not a hyper-parameter of lstm"),
                       ("spaces: {lstm: {dropout: {low: 0.3, high: 0.1}}}", "above high"),
                       ("spaces: {lstm: {hidden: []}}", "no choices")]:
        p.write_text(bad + "\n")
        with pytest.raises(ValueError, match=match):
            SearchConfig.load(p)


def test_search_yaml_overrides_a_space(tmp_path: Path) -> None:
    """Spaces are data: search.yaml narrows, fixes or widens any of them."""
    import optuna

    from mesp_training import models

    p = tmp_path / "s.yaml"
    p.write_text("spaces:\n  patchtst: {patch_len: [8], layers: 3, dropout: {low: 0.0, high: 0.05}}\n"
                 "  lstm: {layers: {low: 3, high: 4}}\n")
    cfg = SearchConfig.load(p)
    searched = models.spaces(cfg.spaces)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(20):
        t = study.ask()
        pt = models.space("patchtst", t, searched["patchtst"])
        lstm = models.space("lstm", t, searched["lstm"])
        assert pt["patch_len"] == 8 and pt["layers"] == 3 and 0.0 <= pt["dropout"] <= 0.05
        assert lstm["layers"] in (3, 4)
        assert "hidden" in lstm  # the rest of the family's space is still searched
    # Without overrides the families' own spaces apply; the same draw
    # builds the same network either way.
    default = models.space("patchtst", optuna.create_study().ask(), None)
    assert default["layers"] in (1, 2, 3)
    assert SearchConfig.load(None).spaces == {}


def test_two_workers_share_one_study_on_postgres(clustered: Path, tmp_path: Path) -> None:
    """`make train-experts WORKERS=2`: two processes, one PostgreSQL study."""
    import os
    import socket
    import subprocess
    import sys

    import optuna

    url = os.environ.get("MESP_TEST_PG_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("MESP_TEST_PG_URL not set: make test runs pytest under scripts/with-postgres.sh")
        pytest.skip("no PostgreSQL (run through make test)")
    cfg = tmp_path / "s.yaml"
    cfg.write_text("families: [nbeats]\ninput_lens: [60]\ntrials_per_cluster: 6\nminutes_per_cluster: 1\n"
                   "epochs: 1\nmax_train_windows: 500\ntrain_stride: 120\n")
    procs = []
    for w in range(2):
        models = tmp_path / f"models{w}"
        shutil.copytree(clustered, models)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "mesp_training", "train", "--models", str(models), "--config", str(cfg),
             "--storage", url, "--work", str(tmp_path / f"work{w}"), "--threads", "1"],
            stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    names = [n for n in optuna.get_all_study_names(url) if n.startswith("dense-")]
    assert len(names) == 1, names  # both workers named the study alike
    # Which worker takes which trial is the storage's race: one may finish a
    # study before the other starts it (it did, on an idle machine), so the
    # sharing is checked over every study the two workers ran (the storage
    # may hold earlier runs' trials too: workers are host:pid).
    ours = {f"{socket.gethostname()}:{p.pid}" for p in procs}
    workers: set[str] = set()
    for name in optuna.get_all_study_names(url):
        study = optuna.load_study(study_name=name, storage=url)
        workers |= {str(t.user_attrs.get("worker")) for t in study.trials} & ours
    assert workers == ours, f"trials came from {workers} of {ours}"
    dense = optuna.load_study(study_name=names[0], storage=url)
    finished = [t for t in dense.trials if t.state.is_finished()]
    assert len(finished) >= 18  # the dense budget: K=3 clusters x 6 trials


def test_final_fit_starts_where_the_candidate_starts() -> None:
    from conftest import fixture_rows

    from mesp_training.fit import mae, predict
    from mesp_training.search import Candidate, SplitCache, final_fit

    series = np.stack(list(fixture_rows().values()))
    cfg = SearchConfig.load(TINY)
    assert cfg.final_epochs >= 1
    splits = SplitCache(series[:80], series[80:], cfg.train_stride)
    dense = final_fit(Candidate("nbeats", 60, {}, 1e-3), splits, cfg, log=lambda _: None)
    split = splits.get(60)
    # the weights of the best epoch, the naive start among them
    assert dense.val_mae <= dense.naive_val_mae + 1e-6
    assert abs(mae(predict(dense.model, split.x_val), split.y_val) - dense.val_mae) < 1e-3
    # a fine-tuned candidate starts from the dense model: at learning rate 0 it stays there
    still = final_fit(Candidate("nbeats", 60, {}, 0.0, "dense"), splits, cfg, dense=dense.model, log=lambda _: None)
    np.testing.assert_allclose(predict(still.model, split.x_val), predict(dense.model, split.x_val), atol=1e-5)
    with pytest.raises(ValueError, match="dense"):
        final_fit(Candidate("nbeats", 60, {}, 1e-3, "dense"), splits, cfg)


def test_a_search_starts_from_the_serving_candidate(tmp_path: Path) -> None:
    from conftest import fixture_rows

    from mesp_training import models as families
    from mesp_training.models.space import Choice, FloatRange, IntRange
    from mesp_training.search import Candidate, SplitCache, champion_trial, search

    series = np.stack(list(fixture_rows().values()))
    cfg = SearchConfig.load(TINY)
    splits = SplitCache(series[:80], series[80:], cfg.train_stride)
    # a candidate the tiny search would seldom draw: every searched value at
    # the top of its range, the last input length, a family tried last
    family = cfg.families[-1]
    params = {}
    for name, dim in families.spaces(cfg.spaces)[family].items():
        params[name] = dim.values[-1] if isinstance(dim, Choice) else dim.high if isinstance(
            dim, IntRange | FloatRange) else dim
    champion = Candidate(family, cfg.input_lens[-1], params, cfg.lr_max)
    logged: list[str] = []
    w = search("champion", splits, cfg, trials=1, minutes=1, work=tmp_path, champion=champion, log=logged.append)
    assert (w.candidate.family, w.candidate.input_len, w.candidate.lr) == (family, cfg.input_lens[-1], cfg.lr_max)
    assert {k: w.candidate.params[k] for k in params} == params
    # a candidate this search cannot draw is said so and not run
    outside = Candidate(family, 999, params, cfg.lr_max)
    assert champion_trial(outside, cfg, expert=False) is None
    w = search("outside", splits, cfg, trials=1, minutes=1, work=tmp_path, champion=outside, log=logged.append)
    assert w.candidate.input_len != 999 and any("outside this search" in m for m in logged)
    # an expert study's serving fine-tune keeps its learning rate
    tuned = Candidate(family, cfg.input_lens[-1], params, cfg.lr_min, "dense")
    assert champion_trial(tuned, cfg, expert=True) == {"init": "dense", "finetune_lr": cfg.lr_min}
    assert champion_trial(tuned, cfg, expert=False) is None


def test_a_seasonal_candidate_round_trips_through_the_manifest(tmp_path: Path) -> None:
    """A candidate with the seasonal input trains on windows of its graph's
    length, its manifest entry names that length for the server and gives
    back the same candidate, and a search without the seasonal input does
    not start from it."""
    import dataclasses

    from conftest import fixture_rows

    from mesp_training.export import export
    from mesp_training.pipeline import _candidate_of, _model_entry
    from mesp_training.search import Candidate, SplitCache, champion_trial, final_fit

    series = np.stack(list(fixture_rows().values()))
    cfg = SearchConfig.load(TINY)
    splits = SplitCache(series[:80], series[80:], cfg.train_stride)
    cand = Candidate("nbeats", 60, {}, 1e-3, seasonal=3)
    w = final_fit(cand, splits, cfg, log=lambda _: None)
    assert w.model.input_len == cand.window_len == 180
    assert w.data["val_windows"] == len(splits.get(180).x_val) > 0
    export(w.model, tmp_path / "d.onnx", "dense")
    entry = _model_entry("dense", "d.onnx", tmp_path, w)
    assert entry["input_len"] == 180
    assert _candidate_of(json.loads(json.dumps(entry))) == cand
    plain = dataclasses.replace(cand, seasonal=0)
    assert _candidate_of(_model_entry("dense", "d.onnx", tmp_path, dataclasses.replace(w, candidate=plain))) == plain
    tuned = dataclasses.replace(cand, lr=cfg.lr_min, init="dense")
    assert champion_trial(tuned, cfg, expert=True) is None  # TINY has no seasonal input
    assert champion_trial(tuned, dataclasses.replace(cfg, seasonal_hours=3), expert=True) == {
        "init": "dense", "finetune_lr": cfg.lr_min}
