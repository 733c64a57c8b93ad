"""Brings a model set's tree graphs to the one-target layout, without
refitting them.

ONNX Runtime walks a one-target tree ensemble's trees across the rows of a
batch, and a many-target one's (or a binary classifier's, two classes) row
by row: the second is bound by each row's branches through every tree. The
current exports write one-target ensembles only: the count, mean and
quantile trees as one TreeEnsembleRegressor per minute ahead joined by a
Concat (``count_trees.one_target_ensembles``), and the dense p_invoke
graph's trees as the regression of their raw margin and a sigmoid
(``invocation_gbm.margin_trees_graph``). This rewrites the graphs of a set
exported before (60-target count trees, a TreeEnsembleClassifier for
p_invoke's minute 1) to that layout, writes each file only if it answers
as the old one did on real histories of the set's own functions (at most
1e-5 apart, relative, for counts; 1e-6 for probabilities), and rewrites the
manifest through the one manifest writer with the new files' sha256
(the trees' ``features_of`` included). Nothing else in the set changes.

    python scripts/one_target_trees.py --models models
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from mesp_training.contract import (
    P_FEATURES_NAME,
    P_INVOKE_OUTPUT_NAME,
    require_manifest,
    sha256_file,
    trees_entries,
    write_manifest,
)
from mesp_training.count_trees import one_target_ensembles, run_trees
from mesp_training.export import probe_histories, replace_checked, same_answers
from mesp_training.invocation import pad_history
from mesp_training.runtime import inference_session

COUNT_TOLERANCE = 1e-5
P_TOLERANCE = 1e-6


def split_count_trees(old: onnx.ModelProto) -> onnx.ModelProto:
    """old with each many-target TreeEnsembleRegressor as one-target ones."""
    new = onnx.ModelProto()
    new.CopyFrom(old)
    nodes = [m for n in old.graph.node for m in one_target_ensembles(n)]
    del new.graph.node[:]
    new.graph.node.extend(nodes)
    return new


def margin_p_invoke(old: onnx.ModelProto) -> onnx.ModelProto:
    """old's binary TreeEnsembleClassifier (logistic, one class's weights)
    as the TreeEnsembleRegressor of its raw margin and a sigmoid, in place
    of the classifier and the nodes that took class 1's column of its
    probabilities for minute 1 (``join_p1``)."""
    new = onnx.ModelProto()
    new.CopyFrom(old)
    g = new.graph
    classifiers = [n for n in g.node if n.op_type == "TreeEnsembleClassifier"]
    if len(classifiers) != 1:
        raise ValueError(f"{len(classifiers)} TreeEnsembleClassifier nodes: not a dense p_invoke graph to rewrite")
    c = classifiers[0]
    a = {x.name: helper.get_attribute_value(x) for x in c.attribute}
    if a.get("post_transform") != b"LOGISTIC" or list(a.get("classlabels_int64s", [])) != [0, 1] or set(
            a["class_ids"]) != {0} or "base_values" in a:
        raise ValueError("not a binary logistic classifier of one class's weights")
    regressor = {k: v for k, v in a.items() if k.startswith("nodes_")}
    regressor |= {"n_targets": 1, "aggregate_function": "SUM", "post_transform": "NONE",
                  "target_ids": a["class_ids"], "target_nodeids": a["class_nodeids"],
                  "target_treeids": a["class_treeids"], "target_weights": a["class_weights"]}
    # the classifier's outputs and every node computed from them (the
    # class-1 column taken for minute 1, a label nobody reads) go; the
    # margin's sigmoid answers join_p1 in their place
    tail, replaced = set(c.output), False
    kept: list[onnx.NodeProto] = []
    for n in g.node:
        if n is c:
            kept.append(helper.make_node("TreeEnsembleRegressor", list(c.input), ["gbm_variable"],
                                         domain="ai.onnx.ml", **regressor))
            kept.append(helper.make_node("Sigmoid", ["gbm_variable"], ["join_p1"]))
        elif set(n.input) & tail:
            # join_p1 is the sigmoid's now: what reads it stays
            tail.update(o for o in n.output if o != "join_p1")
            replaced = replaced or "join_p1" in n.output
        else:
            kept.append(n)
    if not replaced:
        raise ValueError("minute 1 (join_p1) is not computed from the classifier")
    if any(set(n.input) & tail for n in kept) or {o.name for o in g.output} & tail:
        raise ValueError("the graph reads the classifier's output beyond minute 1")
    del g.node[:]
    g.node.extend(kept)
    used = {i for n in g.node for i in n.input}
    inits = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(inits)
    onnx.checker.check_model(new)
    return new


def _checked_counts(path: Path, graph: onnx.ModelProto, dense: Any, histories: list[np.ndarray]) -> tuple[int, int]:
    old = inference_session(str(path))

    def check(tmp: str) -> None:
        new = inference_session(tmp)
        same_answers(f"{path.name}: the one-target graph", lambda x: (run_trees(old, x, dense), run_trees(new, x, dense)),
                     histories, atol=COUNT_TOLERANCE, rtol=COUNT_TOLERANCE)
    return replace_checked(path, graph, check)


def _checked_p_invoke(path: Path, graph: onnx.ModelProto, histories: list[np.ndarray]) -> tuple[int, int]:
    old = inference_session(str(path))

    def check(tmp: str) -> None:
        new = inference_session(tmp)

        def out(sess: Any, name: str, x: np.ndarray) -> np.ndarray:
            got: np.ndarray = sess.run([name], {sess.get_inputs()[0].name: x})[0]
            return got
        # the features exactly (the trees graphs read them), minute 1 within P_TOLERANCE
        same_answers(f"{path.name}: the margin graph's features",
                     lambda x: (out(old, P_FEATURES_NAME, x), out(new, P_FEATURES_NAME, x)), histories, atol=0, rtol=0)
        same_answers(f"{path.name}: the margin graph's p_invoke",
                     lambda x: (out(old, P_INVOKE_OUTPUT_NAME, x), out(new, P_INVOKE_OUTPUT_NAME, x)), histories,
                     atol=P_TOLERANCE, rtol=0)
    return replace_checked(path, graph, check)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, required=True)
    a = ap.parse_args(argv)
    manifest = require_manifest(a.models)
    dp = manifest["dense"].get("p_invoke")
    # the p_invoke graph takes the histories padded to a day
    histories = probe_histories(a.models, manifest)
    days = [np.stack([pad_history(r) for r in h]) for h in histories]
    # every trees graph is checked against the dense graph it reads the
    # features of, before that graph is rewritten (its features do not
    # change; its minute 1 does, within P_TOLERANCE)
    dense = inference_session(str(a.models / dp["file"])) if dp is not None else None
    trees = [e for _, e in trees_entries(manifest)]
    done: dict[str, str] = {}
    for e in trees:
        f = e["file"]
        if f not in done:
            old = onnx.load(str(a.models / f))
            new = split_count_trees(old)
            if len(new.graph.node) == len(old.graph.node):  # nothing to split
                done[f] = e["sha256"]
                print(f"{f}: one-target already", flush=True)
                continue
            before, after = _checked_counts(a.models / f, new, dense, histories)
            done[f] = sha256_file(a.models / f)
            print(f"{f}: same answers on {sum(map(len, histories))} histories, {before} -> {after} bytes", flush=True)
        e["sha256"] = done[f]
    p_graph = onnx.load(str(a.models / dp["file"])) if dp is not None else None
    if p_graph is not None and any(n.op_type == "TreeEnsembleClassifier" for n in p_graph.graph.node):
        old_sha = dp["sha256"]
        before, after = _checked_p_invoke(a.models / dp["file"], margin_p_invoke(p_graph), days)
        dp["sha256"] = sha256_file(a.models / dp["file"])
        for e in trees:
            if (e.get("features_of") or {}).get("sha256") == old_sha:
                e["features_of"]["sha256"] = dp["sha256"]
        print(f"{dp['file']}: p_invoke within {P_TOLERANCE} on {sum(map(len, histories))} histories, "
              f"{before} -> {after} bytes", flush=True)
    write_manifest(a.models, manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
