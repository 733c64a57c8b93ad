"""Brings the count trees of a model set to the shared-features layout,
without refitting them.

Trees fitted on the dense p_invoke graph's features were exported with a
copy of that graph's feature operations and took the function's day
(manifest ``day: true``), so every trees graph (the count trees, the mean
trees, each quantile graph) computed the same day features again: about
as much ONNX Runtime time as its trees. In the current layout a trees
graph takes those features as its second input (``p_features``, as the
dense graph answers them) and the server computes them once per function
(manifest ``dense_features: true``). This cuts each such graph at its copy
of the features, makes the cut an input, and writes the file only if, fed
the set's dense graph's features, it answers as the old graph did on real
histories of the set's own functions (at most 1e-5 apart). The set's
dense p_invoke graph must be the one the trees were fitted on (their
``features_of`` sha256). The manifest is rewritten through the one
manifest writer; nothing else in the set changes.

    python scripts/share_dense_features.py --models models
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx.utils import Extractor

from mesp_training.contract import (
    DAY_INPUT_NAME,
    INPUT_NAME,
    OUTPUT_NAME,
    P_FEATURES_NAME,
    require_manifest,
    sha256_file,
    trees_entries,
    write_manifest,
)
from mesp_training.count_trees import run_trees
from mesp_training.export import (
    ExportMismatch,
    carry_identity,
    probe_histories,
    rename_tensor,
    replace_checked,
    same_answers,
)
from mesp_training.invocation import InvocationFeatures, pad_history
from mesp_training.runtime import inference_session

# The trees graphs' copy of the dense graph's features (count_trees
# exported it under this prefix).
CUT = f"day/{P_FEATURES_NAME}"
TOLERANCE = 1e-5


def shared(old: onnx.ModelProto) -> onnx.ModelProto:
    """old's graph without its feature operations: the counts and the
    dense graph's features in, the forecast out."""
    if CUT not in {o for n in old.graph.node for o in n.output}:
        raise ValueError(f"the graph has no {CUT!r} tensor: not trees that read the day")
    typed = onnx.ModelProto()
    typed.CopyFrom(old)
    n = InvocationFeatures().n_features
    if CUT not in {v.name for v in typed.graph.value_info}:
        # the extractor needs the cut's type; inference does not reach it
        typed.graph.value_info.append(onnx.helper.make_tensor_value_info(CUT, onnx.TensorProto.FLOAT, ["batch", n]))
    new = Extractor(typed).extract_model([INPUT_NAME, CUT], [OUTPUT_NAME])
    rename_tensor(new.graph, CUT, P_FEATURES_NAME)
    if DAY_INPUT_NAME in {i.name for i in new.graph.input}:
        raise ValueError("the trees read the day beyond their features: cannot share them")
    ends = {v.name for v in [*new.graph.input, *new.graph.output]}
    kept = [v for v in new.graph.value_info if v.name not in ends]
    del new.graph.value_info[:]
    new.graph.value_info.extend(kept)
    del new.opset_import[:]
    new.opset_import.extend(old.opset_import)
    carry_identity(new, old)
    return new


def rewrite(models: Path, entry: dict[str, Any], dense: Any, histories: list[np.ndarray]) -> tuple[int, int]:
    """Rewrites one trees file in place when its answers hold; returns its
    size before and after."""
    path = models / entry["file"]
    old = inference_session(str(path))

    def check(tmp: str) -> None:
        new = inference_session(tmp)
        if [i.name for i in new.get_inputs()] != [INPUT_NAME, P_FEATURES_NAME]:
            raise ExportMismatch(f"{entry['id']}: inputs {[i.name for i in new.get_inputs()]}")
        same_answers(f"{entry['id']}: the shared-features graph", lambda x: (run_trees(old, x), run_trees(new, x, dense)),
                     histories, atol=TOLERANCE, rtol=TOLERANCE)
    return replace_checked(path, shared(onnx.load(str(path))), check)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, required=True)
    a = ap.parse_args(argv)
    manifest = require_manifest(a.models)
    dp = manifest["dense"].get("p_invoke")
    todo = [e for _, e in trees_entries(manifest) if e.get("day")]
    if not todo:
        print("no trees read the day: nothing to do")
        return 0
    if dp is None:
        raise SystemExit("the set has no dense p_invoke graph to share the features of")
    for e in todo:
        if (e.get("features_of") or {}).get("sha256") != dp["sha256"]:
            raise SystemExit(f"{e['id']}: fitted on the features of another dense p_invoke graph than the set's "
                             f"{dp['file']}: fit the trees again")
    dense = inference_session(str(a.models / dp["file"]))
    histories = probe_histories(a.models, manifest)
    assert all(len(pad_history(h[0])) == 1440 for h in histories)
    done: dict[str, str] = {}
    for e in todo:
        if e["file"] not in done:
            before, after = rewrite(a.models, e, dense, histories)
            done[e["file"]] = sha256_file(a.models / e["file"])
            print(f"{e['file']}: same answers on {sum(map(len, histories))} histories, {before} -> {after} bytes",
                  flush=True)
        e["sha256"] = done[e["file"]]
        del e["day"]
        e["dense_features"] = True
    write_manifest(a.models, manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
