#!/usr/bin/env bash
# Serving benchmark: `mesp serve` vs the Python reference server
# (scripts/reference_server.py: same ONNX files, same routing) under the same
# load from `mesp loadgen` on loopback, plus raw ONNX Runtime runs (no HTTP,
# no routing), and the Go server's /v1/prewarm (counts and p_invoke; and
# the decision alone, warm and p_invoke) under the same load as
# /v1/forecast. Prints one JSON document with the ratios.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${MESP_PYTHON:-$("$root/scripts/setup-venv.sh")/bin/python}"
models="${MODELS:-$root/models}"
data="${DATA:-$("$root/scripts/data-dir.sh")/azure2019-invitro-dev-sample100.csv.gz}"
dur="${DURATION:-10s}"
go_port=18181; py_port=18182
"$root/bin/mesp" serve --models "$models" --addr "127.0.0.1:$go_port" 2>/dev/null & go_pid=$!
"$py" "$root/scripts/reference_server.py" "$models" "$py_port" 2>/dev/null & py_pid=$!
trap 'kill $go_pid $py_pid 2>/dev/null || true' EXIT
for port in $go_port $py_port; do
  for _ in $(seq 150); do curl -s -o /dev/null "127.0.0.1:$port/" && break; sleep 0.2; done
done
lg() { "$root/bin/mesp" loadgen --data "$data" --duration "$dur" "$@"; }
# CPU seconds a process has used (user + system), to report each server's
# CPU time per forecast under batch load: where the cores go.
hz=$(getconf CLK_TCK)
cpu_s() { awk -v hz="$hz" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
{
echo "{"
for name in go:$go_port:$go_pid python:$py_port:$py_pid; do
  IFS=: read -r n p pid <<<"$name"; u="http://127.0.0.1:$p/v1/forecast"
  echo "\"$n\": {"
  echo "\"single_at_1000rps\": $(lg --url "$u" --batch 1 --rate 1000),"
  echo "\"single_closed_loop\": $(lg --url "$u" --batch 1 --concurrency 16),"
  c0=$(cpu_s "$pid")
  echo "\"batch64_closed_loop\": $(lg --url "$u" --batch 64 --concurrency 4),"
  echo "\"batch64_server_cpu_s\": $(awk -v a="$c0" -v b="$(cpu_s "$pid")" 'BEGIN {print b - a}')"
  echo "},"
done
# The pre-warm decision (counts and p_invoke, one routing) on the same load.
u="http://127.0.0.1:$go_port/v1/prewarm"
echo "\"go_prewarm\": {"
echo "\"single_at_1000rps\": $(lg --url "$u" --batch 1 --rate 1000),"
echo "\"single_closed_loop\": $(lg --url "$u" --batch 1 --concurrency 16),"
c0=$(cpu_s "$go_pid")
echo "\"batch64_closed_loop\": $(lg --url "$u" --batch 64 --concurrency 4),"
echo "\"batch64_server_cpu_s\": $(awk -v a="$c0" -v b="$(cpu_s "$go_pid")" 'BEGIN {print b - a}')"
echo "},"
# The decision alone (warm and p_invoke, no count models): what a
# platform's minutely loop asks for.
echo "\"go_prewarm_decision\": {"
echo "\"single_closed_loop\": $(lg --url "$u" --outputs warm,p_invoke --batch 1 --concurrency 16),"
c0=$(cpu_s "$go_pid")
echo "\"batch64_closed_loop\": $(lg --url "$u" --outputs warm,p_invoke --batch 64 --concurrency 4),"
echo "\"batch64_server_cpu_s\": $(awk -v a="$c0" -v b="$(cpu_s "$go_pid")" 'BEGIN {print b - a}')"
echo "},"
echo "\"raw_onnxruntime_batch64\": $(lg --raw "$models" --batch 64 --concurrency 2),"
echo "\"raw_onnxruntime_batch1\": $(lg --raw "$models" --batch 1 --concurrency 2),"
echo "\"go_server_peak_rss_kib\": $(awk '/VmHWM/ {print $2}' /proc/$go_pid/status),"
echo "\"machine\": \"$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\""
echo "}"
} | "$py" -c '
import json, sys
d = json.load(sys.stdin)
g, p = d["go"], d["python"]
raw = d["raw_onnxruntime_batch64"]
for s in (g, p, d["go_prewarm"], d["go_prewarm_decision"]):
    b = s["batch64_closed_loop"]
    s["batch64_server_cpu_us_per_forecast"] = 1e6 * s["batch64_server_cpu_s"] / (b["requests"] * 64)
d["ratios"] = {
    "single_forecasts_per_s_go_over_python": g["single_closed_loop"]["forecasts_per_s"] / p["single_closed_loop"]["forecasts_per_s"],
    "batch64_forecasts_per_s_go_over_python": g["batch64_closed_loop"]["forecasts_per_s"] / p["batch64_closed_loop"]["forecasts_per_s"],
    # the ceiling the issue names: the same batches, each in one run of one model
    "batch64_go_over_raw_run": g["batch64_closed_loop"]["forecasts_per_s"] / raw["dense_one_run"]["forecasts_per_s"],
    # the ceiling for the split by expert: the rows of each batch run by their experts
    "batch64_go_over_raw_run_split_by_expert": g["batch64_closed_loop"]["forecasts_per_s"] / raw["split_by_expert"]["forecasts_per_s"],
    "p99_ms_single_at_1000rps_go": g["single_at_1000rps"]["p99_ms"],
    "p99_ms_single_at_1000rps_python": p["single_at_1000rps"]["p99_ms"],
    "p99_ms_prewarm_single_at_1000rps_go": d["go_prewarm"]["single_at_1000rps"]["p99_ms"],
    "prewarm_over_forecast_single_closed_loop_go": d["go_prewarm"]["single_closed_loop"]["forecasts_per_s"] / g["single_closed_loop"]["forecasts_per_s"],
    "prewarm_over_forecast_batch64_go": d["go_prewarm"]["batch64_closed_loop"]["forecasts_per_s"] / g["batch64_closed_loop"]["forecasts_per_s"],
    # what a pre-warm answer costs the server against a forecast: its CPU
    # per function under the same batch load (the load generator, on the same
    # cores, does not count)
    "prewarm_cpu_over_forecast_cpu_batch64_go": d["go_prewarm"]["batch64_server_cpu_us_per_forecast"] / g["batch64_server_cpu_us_per_forecast"],
    # the decision alone (warm and p_invoke): the minutely call of a platform
    "decision_over_forecast_single_closed_loop_go": d["go_prewarm_decision"]["single_closed_loop"]["forecasts_per_s"] / g["single_closed_loop"]["forecasts_per_s"],
    "decision_over_forecast_batch64_go": d["go_prewarm_decision"]["batch64_closed_loop"]["forecasts_per_s"] / g["batch64_closed_loop"]["forecasts_per_s"],
    "decision_cpu_over_forecast_cpu_batch64_go": d["go_prewarm_decision"]["batch64_server_cpu_us_per_forecast"] / g["batch64_server_cpu_us_per_forecast"],
}
json.dump(d, sys.stdout, indent=2)
print()
'

