"""The files shared with the Go side (mirrors Go package ``manifest``).

* ``clusters.json``: written by ``mesp cluster``; K-Shape centroids, sizes,
  thresholds, members.
* ``cluster-<id>.parquet``: columns ``function`` (string) and ``counts``
  (list<float32>, one value per minute).
* ``manifest.json``: written here; which ONNX file serves which cluster.
* ONNX graphs: input ``counts`` float32 [batch, input_len] of raw counts,
  output ``forecast`` float32 [batch, 60] of non-negative counts, custom
  metadata ``mesp.model_id``, ``mesp.input_len``, ``mesp.horizon``,
  ``mesp.family``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

VERSION = 1
HORIZON = 60
INPUT_NAME = "counts"
OUTPUT_NAME = "forecast"
# The p_invoke graphs (Go: manifest.PInvokeOutputName, PInvokeInputLen,
# Missing): the same input, a day of minutes, unknown minutes MISSING on the
# left; output [batch, 60] probabilities.
P_INVOKE_OUTPUT_NAME = "p_invoke"
P_INVOKE_INPUT_LEN = 1440
# An expert's p_invoke graph whose trees continue the dense model's (its
# manifest entry's "base") holds only the trees it added and takes no counts:
# its inputs are the dense graph's second output P_FEATURES_NAME [batch, F]
# (the features of the same histories, computed once per request) and
# DENSE_P1_INPUT_NAME [batch, 1], the dense p_invoke model's minute 1 (Go:
# manifest.PFeaturesName, manifest.DenseP1InputName).
DENSE_P1_INPUT_NAME = "dense_p1"
P_FEATURES_NAME = "p_features"
# Count trees of an older layout (manifest entry "day": true) took a second
# input, DAY_INPUT_NAME [batch, P_INVOKE_INPUT_LEN], and computed the dense
# p_invoke features of it themselves; scripts/share_dense_features.py reads
# them. Trees now take those features (P_FEATURES_NAME, entry
# "dense_features": true).
DAY_INPUT_NAME = "day"
MISSING = -1.0
META_MODEL_ID = "mesp.model_id"
META_INPUT_LEN = "mesp.input_len"
META_HORIZON = "mesp.horizon"
META_FAMILY = "mesp.family"
TEST_PERCENT = 20


def whole_invocations(level: np.ndarray) -> np.ndarray:
    """A count forecast as served: rounded to the nearest whole number of
    invocations (halves up, never below zero), as Go's
    forecast.WholeInvocations does. The count models are fitted to absolute
    error, whose best point forecast of a count is a whole number."""
    whole: np.ndarray = np.maximum(np.floor(np.asarray(level, np.float64) + 0.5), 0.0)
    return whole


def is_test(function_id: str) -> bool:
    """The fixed train/test split of Go's trace.IsTest."""
    h = hashlib.sha256(function_id.encode()).digest()
    return int.from_bytes(h[:8], "big") % 100 < TEST_PERCENT


def is_validation(function_id: str, percent: int = 20) -> bool:
    """Held-out validation functions inside the training part (other hash bits)."""
    h = hashlib.sha256(function_id.encode()).digest()
    return int.from_bytes(h[8:16], "big") % 100 < percent


def read_clusters(path: str | Path) -> dict[str, Any]:
    with open(path) as f:
        c: dict[str, Any] = json.load(f)
    if c.get("version") != VERSION or not c.get("clusters"):
        raise ValueError(f"{path}: not a version-{VERSION} clusters.json with clusters")
    for cl in c["clusters"]:
        if len(cl["centroid"]) != c["length"]:
            raise ValueError(f"{path}: cluster {cl['id']} centroid length {len(cl['centroid'])}")
    return c


def read_cluster_parquet(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Function ids and a float32 [n, minutes] matrix of counts."""
    table = pq.read_table(path, columns=["function", "counts"])
    ids = table.column("function").to_pylist()
    counts = table.column("counts").combine_chunks()
    n = len(ids)
    values = counts.values.to_numpy(zero_copy_only=False).astype(np.float32)
    if n == 0:
        return ids, np.zeros((0, 0), np.float32)
    if values.size % n:
        raise ValueError(f"{path}: ragged counts")
    return ids, values.reshape(n, -1)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Temp file + rename, so the server's watcher never reads half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-" + path.name)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())  # durable before it is visible under the real name
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_manifest(models: str | Path) -> dict[str, Any] | None:
    p = Path(models) / "manifest.json"
    if not p.exists():
        return None
    with open(p) as f:
        manifest: dict[str, Any] = json.load(f)
    return manifest


def require_manifest(models: str | Path) -> dict[str, Any]:
    """A set's manifest, or exit naming it missing (for the commands that
    rewrite a set in place)."""
    m = read_manifest(models)
    if m is None:
        raise SystemExit(f"{models}/manifest.json missing")
    return m


SERVE = ("expert", "dense")


def write_manifest(models: str | Path, manifest: dict[str, Any]) -> None:
    """The one writer of manifest.json: checks the whole set first (the
    Go loader's rules: version and horizon, the pinned clusters file, every
    model file's sha256, input lengths, where each expert serves, the
    p_invoke entries and the threshold), then writes it atomically. A set
    that does not check is refused and the old manifest stays."""
    models = Path(models)
    problems = _manifest_problems(models, manifest)
    if problems:
        raise ValueError(f"{models}/manifest.json not written: " + "; ".join(problems))
    write_json_atomic(models / "manifest.json", manifest)


def trees_entries(m: dict[str, Any]) -> list[tuple[str, Any]]:
    """The manifest's trees graphs, each entry with its key: the count
    trees, the mean trees and each quantile level, those present."""
    pairs = [("trees", m.get("trees")), ("mean", m.get("mean"))] + [
        (f"quantiles[{k}]", q) for k, q in enumerate(m.get("quantiles") or [])]
    return [(key, e) for key, e in pairs if e is not None]


def _manifest_problems(models: Path, m: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if m.get("version") != VERSION or m.get("horizon") != HORIZON:
        out.append(f"version {m.get('version')} horizon {m.get('horizon')}, want {VERSION} and {HORIZON}")
    clusters = models / str(m.get("clusters", ""))
    if not clusters.is_file():
        return out + [f"clusters file {m.get('clusters')!r} missing"]
    if m.get("clusters_sha256") != sha256_file(clusters):
        out.append(f"clusters_sha256 does not match {clusters.name}")
    known = {c["id"] for c in read_clusters(clusters)["clusters"]}

    def model(where: str, e: Any, input_len: int | None = None) -> None:
        if not isinstance(e, dict) or not all(isinstance(e.get(k), str) and e[k] for k in ("id", "file", "family")):
            out.append(f"{where}: an entry needs id, file and family")
            return
        f = models / e["file"]
        if not f.is_file():
            out.append(f"{where}: {e['file']} missing")
        elif e.get("sha256") != sha256_file(f):
            out.append(f"{where}: sha256 does not match {e['file']}")
        n = e.get("input_len")
        if not isinstance(n, int) or not 0 < n <= P_INVOKE_INPUT_LEN or (input_len is not None and n != input_len):
            out.append(f"{where}: input_len {n!r}")

    model("dense", m.get("dense"))
    dense_p = isinstance(m.get("dense"), dict) and "p_invoke" in m["dense"]
    if dense_p:
        model("dense.p_invoke", m["dense"]["p_invoke"], P_INVOKE_INPUT_LEN)
        if "base" in m["dense"]["p_invoke"]:
            out.append("dense.p_invoke: the dense p_invoke model cannot continue another (base)")
    seen: set[int] = set()
    for e in m.get("experts", []):
        cid = e.get("cluster") if isinstance(e, dict) else None
        where = f"expert of cluster {cid}"
        if not isinstance(cid, int) or cid not in known or cid in seen:
            out.append(f"{where}: not one cluster of {clusters.name}, once")
            continue
        seen.add(cid)
        model(where, e)
        if e.get("serve") not in SERVE:
            out.append(f"{where}: serve {e.get('serve')!r}, want one of {SERVE}")
        p = e.get("p_invoke")
        if p is not None:
            model(f"{where}: p_invoke", p, P_INVOKE_INPUT_LEN)
            if p.get("serve") not in SERVE:
                out.append(f"{where}: p_invoke serve {p.get('serve')!r}, want one of {SERVE}")
            if not dense_p:
                out.append(f"{where}: a p_invoke expert without a dense p_invoke model")
            elif "base" in p and p["base"] != m["dense"]["p_invoke"].get("id"):
                out.append(f"{where}: p_invoke continues {p['base']!r}, not the dense p_invoke model")
    rt = m.get("routing")
    if rt is not None and not (isinstance(rt.get("soft_tau"), int | float) and rt["soft_tau"] > 0
                               and isinstance(rt.get("min_weight"), int | float) and 0 <= rt["min_weight"] <= 0.5):
        out.append(f"routing soft_tau {rt.get('soft_tau')!r} and min_weight {rt.get('min_weight')!r}, "
                   "want soft_tau > 0 and min_weight in [0, 0.5]")
    for key, tr in trees_entries(m):
        if isinstance(tr, dict) and tr.get("day"):
            out.append(f"{key}: trees that read the day (an older layout): scripts/share_dense_features.py "
                       "brings the set to the shared-features layout")
        if isinstance(tr, dict) and not isinstance(tr.get("dense_features", False), bool):
            out.append(f"{key} dense_features {tr.get('dense_features')!r}, want true or false")
        if isinstance(tr, dict) and tr.get("dense_features") and not (tr.get("features_of") or {}).get("sha256"):
            out.append(f"{key}: reads the dense p_invoke features and does not say of which graph (features_of)")
    for key in ("trees", "mean"):  # the count trees and the mean trees: one shape
        tr = m.get(key)
        if tr is None:
            continue
        model(key, tr)
        if isinstance(tr, dict) and not (isinstance(tr.get("weight"), int | float) and 0 < tr["weight"] <= 1):
            out.append(f"{key} weight {tr.get('weight')!r}, want a weight in (0, 1]")
        if isinstance(tr, dict) and "p_invoke" in tr:
            out.append(f"{key}: count trees have no p_invoke model")
        if isinstance(tr, dict) and (tr.get("hour", False) not in (True, False) or (key != "mean" and tr.get("hour"))):
            out.append(f"{key} hour {tr.get('hour')!r}: only the mean trees answer the hour (true or false)")
        if isinstance(tr, dict) and "scale" in tr:
            out.append(f"{key} scale {tr['scale']!r}: the expected count's factor is gone; "
                       "mesp choose-volume fits the manifest's expected share instead")
    sl = m.get("silence")
    if sl is not None:
        out.extend(_silence_errors(sl))
    st = m.get("stop")
    if st is not None:
        out.extend(_stop_errors(st))
    sp = m.get("sparse")
    if sp is not None and not (isinstance(sp, dict) and isinstance(sp.get("below_daily"), int | float)
                               and sp["below_daily"] > 0 and isinstance(sp.get("look"), int) and sp["look"] >= 1
                               and isinstance(sp.get("steady", False), bool)
                               and isinstance(sp.get("half_life", 0), int | float) and sp.get("half_life", 0) >= 0
                               and isinstance(sp.get("cap", 0), int | float) and 0 <= sp.get("cap", 0) <= 1):
        out.append(f"sparse {sp!r}: want below_daily > 0, look >= 1 minute, steady true or false, "
                   "half_life none or minutes > 0 and cap none or a quantile in (0, 1]")
    ex = m.get("expected")
    if ex is not None and not (isinstance(ex, dict) and isinstance(ex.get("share"), int | float)
                               and 0 <= ex["share"] <= 1
                               and ex.get("quantile") in [q.get("q") for q in m.get("quantiles") or []]):
        out.append(f"expected {ex!r}: want a share in [0, 1] of a quantile level the set serves")
    pw = m.get("prewarm")
    if pw is not None and not (isinstance(pw.get("threshold"), int | float) and 0 < pw["threshold"] < 1):
        out.append(f"prewarm threshold {pw.get('threshold')!r}, want a probability in (0, 1)")
    return out


def _hazard_bins_ok(raw: Any) -> bool:
    """Increasing integer gaps from 1, each with a hazard in [0, 1]."""
    bins: list[Any] = raw if isinstance(raw, list) and all(isinstance(b, dict) for b in raw) else []
    gaps = [b.get("gap") for b in bins]
    return bool(gaps) and all(isinstance(g, int) and g >= 1 for g in gaps) and gaps == sorted(set(gaps)) and all(
        isinstance(b.get("p"), int | float) and 0 <= b["p"] <= 1 for b in bins)


STOP_FEATURES = ["logit_p", "log_idle", "log_idle_over_longest", "log_gaps_as_long", "invoked_share",
                 "log_since_first"]


def _stop_errors(st: Any) -> list[str]:
    """The stop entry as Go's silence.StopModel.Validate reads it: the
    inputs by name, and trees whose nodes each reach children after them
    or leaves, every leaf once."""
    if not (isinstance(st, dict) and st.get("features") == STOP_FEATURES and isinstance(st.get("init"), int | float)
            and isinstance(st.get("trees"), list) and st["trees"]):
        return [f"stop: want features {STOP_FEATURES}, a number init and trees"]
    for k, t in enumerate(st["trees"]):
        if not _stop_tree_ok(t):
            return [f"stop: tree {k} is not a tree over the {len(STOP_FEATURES)} inputs"]
    return []


def _stop_tree_ok(t: Any) -> bool:
    keys = ("split_feature", "threshold", "left_child", "right_child", "leaf_value")
    if not (isinstance(t, dict) and all(isinstance(t.get(k), list) for k in keys)):
        return False
    n = len(t["split_feature"])
    if any(len(t[k]) != n for k in keys[1:4]) or len(t["leaf_value"]) != n + 1:
        return False
    if not all(isinstance(v, int | float) and np.isfinite(v) for v in t["threshold"] + t["leaf_value"]):
        return False
    seen_nodes, seen_leaves = {0} if n else set(), set()
    for i in range(n):
        if not (isinstance(t["split_feature"][i], int) and 0 <= t["split_feature"][i] < len(STOP_FEATURES)):
            return False
        for c in (t["left_child"][i], t["right_child"][i]):
            if isinstance(c, int) and c < 0 and -c - 1 <= n and -c - 1 not in seen_leaves:
                seen_leaves.add(-c - 1)
            elif isinstance(c, int) and i < c < n and c not in seen_nodes:
                seen_nodes.add(c)
            else:
                return False
    return True


def _silence_errors(sl: Any) -> list[str]:
    """The silence entry as Go's manifest.Silence.Validate reads it: the
    pooled bins, the past classes (ratios increasing from 0, each with its
    bins), min_gap and the optional cap_from."""
    if not isinstance(sl, dict):
        return [f"silence {sl!r}, want an object"]
    out = []
    if not _hazard_bins_ok(sl.get("bins")):
        out.append("silence: bins need increasing integer gaps from 1 and hazards in [0, 1]")
    past = sl.get("past", [])
    classes: list[Any] = past if isinstance(past, list) else [None]
    ratios = [c.get("ratio") if isinstance(c, dict) else None for c in classes]
    numeric = [float(r) for r in ratios if isinstance(r, int | float)]
    if classes and (len(numeric) != len(ratios) or numeric[0] != 0
                    or any(b <= a for a, b in zip(numeric, numeric[1:], strict=False))
                    or not all(isinstance(c, dict) and _hazard_bins_ok(c.get("bins")) for c in classes)):
        out.append("silence past: classes need increasing ratios from 0, each with bins like the pooled ones")
    if not (isinstance(sl.get("min_gap"), int) and sl["min_gap"] >= 1):
        out.append(f"silence min_gap {sl.get('min_gap')!r}, want at least 1 minute")
    cap = sl.get("cap_from", 0)  # 0 or absent: min_gap
    if not (isinstance(cap, int) and cap >= 0):
        out.append(f"silence cap_from {cap!r}, want at least 1 minute (or absent)")
    return out
