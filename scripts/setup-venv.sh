#!/usr/bin/env bash
# Creates (once) the Python virtual environment for training/ and scripts/,
# cached outside the clone and keyed by the sha256 of training/requirements.lock,
# so a fresh CI clone reuses it. Prints the venv path on stdout.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${MESP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mesp}"
lock="$root/training/requirements.lock"
key="$(sha256sum "$lock" | cut -c1-16)"
venv="$cache/venv-py311-$key"
if [[ ! -x "$venv/bin/python" || ! -f "$venv/.complete" ]]; then
  echo "setup-venv: creating $venv (first run downloads torch; minutes)" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip >&2
  "$venv/bin/pip" install --quiet --require-hashes --only-binary=:all: -r "$lock" >&2
  touch "$venv/.complete"
fi
# The training package itself is used from the source tree (PYTHONPATH), so
# editing it never invalidates the cache.
echo "$venv"
