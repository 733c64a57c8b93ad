#!/usr/bin/env bash
# GPU serving benchmark: `mesp serve` on ONNX Runtime's CUDA execution
# provider against the CPU provider of the same GPU build of ONNX Runtime,
# on one machine under the same load from `mesp loadgen`, plus raw runs of
# each provider (no HTTP, no routing), and whether both answer the same.
# Needs a GPU, MESP_ORT__LIBRARY set to a GPU build's libonnxruntime.so (its
# provider libraries beside it) and CUDA's libraries on LD_LIBRARY_PATH.
# Prints one JSON document (`make bench-serve-cuda`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
: "${MESP_ORT__LIBRARY:?set MESP_ORT__LIBRARY to a GPU build of libonnxruntime.so}"
py="${MESP_PYTHON:-python3}"
models="${MODELS:-$root/models}"
data="${DATA:-$("$root/scripts/data-dir.sh")/azure2019-invitro-dev-sample100.csv.gz}"
dur="${DURATION:-10s}"
declare -A port=([cpu]=18191 [cuda]=18192)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for p in cpu cuda; do
  MESP_ORT__PROVIDER=$p "$root/bin/mesp" serve --models "$models" --addr "127.0.0.1:${port[$p]}" \
    2>"${TMPDIR:-/tmp}/mesp-serve-$p.log" & pids+=($!)
done
for p in cpu cuda; do
  for _ in $(seq 300); do curl -sf -o /dev/null "127.0.0.1:${port[$p]}/readyz" && break; sleep 0.2; done
  curl -sf -o /dev/null "127.0.0.1:${port[$p]}/readyz" || { cat "${TMPDIR:-/tmp}/mesp-serve-$p.log" >&2; exit 1; }
done
lg() { "$root/bin/mesp" loadgen --data "$data" --duration "$dur" "$@"; }
# One batch of the fixture's real days through both servers, for the
# answers' agreement.
tmp="${TMPDIR:-/tmp}"
"$py" -c '
import csv, gzip, json, sys
rows = list(csv.reader(gzip.open(sys.argv[1], "rt")))[1:65]
print(json.dumps({"functions": [{"id": r[2], "counts": [float(v) for v in r[4:]]} for r in rows]}))
' "$data" >"$tmp/prewarm-body.json"
for p in cpu cuda; do
  curl -sf -H 'Content-Type: application/json' -d @"$tmp/prewarm-body.json" "127.0.0.1:${port[$p]}/v1/prewarm" >"$tmp/prewarm-$p.json"
done
{
echo "{"
for p in cpu cuda; do
  u="http://127.0.0.1:${port[$p]}"
  echo "\"$p\": {"
  echo "\"forecast_single_closed_loop\": $(lg --url "$u/v1/forecast" --batch 1 --concurrency 16),"
  echo "\"forecast_batch64_closed_loop\": $(lg --url "$u/v1/forecast" --batch 64 --concurrency 4),"
  echo "\"prewarm_batch64_closed_loop\": $(lg --url "$u/v1/prewarm" --batch 64 --concurrency 4),"
  echo "\"raw_onnxruntime_batch64\": $(MESP_ORT__PROVIDER=$p lg --raw "$models" --batch 64 --concurrency 2)"
  echo "},"
done
echo "\"gpu\": \"$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)\","
echo "\"machine\": \"$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\""
echo "}"
} | "$py" -c '
import json, sys
d = json.load(sys.stdin)
a = [json.load(open(f"'"${TMPDIR:-/tmp}"'/prewarm-{p}.json"))["functions"] for p in ("cpu", "cuda")]
d["agreement"] = {
    "functions": len(a[0]),
    "same_route": all(x["cluster"] == y["cluster"] and x["model"] == y["model"] for x, y in zip(*a)),
    "max_abs_forecast_diff": max(abs(u - v) for x, y in zip(*a) for u, v in zip(x["forecast"], y["forecast"])),
    "max_abs_p_invoke_diff": max(abs(u - v) for x, y in zip(*a) for u, v in zip(x["p_invoke"], y["p_invoke"])),
}
c, g = d["cpu"], d["cuda"]
d["ratios_cuda_over_cpu"] = {k: g[k]["forecasts_per_s"] / c[k]["forecasts_per_s"]
                             for k in ("forecast_single_closed_loop", "forecast_batch64_closed_loop", "prewarm_batch64_closed_loop")}
d["ratios_cuda_over_cpu"]["raw_batch64_dense_one_run"] = (g["raw_onnxruntime_batch64"]["dense_one_run"]["forecasts_per_s"]
                                                          / c["raw_onnxruntime_batch64"]["dense_one_run"]["forecasts_per_s"])
json.dump(d, sys.stdout, indent=2)
print()
'
