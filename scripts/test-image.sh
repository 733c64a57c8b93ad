#!/usr/bin/env bash
# Runs a built MESP image (buildah, chroot isolation: the host's network)
# and asks it for a forecast of a real function from data/: the image's own
# binary, ONNX Runtime and shipped models answer, or this fails.
#
#   scripts/test-image.sh localhost/mesp:<commit>
set -euo pipefail
image="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"
B=(buildah --storage-driver vfs)
port="${PORT:-18080}"
c="$("${B[@]}" from --pull-never "$image")"
log="$(mktemp)"
pid=
cleanup() {
	[[ -n "$pid" ]] && kill "$pid" 2>/dev/null
	pkill -f "^/usr/local/bin/mesp serve" 2>/dev/null || true
	"${B[@]}" rm "$c" >/dev/null 2>&1 || true
	rm -f "$log"
}
trap cleanup EXIT
# the image's entry point and environment, the address moved off 8080
"${B[@]}" run --isolation chroot --env "MESP_SERVER__ADDR=127.0.0.1:$port" "$c" -- \
	/usr/local/bin/mesp serve 2>"$log" >&2 &
pid=$!
for _ in $(seq 60); do
	curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
	sleep 1
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$log" >&2; echo "test-image: $image never became ready" >&2; exit 1; }
body="$(zcat "$("$root/scripts/data-dir.sh")/azure2019-invitro-dev-sample100.csv.gz" | sed -n 60p |
	awk -F, '{printf "{\"id\":\"image-test\",\"counts\":["; for (i = NF-479; i <= NF; i++) printf "%s%s", $i, (i<NF?",":""); print "]}"}')"
answer="$(curl -fsS "http://127.0.0.1:$port/v1/forecast" -H 'Content-Type: application/json' -d "$body")"
python3 - "$answer" <<'PY'
import json, sys
f = json.loads(sys.argv[1])["forecasts"][0]
assert f["id"] == "image-test" and len(f["forecast"]) == 60 and len(f["median"]) == 60, f
assert all(v >= 0 for v in f["forecast"]) and sum(f["forecast"]) > 0, f["forecast"]
print(f"test-image: the image answered a forecast: cluster {f['cluster']}, model {f['model']}, "
      f"next hour {sum(f['forecast']):.1f} invocations")
PY
