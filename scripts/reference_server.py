"""Python reference server for `make bench-serve`: the same API, ONNX files
and routing as `mesp serve` (soft routing's runner-up blend and the count
trees included, as the manifest says, fed the dense p_invoke graph's
features where they read them),
on a standard Python stack
(http.server's ThreadingHTTPServer, numpy, onnxruntime), so the two can be
compared under the same load and the same work.

usage: reference_server.py MODELS_DIR PORT
       reference_server.py --route CLUSTERS_JSON < rows.json
           (routes a JSON array of count arrays with mesp_training.routing,
           prints [cluster, distance, ood] per row: the Go router's
           agreement test)
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

# No usage telemetry from the onnxruntime library (set before it loads).
os.environ["ORT_DISABLE_TELEMETRY"] = "1"
import onnxruntime as ort  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training"))
from mesp_training.contract import whole_invocations  # noqa: E402
from mesp_training.count_trees import run_trees  # noqa: E402
from mesp_training.routing import Router  # noqa: E402
from mesp_training.soft_routing import runner_weight  # noqa: E402

ort.disable_telemetry_events()


def load(models: Path) -> tuple[Router, dict, dict]:
    man = json.loads((models / "manifest.json").read_text())
    router = Router(json.loads((models / man["clusters"]).read_text()))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = {}
    dense_p = man["dense"].get("p_invoke")
    for e in [man["dense"], *man["experts"], *([man["trees"]] if "trees" in man else []),
              *([dense_p] if dense_p else [])]:
        sess[e["id"]] = (ort.InferenceSession(str(models / e["file"]), opts, providers=["CPUExecutionProvider"]), e)
    served = {e["cluster"]: (e["id"] if e["serve"] == "expert" else man["dense"]["id"]) for e in man["experts"]}
    return router, sess, {"served": served, "dense": man["dense"]["id"], "routing": man.get("routing"),
                          "trees": man.get("trees"), "dense_p": dense_p and dense_p["id"]}


def main() -> None:
    if sys.argv[1] == "--route":
        router = Router(json.loads(Path(sys.argv[2]).read_text()))
        rows = json.load(sys.stdin)
        out: list[list[object]] = [[] for _ in rows]
        # Rows of one length are routed together, as training routes them.
        for n in sorted({len(r) for r in rows}):
            idx = [i for i, r in enumerate(rows) if len(r) == n]
            got = router.route_many(np.array([rows[i] for i in idx], float))
            for k, i in enumerate(idx):
                out[i] = [int(got.cluster[k]), float(got.distance[k]), bool(got.ood[k])]
        json.dump(out, sys.stdout)
        return
    models, port = Path(sys.argv[1]), int(sys.argv[2])
    router, sess, table = load(models)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fns = body.get("functions") or [body]
            groups: dict[str, list[int]] = {}
            runners: dict[str, list[int]] = {}  # soft routing's second models
            out = []
            soft, trees = table["routing"], table["trees"]
            for i, f in enumerate(fns):
                c = np.asarray(f["counts"], float)
                if len(c) == 0 or (c < 0).any() or not np.isfinite(c).all():
                    self.send_error(400)
                    return
                r = router.route_many(c[None])
                cl, dist, ood = int(r.cluster[0]), float(r.distance[0]), bool(r.ood[0])
                mid = table["dense"] if ood else table["served"].get(cl, table["dense"])
                groups.setdefault(mid, []).append(i)
                out.append({"id": f.get("id", f"#{i}"), "cluster": cl, "distance": dist,
                            "out_of_distribution": ood, "model": mid})
                if soft is not None and not ood:
                    j = np.argsort(r.distances[0], kind="stable")[1]
                    d2, runner = float(r.distances[0, j]), int(router.ids[j])
                    w = float(runner_weight(np.array(dist), np.array(d2), soft["soft_tau"]))
                    rid = table["served"].get(runner, table["dense"])
                    if d2 <= router.thresholds(len(c))[j] and rid != mid and w >= soft["min_weight"]:
                        out[i]["blend"] = {"cluster": runner, "distance": d2, "model": rid, "weight": w}
                        runners.setdefault(rid, []).append(i)

            def run(mid: str, idx: list[int]) -> np.ndarray:
                s, e = sess[mid]
                if e.get("dense_features"):  # count trees that read the dense p_invoke features
                    return run_trees(s, [np.asarray(fns[i]["counts"], np.float32) for i in idx],
                                     sess[table["dense_p"]][0])
                x = np.stack([np.asarray(fns[i]["counts"][-e["input_len"]:], np.float32) for i in idx])
                y: np.ndarray = s.run(["forecast"], {"counts": x})[0]
                return y

            fc: dict[int, np.ndarray] = {}
            for mid, idx in groups.items():
                y = run(mid, idx)
                for r_, i in enumerate(idx):
                    fc[i] = y[r_].astype(np.float64)
            for mid, idx in runners.items():
                y = run(mid, idx)
                for r_, i in enumerate(idx):
                    w = out[i]["blend"]["weight"]
                    fc[i] = (1 - w) * fc[i] + w * y[r_]
            # last: the trees blend into the soft-routed forecast, where the
            # pattern holds their window
            long = [] if trees is None else [i for i, f in enumerate(fns) if len(f["counts"]) >= trees["input_len"]]
            if long:
                w, y = trees["weight"], run(trees["id"], long)
                for r_, i in enumerate(long):
                    fc[i] = (1 - w) * fc[i] + w * y[r_]
                    out[i]["trees"] = {"model": trees["id"], "weight": w}
            for i in range(len(fns)):
                out[i]["forecast"] = whole_invocations(fc[i]).tolist()
            data = json.dumps({"horizon": 60, "forecasts": out}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"reference: listening on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
