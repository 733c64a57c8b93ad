"""A new kind of pattern gets its own cluster and expert; the K old experts
stay byte-identical (issue: extensibility).

The novel functions are built from real fixture rows by a documented
transformation: a batch job that wakes every 97 minutes and runs for 5, at
the real function's mean rate (its daily mean per minute, plus one, rounded,
in the first 5 minutes of every 97; zero elsewhere). No cluster of the
shipped models covers that shape: the test checks it through the server's
router (every such pattern must come back out of distribution).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import numpy as np
from conftest import ROOT, fixture_rows, mesp_bin, shipped_models

from mesp_training.contract import sha256_file
from mesp_training.pipeline import train
from mesp_training.search import SearchConfig

PERIOD, ACTIVE = 97, 5


def novel_rows() -> list[tuple[str, np.ndarray]]:
    rows = [x.astype(float) for x in fixture_rows().values()]
    gate = (np.arange(1440) % PERIOD) < ACTIVE
    out = []
    for x in rows:
        y = np.round(x.mean() + 1) * gate.astype(float)
        out.append((hashlib.sha256(",".join(str(int(v)) for v in y).encode()).hexdigest(), y))
    return out


def post(addr: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else b""
    req = urllib.request.Request(f"http://{addr}{path}", data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def forecast(addr: str, rows: list[tuple[str, np.ndarray]], minutes: int = 1440) -> list[dict]:
    return post(addr, "/v1/forecast", {"functions": [{"id": i, "counts": c[:minutes].tolist()} for i, c in rows]})[
        "forecasts"]


def write_csv(path: Path, rows: list[tuple[str, np.ndarray]]) -> None:
    with gzip.open(path, "wt") as f:
        f.write("HashOwner,HashApp,HashFunction,Trigger," + ",".join(str(i) for i in range(1, 1441)) + "\n")
        for fid, c in rows:
            f.write(f"{fid},{fid},{fid},timer," + ",".join(str(int(v)) for v in c) + "\n")


def test_add_cluster_and_expert_without_retraining_the_others(tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(shipped_models(), models, ignore=shutil.ignore_patterns(".work"))
    before_manifest = json.loads((models / "manifest.json").read_text())
    before_files = {p.name: sha256_file(p) for p in models.glob("*.onnx")}

    rows = novel_rows()
    learn, held_out = rows[0::2], rows[1::2]
    ood_dir = tmp_path / "ood"
    proc = subprocess.Popen([str(mesp_bin()), "serve", "--models", str(models), "--addr", "127.0.0.1:0",
                             "--admin-token", "t0k", "--ood-dir", str(ood_dir)], stderr=subprocess.PIPE, text=True)
    try:
        addr = None
        assert proc.stderr is not None
        for line in proc.stderr:
            if "listening on http://" in line:
                addr = line.rsplit("http://", 1)[1].strip()
                break
        assert addr
        first = forecast(addr, learn)
        ood_before = [f for f in first if f["out_of_distribution"]]
        assert len(ood_before) >= 0.9 * len(learn), f"only {len(ood_before)} of {len(learn)} novel patterns are OOD"
        held_before = {f["id"]: f for f in forecast(addr, held_out)}

        # Grow the new cluster from the OOD log, train only its expert.
        added = subprocess.run([str(mesp_bin()), "cluster", "add", "--from", str(ood_dir), "--models", str(models),
                                "--k", "1"], check=True, capture_output=True, text=True).stdout.strip()
        new_ids = [int(i) for i in added.split(",")]
        assert new_ids and min(new_ids) > max(e["cluster"] for e in before_manifest["experts"])
        cfg = SearchConfig(families=["nbeats"], input_lens=[120, 240], trials_per_cluster=3, minutes_per_cluster=1.5,
                           epochs=12, max_train_windows=20000, train_stride=5, batch_size=128)
        train(models, cfg, clusters=new_ids, work=tmp_path / "work")
        post(addr, "/v1/admin/reload", token="t0k")

        # (a) the K old experts, the dense model and their entries are untouched.
        after_manifest = json.loads((models / "manifest.json").read_text())
        for name, digest in before_files.items():
            assert sha256_file(models / name) == digest, f"{name} changed"
        assert after_manifest["dense"] == before_manifest["dense"]
        old = {e["cluster"]: e for e in before_manifest["experts"]}
        for e in after_manifest["experts"]:
            if e["cluster"] in old:
                assert e == old[e["cluster"]]
        new = [e for e in after_manifest["experts"] if e["cluster"] in new_ids]
        assert len(new) == len(new_ids)

        # (b) the held-out novel functions that were OOD now go to a new cluster.
        was_ood = [fid for fid, f in held_before.items() if f["out_of_distribution"]]
        now = {f["id"]: f for f in forecast(addr, held_out)}
        moved = [fid for fid in was_ood if now[fid]["cluster"] in new_ids and not now[fid]["out_of_distribution"]]
        assert len(moved) >= 0.8 * len(was_ood), (
            f"{len(moved)} of {len(was_ood)} routed to {new_ids}: "
            f"{[(now[f]['cluster'], now[f]['distance'], now[f]['out_of_distribution']) for f in was_ood[:5]]}")
    finally:
        proc.terminate()
        proc.wait(timeout=20)

    # (c) backtest on the held-out novel functions: the new expert beats the
    # dense fallback on the functions routed to it.
    data = tmp_path / "novel.csv.gz"
    write_csv(data, held_out)
    out = tmp_path / "eval.json"
    subprocess.run([str(mesp_bin()), "eval", "--data", str(data), "--models", str(models), "--out", str(out)],
                   check=True, capture_output=True, cwd=ROOT)
    doc = json.loads(out.read_text())
    routed = [c for c in doc["per_cluster"] if c["cluster"] in new_ids]
    assert routed, doc["per_cluster"]
    for c in routed:
        assert c["mesp"]["mae"] < c["dense"]["mae"], c
