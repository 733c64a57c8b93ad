"""The KServe V2 endpoints, called by a V2 client nobody here wrote
(tritonclient[http]), answer exactly as /v1/forecast does."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest
import tritonclient.http as triton
from conftest import assert_whole_invocations, fixture_rows
from tritonclient.utils import InferenceServerException


def fixture_counts(n: int, minutes: int) -> np.ndarray:
    return np.stack(list(fixture_rows().values())[:n])[:, :minutes]


def v1(addr: str, counts: np.ndarray, outputs: list[str] | None = None) -> dict:
    req_body: dict = {"functions": [{"id": str(i), "counts": c.tolist()} for i, c in enumerate(counts)]}
    if outputs is not None:
        req_body["outputs"] = outputs
    body = json.dumps(req_body).encode()
    req = urllib.request.Request(f"http://{addr}/v1/forecast", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def test_v2_matches_v1(server: str) -> None:
    client = triton.InferenceServerClient(url=server)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mesp") and client.is_model_ready("dense")
    meta = client.get_model_metadata("mesp")
    assert meta["inputs"][0]["name"] == "counts" and meta["outputs"][0]["shape"] == [-1, 60]

    counts = fixture_counts(12, 1200)
    inp = triton.InferInput("counts", list(counts.shape), "FP32")
    inp.set_data_from_numpy(counts, binary_data=False)
    outs = [triton.InferRequestedOutput(n, binary_data=False) for n in ("forecast", "median", "cluster")]
    res = client.infer("mesp", [inp], outputs=outs)
    forecast, median, cluster = res.as_numpy("forecast"), res.as_numpy("median"), res.as_numpy("cluster")
    ref = v1(server, counts)["forecasts"]
    assert forecast.shape == (12, 60) and median.shape == (12, 60)
    for i, f in enumerate(ref):
        np.testing.assert_allclose(forecast[i], np.asarray(f["forecast"], np.float32), rtol=1e-6)
        np.testing.assert_allclose(median[i], np.asarray(f["median"], np.float32), rtol=1e-6)
        assert int(cluster[i]) == (f["cluster"])

    # A named model answers without routing: the dense model on every row,
    # its graph's level as it is (the routed medians round it to whole
    # invocations).
    res = client.infer("dense", [inp], outputs=[triton.InferRequestedOutput("forecast", binary_data=False)])
    # (rows the dense model answers, not blended by soft routing; a timer's
    # counts come from the timers' expert)
    dense_rows = [i for i, f in enumerate(ref) if f["kind"] == "dense" and "blend" not in f and "timer" not in f]
    assert dense_rows
    level = res.as_numpy("forecast").astype(np.float64)
    assert (level != np.round(level)).any(), "the per-model route rounded the level"
    trees = ref[dense_rows[0]].get("trees")
    if trees is not None:
        # The set's count trees blend into every routed answer; their own
        # route answers their level (on the dense p_invoke features too,
        # where they read them).
        assert all(ref[i]["trees"] == trees for i in dense_rows)
        res = client.infer(trees["model"], [inp], outputs=[triton.InferRequestedOutput("forecast", binary_data=False)])
        level = (1 - trees["weight"]) * level + trees["weight"] * res.as_numpy("forecast").astype(np.float64)
    assert_whole_invocations(np.array([ref[i]["median"] for i in dense_rows]), level[dense_rows])


@pytest.mark.parametrize(
    "model,tensor,message",
    [
        ("mesp", ("counts", [1, 5], "FP32", np.ones((1, 5), np.float32)), "counts"),
        ("mesp", ("counts", [1, 1200], "FP32", -np.ones((1, 1200), np.float32)), "negative"),
        ("mesp", ("values", [1, 1200], "FP32", np.ones((1, 1200), np.float32)), "counts"),
        ("mesp", ("counts", [1, 1200], "BYTES", np.array([["x"] * 1200], dtype=object)), "datatype"),
        ("nosuchmodel", ("counts", [1, 1200], "FP32", np.ones((1, 1200), np.float32)), "unknown model"),
    ],
)
def test_v2_bad_tensors_get_v2_errors(server: str, model: str, tensor: tuple, message: str) -> None:
    client = triton.InferenceServerClient(url=server)
    name, shape, dtype, data = tensor
    inp = triton.InferInput(name, shape, dtype)
    inp.set_data_from_numpy(data, binary_data=False)
    with pytest.raises(InferenceServerException, match=message):
        client.infer(model, [inp], outputs=[triton.InferRequestedOutput("forecast", binary_data=False)])
