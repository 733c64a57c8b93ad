"""Gives every p_invoke model of a model set the current feature graph of
``mesp_training.invocation`` without retraining it.

A p_invoke graph is the features, then the model on them (the MLP and the
trees). When the feature code computes the same values by cheaper
operations, the trained part can keep its weights: this cuts each graph at
its ``features`` tensor, joins a fresh export of the feature module in
front of the rest, and writes the file only if it answers as the old one
did on real histories of the set's own functions (at most 1e-5 apart).
The manifest's sha256 of each rewritten file is updated through the one
manifest writer; nothing else in the set changes.

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
    P_INVOKE_OUTPUT_NAME,
    read_cluster_parquet,
    read_clusters,
    read_manifest,
    sha256_file,
    write_manifest,
)
from mesp_training.export import OPSET, ExportMismatch
from mesp_training.invocation import InvocationFeatures
from mesp_training.invocation_train import probe_rows
from mesp_training.runtime import inference_session

# The tensor between the features and the model in a p_invoke graph with
# trees (invocation_gbm.build_graph names it so; a graph of the MLP family
# alone has no such name and is refused).
FEATURES = "features"
PREFIX = "feat_"
TOLERANCE = 1e-5


def feature_graph(probe: np.ndarray) -> onnx.ModelProto:
    fd, tmp = tempfile.mkstemp(suffix=".onnx")
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(InvocationFeatures().eval(), (torch.from_numpy(probe),), tmp,
                              input_names=[INPUT_NAME], output_names=[FEATURES],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, FEATURES: {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
        return onnx.load(tmp)
    finally:
        os.remove(tmp)


def refeature(old: onnx.ModelProto, features: onnx.ModelProto) -> onnx.ModelProto:
    """old's graph downstream of its features tensor, fed by features."""
    if FEATURES not in {o for n in old.graph.node for o in n.output}:
        raise ValueError(f"the graph has no {FEATURES!r} tensor: not a p_invoke graph of this project")
    # The extractor needs the cut's type; shape inference does not reach it
    # through the feature operations.
    typed = onnx.ModelProto()
    typed.CopyFrom(old)
    if FEATURES not in {v.name for v in typed.graph.value_info}:
        n = InvocationFeatures().n_features
        typed.graph.value_info.append(
            onnx.helper.make_tensor_value_info(FEATURES, onnx.TensorProto.FLOAT, ["batch", n]))
    # An expert that continues the dense trees keeps its dense_p1 input.
    cut = [FEATURES] + [i.name for i in old.graph.input if i.name != INPUT_NAME]
    rest = Extractor(typed).extract_model(cut, [P_INVOKE_OUTPUT_NAME])
    front = compose.add_prefix(features, PREFIX, rename_inputs=False)
    front.ir_version = rest.ir_version
    joined = compose.merge_models(front, rest, io_map=[(PREFIX + FEATURES, FEATURES)])
    # The join names the cut after the front's output; give it back its own
    # name, so that the result can be cut again the same way.
    for node in joined.graph.node:
        node.input[:] = [FEATURES if i == PREFIX + FEATURES else i for i in node.input]
        node.output[:] = [FEATURES if o == PREFIX + FEATURES else o for o in node.output]
    # One import per domain (the join appends the front's to the rest's).
    opsets: dict[str, int] = {}
    for o in joined.opset_import:
        opsets[o.domain] = max(o.version, opsets.get(o.domain, 0))
    del joined.opset_import[:]
    joined.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in opsets.items())
    # The old graph's name and description (the join would nest them).
    joined.graph.name, joined.graph.doc_string = old.graph.name, old.graph.doc_string
    joined.producer_name, joined.producer_version = old.producer_name, old.producer_version
    del joined.metadata_props[:]
    joined.metadata_props.extend(old.metadata_props)
    onnx.checker.check_model(joined)
    return joined


def answers(path: str, x: np.ndarray) -> np.ndarray:
    sess = inference_session(path)
    feeds = {INPUT_NAME: x}
    if DENSE_P1_INPUT_NAME in {i.name for i in sess.get_inputs()}:
        # any dense minute 1 in (0, 1): the same for the old and the new graph
        feeds[DENSE_P1_INPUT_NAME] = np.linspace(0.001, 0.999, len(x), dtype=np.float32)[:, None]
    out: np.ndarray = sess.run([P_INVOKE_OUTPUT_NAME], feeds)[0]
    return out


def rewrite(models: Path, entry: dict[str, Any], probe: np.ndarray, features: onnx.ModelProto) -> tuple[int, int]:
    """Rewrites one model file in place when its answers hold; returns its
    size before and after."""
    path = models / entry["file"]
    old = onnx.load(str(path))
    new = refeature(old, features)
    fd, tmp = tempfile.mkstemp(dir=models, prefix=".tmp-", suffix=".onnx")
    os.close(fd)
    try:
        onnx.save(new, tmp)
        want, got = answers(str(path), probe), answers(tmp, probe)
        if got.shape != want.shape or not np.allclose(got, want, atol=TOLERANCE, rtol=0):
            raise ExportMismatch(f"{entry['id']}: the refeatured graph differs by up to {np.abs(got - want).max()}")
        os.chmod(tmp, 0o644)
        before = path.stat().st_size
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    entry["sha256"] = sha256_file(path)
    return before, path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, required=True)
    a = ap.parse_args(argv)
    manifest = read_manifest(a.models)
    if manifest is None:
        raise SystemExit(f"{a.models}/manifest.json missing")
    cs = read_clusters(a.models / manifest["clusters"])
    series = np.concatenate([read_cluster_parquet(a.models / cl["parquet"])[1] for cl in cs["clusters"]])
    # Many real histories of several lengths, padded ones among them.
    probe = np.concatenate([probe_rows(series, 64, seed) for seed in range(4)])
    features = feature_graph(probe[:2])
    entries = [manifest["dense"].get("p_invoke")] + [e.get("p_invoke") for e in manifest["experts"]]
    for entry in (e for e in entries if e is not None):
        before, after = rewrite(a.models, entry, probe, features)
        print(f"{entry['file']}: same answers on {len(probe)} histories, {before} -> {after} bytes", flush=True)
    write_manifest(a.models, manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
