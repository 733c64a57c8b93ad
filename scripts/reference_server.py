"""Python reference server for `make bench-serve`: the same API, ONNX files
and routing as `mesp serve`, on a standard Python stack (http.server's
ThreadingHTTPServer, numpy, onnxruntime), so the two can be compared under
the same load.

usage: reference_server.py MODELS_DIR PORT
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
    """Nearest centroid by length-corrected SBD, as Go's router.Route."""

    def __init__(self, clusters: dict) -> None:
        tr = clusters.get("transform", {})
        self.log1p, self.smooth = bool(tr.get("log1p")), int(tr.get("smooth", 0))
        self.m = clusters["length"]
        self.n = 1 << (2 * self.m - 1).bit_length()
        self.ids = [c["id"] for c in clusters["clusters"]]
        self.thr = np.array([c["threshold"] for c in clusters["clusters"]])
        cents = np.array([znorm(np.asarray(c["centroid"], float)) for c in clusters["clusters"]])
        self.spec = np.conj(np.fft.rfft(cents, self.n))
        self.norms = np.linalg.norm(cents, axis=1)

    def route(self, counts: np.ndarray) -> tuple[int, float, bool]:
        z = np.zeros(self.m)
        z[: len(counts)] = znorm(transform(counts, self.log1p, self.smooth))
        nz = np.linalg.norm(z)
        if nz == 0:
            return self.ids[0], 1.0, True
        cc = np.fft.irfft(np.fft.rfft(z, self.n) * self.spec, self.n)
        cc = np.concatenate([cc[:, -(self.m - 1):], cc[:, : self.m]], axis=1).max(axis=1)
        ncc = np.minimum(1.0, cc / (nz * np.where(self.norms > 0, self.norms, np.inf)) * np.sqrt(self.m / len(counts)))
        d = 1 - ncc
        j = int(d.argmin())
        return self.ids[j], float(d[j]), bool(d[j] > self.thr[j])


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
