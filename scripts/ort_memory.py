"""Resident memory each model file of a set costs once ONNX Runtime has
loaded it: the process's RSS before and after creating its session (one
thread, the CPU provider), files loaded one after another in one process,
smallest first, the sessions kept.

    python scripts/ort_memory.py [--models models]

What the fleet's memory is made of apart from the Go heap
(docs/kubernetes.md, *Running a fleet*): the numbers are this Python
process's, whose onnxruntime is the version the server loads.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import onnxruntime as ort


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, default=Path("models"))
    a = ap.parse_args()
    files = sorted(a.models.glob("*.onnx"), key=lambda p: p.stat().st_size)
    start, kept = rss_mib(), []
    print(f"onnxruntime {ort.__version__}")
    for f in files:
        before = rss_mib()
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        kept.append(ort.InferenceSession(str(f), so, providers=["CPUExecutionProvider"]))
        print(f"{f.name:28s} file {f.stat().st_size / 1e6:6.2f} MB  RSS +{rss_mib() - before:6.1f} MiB")
    print(f"all {len(kept)} sessions: RSS +{rss_mib() - start:.1f} MiB")


if __name__ == "__main__":
    main()
