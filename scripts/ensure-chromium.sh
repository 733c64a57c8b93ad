#!/usr/bin/env bash
# Installs Debian's chromium for the console's browser test when missing.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
echo "ensure-chromium: installing Debian's chromium" >&2
sudo_="" ; [[ "$(id -u)" == 0 ]] || sudo_=sudo
$sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq chromium >/dev/null
