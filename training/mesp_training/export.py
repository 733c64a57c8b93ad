"""ONNX export with the contract's names, dynamic batch axis and metadata,
verified against torch with onnxruntime before it is written."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from .contract import (
    HORIZON,
    INPUT_NAME,
    META_FAMILY,
    META_HORIZON,
    META_INPUT_LEN,
    META_MODEL_ID,
    OUTPUT_NAME,
)
from .runtime import inference_session
from .scaling import Forecaster

OPSET = 17


class ExportMismatch(RuntimeError):
    """The exported graph does not reproduce the torch model."""


def rename_tensor(g: onnx.GraphProto, old: str, new: str) -> None:
    """Renames tensor old to new throughout g: node inputs and outputs and
    the graph's declarations (cutting and joining graphs)."""
    for node in g.node:
        node.input[:] = [new if i == old else i for i in node.input]
        node.output[:] = [new if o == old else o for o in node.output]
    for v in [*g.input, *g.output, *g.value_info]:
        if v.name == old:
            v.name = new


def carry_identity(new: onnx.ModelProto, old: onnx.ModelProto) -> None:
    """Gives new (old's graph cut or joined) old's graph name and
    description, producer and metadata (the model id and lengths the
    server checks), and checks it."""
    new.graph.name, new.graph.doc_string = old.graph.name, old.graph.doc_string
    new.producer_name, new.producer_version = old.producer_name, old.producer_version
    del new.metadata_props[:]
    new.metadata_props.extend(old.metadata_props)
    onnx.checker.check_model(new)


def replace_checked(path: Path, graph: onnx.ModelProto, check: Callable[[str], None]) -> tuple[int, int]:
    """Writes graph over path only once check (given the new file's path,
    beside path) has passed (it raises on a mismatch: then path is left as
    it was); returns path's size before and after."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".onnx")
    os.close(fd)
    try:
        onnx.save(graph, tmp)
        check(tmp)
        os.chmod(tmp, 0o644)
        before = path.stat().st_size
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return before, path.stat().st_size


def probe_histories(models: Path, manifest: dict[str, Any]) -> list[np.ndarray]:
    """The set's own real histories that a graph rewritten without refitting
    is checked on (same_answers): one batch per length, from the trees'
    window to a whole day, each history's last n minutes."""
    from .count_trees import WINDOW
    from .invocation_train import set_histories

    rows = set_histories(models, manifest)
    return [np.stack([r[r >= 0][-n:] for r in rows if (r >= 0).sum() >= n]) for n in (WINDOW, 700, 1200, 1440)]


def same_answers(what: str, answers: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                 histories: Iterable[np.ndarray], *, atol: float, rtol: float) -> None:
    """Raises ExportMismatch unless, on every batch of histories, the old
    graph's and the new one's answers (``answers(x)``: old's, new's) agree
    within atol + rtol times the old's: a model set's graph rewritten
    without refitting (replace_checked's check) must answer as before."""
    for x in histories:
        want, got = answers(x)
        if got.shape != want.shape:
            raise ExportMismatch(f"{what}: shape {got.shape}, was {want.shape}")
        if not np.allclose(got, want, atol=atol, rtol=rtol):
            raise ExportMismatch(f"{what} differs by up to {np.abs(got - want).max()}")


def stamp(graph: onnx.ModelProto, model_id: str, input_len: int, family: str) -> onnx.ModelProto:
    """Writes the contract's metadata into an exported graph (the server
    checks it at load) and checks the graph."""
    del graph.metadata_props[:]
    for k, v in {META_MODEL_ID: model_id, META_INPUT_LEN: str(input_len), META_HORIZON: str(HORIZON),
                 META_FAMILY: family}.items():
        graph.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.checker.check_model(graph)
    return graph


def trace_graph(module: torch.nn.Module, probe: np.ndarray, outputs: list[str], opset: int = OPSET,
                input_name: str = INPUT_NAME) -> onnx.ModelProto:
    """A torch module (in eval mode) as an ONNX graph with one input
    (``counts`` unless named) and the named outputs, the batch axis dynamic:
    the in-graph part of a graph that others join (features before trees)."""
    fd, tmp = tempfile.mkstemp(suffix=".onnx")
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # eval() on the root: the exporter applies the root's mode to all.
            torch.onnx.export(module.eval(), (torch.from_numpy(probe),), tmp, input_names=[input_name],
                              output_names=outputs, dynamic_axes={n: {0: "batch"} for n in [input_name, *outputs]},
                              opset_version=opset, dynamo=False)
        return onnx.load(tmp)
    finally:
        os.remove(tmp)


def export(model: Forecaster, path: str | Path, model_id: str) -> None:
    path = Path(path)
    model = model.eval()
    length = model.input_len
    rng = np.random.default_rng(0)
    probe = np.concatenate([
        rng.poisson(5.0, (4, length)),
        np.zeros((1, length)),
        rng.poisson(500.0, (2, length)),
    ]).astype(np.float32)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".onnx")
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The classic exporter warns about every traced shape; the parity
            # check below is what tells whether the graph is right.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (torch.from_numpy(probe),), tmp, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, opset_version=OPSET,
                dynamo=False,
            )
            want = model(torch.from_numpy(probe)).numpy()
        graph = stamp(onnx.load(tmp), model_id, length, model.family)
        onnx.save(graph, tmp)
        sess = inference_session(tmp)
        got = sess.run([OUTPUT_NAME], {INPUT_NAME: probe})[0]
        if got.shape != (len(probe), HORIZON) or not np.allclose(got, want, rtol=1e-4, atol=1e-3):
            err = float(np.abs(got - want).max())
            raise ExportMismatch(f"{model_id}: ONNX output differs from torch by up to {err}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
