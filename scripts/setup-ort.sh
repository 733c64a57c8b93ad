#!/usr/bin/env bash
# Fetches (once) the ONNX Runtime CPU shared library that onnxruntime_go
# v1.33.0 speaks to (C API 29 = ONNX Runtime 1.29.x). The npm package
# onnxruntime-node carries the official Linux x64 build; we extract the one
# file (no `npm install`: its post-install step fetches CUDA files) and
# verify its sha256. Prints the library path on stdout.
set -euo pipefail
version="1.29.0"
sha="89688f5cf51c7e31befbb7b9101bc027799009b18d1baa9a5b1146a72e69538d"
cache="${MESP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mesp}"
dir="$cache/onnxruntime-$version"
lib="$dir/libonnxruntime.so.1"
if [[ -f "$lib" ]] && echo "$sha  $lib" | sha256sum --check --status; then
  echo "$lib"; exit 0
fi
echo "setup-ort: fetching onnxruntime-node@$version from the npm registry" >&2
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "onnxruntime-node@$version" >/dev/null)
tar -xzf "$tmp"/onnxruntime-node-"$version".tgz -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
got="$(sha256sum "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" | cut -d' ' -f1)"
if [[ "$got" != "$sha" ]]; then
  echo "setup-ort: sha256 mismatch: got $got, want $sha" >&2; exit 1
fi
mkdir -p "$dir"
install -m 0644 "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$lib.tmp" && mv "$lib.tmp" "$lib"
echo "$lib"
