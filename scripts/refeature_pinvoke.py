"""Gives every p_invoke model of a model set the current feature graph of
``mesp_training.invocation`` and the current layout, without retraining it.

A p_invoke graph is the features, then the model on them (the MLP and the
trees). When the feature code computes the same values by cheaper
operations, the trained part can keep its weights: this cuts each graph at
its features tensor, joins a fresh export of the feature module in front of
the rest, and writes the file only if it answers as the old one did on real
histories of the set's own functions (at most 1e-5 apart).

The layout: the dense graph answers its features as a second output
(``p_features``), and an expert that continues the dense trees takes those
features and the dense minute 1 instead of the counts (its graph is the
part after the cut, with no feature operations). Sets written before that
(the features tensor named ``features``, experts fed the counts) are
brought to it the same way. The manifest's sha256 of each rewritten file is
updated through the one manifest writer; nothing else in the set changes.

    python scripts/refeature_pinvoke.py --models models
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import compose
from onnx.utils import Extractor

from mesp_training.contract import (
    DENSE_P1_INPUT_NAME,
    INPUT_NAME,
    P_FEATURES_NAME,
    P_INVOKE_OUTPUT_NAME,
    require_manifest,
    sha256_file,
    write_manifest,
)
from mesp_training.export import OPSET, ExportMismatch, carry_identity, rename_tensor, replace_checked
from mesp_training.invocation import InvocationFeatures
from mesp_training.invocation_train import set_histories
from mesp_training.runtime import inference_session

# The tensor between the features and the model in a p_invoke graph with
# trees (invocation_gbm.build_graph names it P_FEATURES_NAME; sets exported
# before the dense graph answered its features named it OLD_FEATURES; a
# graph of the MLP family alone has neither and is refused).
OLD_FEATURES = "features"
PREFIX = "feat_"
TOLERANCE = 1e-5


def feature_graph(probe: np.ndarray) -> onnx.ModelProto:
    fd, tmp = tempfile.mkstemp(suffix=".onnx")
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(InvocationFeatures().eval(), (torch.from_numpy(probe),), tmp,
                              input_names=[INPUT_NAME], output_names=[P_FEATURES_NAME],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, P_FEATURES_NAME: {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
        return onnx.load(tmp)
    finally:
        os.remove(tmp)


def features_tensor(g: onnx.GraphProto) -> str:
    """The name of the cut between g's features and its model."""
    tensors = {o for n in g.node for o in n.output} | {i.name for i in g.input}
    for name in (P_FEATURES_NAME, OLD_FEATURES):
        if name in tensors:
            return name
    raise ValueError(f"the graph has no {P_FEATURES_NAME!r} tensor: not a p_invoke graph of this project")


def refeature(old: onnx.ModelProto, features: onnx.ModelProto) -> onnx.ModelProto:
    """old's graph downstream of its features tensor, in the current layout:
    fed by features (and answering them) for a graph of its own, fed the
    dense graph's features for an expert that continues the dense trees."""
    cut = features_tensor(old.graph)
    # The extractor needs the cut's type; shape inference does not reach it
    # through the feature operations.
    typed = onnx.ModelProto()
    typed.CopyFrom(old)
    n = InvocationFeatures().n_features
    if cut not in {v.name for v in [*typed.graph.value_info, *typed.graph.input]}:
        typed.graph.value_info.append(onnx.helper.make_tensor_value_info(cut, onnx.TensorProto.FLOAT, ["batch", n]))
    # An expert that continues the dense trees keeps its dense_p1 input.
    continues = DENSE_P1_INPUT_NAME in {i.name for i in old.graph.input}
    rest = Extractor(typed).extract_model([cut] + [DENSE_P1_INPUT_NAME] * continues, [P_INVOKE_OUTPUT_NAME])
    rename_tensor(rest.graph, cut, P_FEATURES_NAME)
    if continues:
        joined = rest
    else:
        front = compose.add_prefix(features, PREFIX, rename_inputs=False)
        front.ir_version = rest.ir_version
        joined = compose.merge_models(front, rest, io_map=[(PREFIX + P_FEATURES_NAME, P_FEATURES_NAME)])
        # The join names the cut after the front's output; give it back its
        # own name, so that the result can be cut again the same way.
        rename_tensor(joined.graph, PREFIX + P_FEATURES_NAME, P_FEATURES_NAME)
        joined.graph.output.append(
            onnx.helper.make_tensor_value_info(P_FEATURES_NAME, onnx.TensorProto.FLOAT, ["batch", n]))
    # Types of the graph's own inputs and outputs are in their declarations.
    ends = {v.name for v in [*joined.graph.input, *joined.graph.output]}
    kept = [v for v in joined.graph.value_info if v.name not in ends]
    del joined.graph.value_info[:]
    joined.graph.value_info.extend(kept)
    # One import per domain (the join appends the front's to the rest's).
    opsets: dict[str, int] = {}
    for o in joined.opset_import:
        opsets[o.domain] = max(o.version, opsets.get(o.domain, 0))
    del joined.opset_import[:]
    joined.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in opsets.items())
    # The old graph's name and description (the join would nest them).
    carry_identity(joined, old)
    return joined


def answers(path: str, x: np.ndarray, features: np.ndarray) -> np.ndarray:
    """path's p_invoke on histories x, whose features are features: a
    graph is fed what it takes."""
    sess = inference_session(path)
    takes = {i.name for i in sess.get_inputs()}
    feeds = {INPUT_NAME: x} if INPUT_NAME in takes else {P_FEATURES_NAME: features}
    if DENSE_P1_INPUT_NAME in takes:
        # any dense minute 1 in (0, 1): the same for the old and the new graph
        feeds[DENSE_P1_INPUT_NAME] = np.linspace(0.001, 0.999, len(x), dtype=np.float32)[:, None]
    out: np.ndarray = sess.run([P_INVOKE_OUTPUT_NAME], feeds)[0]
    return out


def rewrite(models: Path, entry: dict[str, Any], probe: np.ndarray, features: onnx.ModelProto,
            values: np.ndarray) -> tuple[int, int]:
    """Rewrites one model file in place when its answers hold; returns its
    size before and after."""
    path = models / entry["file"]
    old = onnx.load(str(path))
    new = refeature(old, features)
    want = answers(str(path), probe, values)

    def check(tmp: str) -> None:
        got = answers(tmp, probe, values)
        if got.shape != want.shape or not np.allclose(got, want, atol=TOLERANCE, rtol=0):
            raise ExportMismatch(f"{entry['id']}: the refeatured graph differs by up to {np.abs(got - want).max()}")
    sizes = replace_checked(path, new, check)
    entry["sha256"] = sha256_file(path)
    return sizes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, required=True)
    a = ap.parse_args(argv)
    manifest = require_manifest(a.models)
    probe = set_histories(a.models, manifest)
    features = feature_graph(probe[:2])
    with torch.no_grad():
        values = InvocationFeatures()(torch.from_numpy(probe)).numpy()
    entries = [manifest["dense"].get("p_invoke")] + [e.get("p_invoke") for e in manifest["experts"]]
    for entry in (e for e in entries if e is not None):
        before, after = rewrite(a.models, entry, probe, features, values)
        print(f"{entry['file']}: same answers on {len(probe)} histories, {before} -> {after} bytes", flush=True)
    write_manifest(a.models, manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
