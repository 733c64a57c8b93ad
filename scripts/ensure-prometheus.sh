#!/usr/bin/env bash
# Installs Debian's prometheus (the server and promtool) for the
# predictive-scaling end-to-end test when missing.
set -euo pipefail
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 && exit 0
echo "ensure-prometheus: installing Debian's prometheus" >&2
sudo_="" ; [[ "$(id -u)" == 0 ]] || sudo_=sudo
$sudo_ apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends prometheus >/dev/null
