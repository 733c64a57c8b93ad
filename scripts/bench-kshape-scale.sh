#!/usr/bin/env bash
# K-Shape at scale: time per iteration and peak memory at n = 5k, 50k and
# 500k rows (rows beyond the real ones: real rows shifted by up to +-120
# minutes with 10% noise, trace.Augment, seed 1), then the whole
# `mesp cluster` path on 500k rows streamed from a CSV.gz file (read,
# cluster, write Parquet), with its peak memory. One JSON line per run.
# usage: scripts/bench-kshape-scale.sh [DATA] [SIZES...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$("$root/scripts/data-dir.sh")/azure2019-invitro-dev.csv.gz}"
shift || true
sizes=("${@:-5000 50000 500000}")
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
for n in ${sizes[*]}; do
  "$root/bin/mesp" bench-kshape --data "$data" --n "$n" --max-iter 3 2> >(tr '\r' '\n' | tail -1 >&2)
done
n="${sizes[*]}"; n="${n##* }"
"$root/bin/mesp" bench-kshape --data "$data" --n "$n" --write "$tmp/rows.csv.gz"
"$root/bin/mesp" cluster --data "$tmp/rows.csv.gz" --part all --k 8 --max-iter 3 --restarts 1 \
  --out "$tmp/out" --summary "$tmp/summary.json" 2> >(tr '\r' '\n' | tail -2 >&2)
printf '{"streamed_from_file": %s, "file_mib": %s}\n' "$(cat "$tmp/summary.json")" "$(($(stat -c %s "$tmp/rows.csv.gz") / 1048576))"
