#!/usr/bin/env bash
# K-Shape benchmark: Go `mesp cluster` vs tslearn's KShape and the kshape
# package on the same rows, same K, same iterations cap, in one run on one
# machine. Prints wall time, final objective and the ratios (JSON).
# usage: scripts/bench-kshape.sh [DATA] [K] [MAX_ITER]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$("$root/scripts/data-dir.sh")/azure2019-invitro-dev.csv.gz}"
k="${2:-8}"; iters="${3:-100}"
py="${MESP_PYTHON:-$("$root/scripts/setup-venv.sh")/bin/python}"
out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT
"$root/bin/mesp" cluster --data "$data" --part all --k "$k" --max-iter "$iters" --restarts 1 --seed 1 --log1p=false --smooth 1 \
  --out "$out/go" --summary "$out/go.json" 2> >(tail -3 >&2)
"$py" "$root/scripts/kshape_reference.py" "$out/go" "$out/go.json" --max-iter "$iters"
