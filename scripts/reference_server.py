"""Python reference server for `make bench-serve`: the same API, ONNX files
and routing as `mesp serve`, on a standard Python stack (http.server's
ThreadingHTTPServer, numpy, onnxruntime), so the two can be compared under
the same load.

usage: reference_server.py MODELS_DIR PORT
       reference_server.py --route CLUSTERS_JSON < rows.json
           (routes a JSON array of count arrays, prints [cluster, distance,
           ood] per row: the Go router's agreement test)
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

ort.disable_telemetry_events()


def znorm(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 1e-12 * max(1.0, abs(x.mean())) else np.zeros_like(x)


def transform(x: np.ndarray, log1p: bool, smooth: int) -> np.ndarray:
    """kshape.Transform: log1p, then a centred moving average (edges shrink)."""
    y = np.log1p(x) if log1p else x.astype(float)
    if smooth <= 1:
        return y
    prefix = np.concatenate([[0.0], np.cumsum(y)])
    i = np.arange(len(y))
    lo = np.maximum(0, i - smooth // 2)
    hi = np.minimum(len(y), i - smooth // 2 + smooth)
    return (prefix[hi] - prefix[lo]) / (hi - lo)


class Router:
    """Go's router.Route: SBD to each centroid for a full day; for a shorter
    window the best NCC with any same-length stretch of each centroid
    (wrapping past midnight), with that length's interpolated radius."""

    def __init__(self, clusters: dict) -> None:
        tr = clusters.get("transform", {})
        self.log1p, self.smooth = bool(tr.get("log1p")), int(tr.get("smooth", 0))
        self.m = clusters["length"]
        self.n = 1 << (2 * self.m).bit_length()
        self.ids = [c["id"] for c in clusters["clusters"]]
        self.thr = np.array([c["threshold"] for c in clusters["clusters"]])
        self.partial = [c.get("partial_thresholds") or [] for c in clusters["clusters"]]
        cents = np.array([znorm(np.asarray(c["centroid"], float)) for c in clusters["clusters"]])
        self.spec = np.conj(np.fft.rfft(cents, self.n))
        self.norms = np.linalg.norm(cents, axis=1)
        twice = np.concatenate([cents, cents], axis=1)
        self.twice_spec = np.fft.rfft(twice, self.n)
        self.sum = np.concatenate([np.zeros((len(cents), 1)), np.cumsum(twice, axis=1)], axis=1)
        self.sum_sq = np.concatenate([np.zeros((len(cents), 1)), np.cumsum(twice**2, axis=1)], axis=1)

    def threshold(self, j: int, n: int) -> float:
        pt = self.partial[j]
        if n == self.m or not pt:
            return float(self.thr[j])
        lengths = [p["length"] for p in pt]
        values = [p["threshold"] for p in pt]
        return float(np.interp(n, lengths, values))

    def route(self, counts: np.ndarray) -> tuple[int, float, bool]:
        n = len(counts)
        z = znorm(transform(counts, self.log1p, self.smooth))
        nz = np.linalg.norm(z)
        if nz == 0:
            return self.ids[0], 1.0, True
        zs = np.fft.rfft(z, self.n)
        if n == self.m:
            cc = np.fft.irfft(zs * self.spec, self.n)
            cc = np.concatenate([cc[:, -(self.m - 1):], cc[:, : self.m]], axis=1).max(axis=1)
            ncc = cc / (nz * np.where(self.norms > 0, self.norms, np.inf))
        else:
            # cc[s] = sum_t doubled[t+s] z[t], s = 0..m-1
            cc = np.fft.irfft(self.twice_spec * np.conj(zs), self.n)[:, : self.m]
            s = np.arange(self.m)
            mean = (self.sum[:, s + n] - self.sum[:, s]) / n
            ss = self.sum_sq[:, s + n] - self.sum_sq[:, s] - n * mean**2
            ok = ss > 1e-9 * n
            ncc = np.where(ok, cc / (nz * np.sqrt(np.where(ok, ss, 1.0))), 0.0).max(axis=1)
            ncc = np.maximum(ncc, 0.0)
        d = 1 - np.clip(ncc, -1.0, 1.0)
        j = int(d.argmin())
        return self.ids[j], float(d[j]), bool(d[j] > self.threshold(j, n))


def load(models: Path) -> tuple[Router, dict, dict]:
    man = json.loads((models / "manifest.json").read_text())
    router = Router(json.loads((models / man["clusters"]).read_text()))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = {}
    for e in [man["dense"], *man["experts"]]:
        sess[e["id"]] = (ort.InferenceSession(str(models / e["file"]), opts, providers=["CPUExecutionProvider"]), e)
    served = {e["cluster"]: (e["id"] if e["serve"] == "expert" else man["dense"]["id"]) for e in man["experts"]}
    return router, sess, {"served": served, "dense": man["dense"]["id"]}


def main() -> None:
    if sys.argv[1] == "--route":
        router = Router(json.loads(Path(sys.argv[2]).read_text()))
        rows = json.load(sys.stdin)
        json.dump([list(router.route(np.asarray(r, float))) for r in rows], sys.stdout)
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
            out = []
            for i, f in enumerate(fns):
                c = np.asarray(f["counts"], float)
                if len(c) == 0 or (c < 0).any() or not np.isfinite(c).all():
                    self.send_error(400)
                    return
                cl, dist, ood = router.route(c)
                mid = table["dense"] if ood else table["served"].get(cl, table["dense"])
                groups.setdefault(mid, []).append(i)
                out.append({"id": f.get("id", f"#{i}"), "cluster": cl, "distance": dist,
                            "out_of_distribution": ood, "model": mid})
            for mid, idx in groups.items():
                s, e = sess[mid]
                x = np.stack([np.asarray(fns[i]["counts"][-e["input_len"]:], np.float32) for i in idx])
                y = s.run(["forecast"], {"counts": x})[0]
                for r, i in enumerate(idx):
                    out[i]["forecast"] = y[r].tolist()
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
