#!/usr/bin/env bash
# make image: builds the CPU Dockerfile, unchanged, with buildah (no Docker
# engine needed), then runs scripts/test-image.sh on the image.
#
# The Dockerfile's base images (golang, node, debian:bookworm-slim) are
# pulled when a registry answers. Where none does (a machine that reaches
# only Debian's mirrors and the Go and npm registries), local stand-ins are
# built once under the same names, from Debian packages: a debootstrap
# minbase of bookworm (debian:bookworm-slim); that plus Debian's nodejs and
# npm (node:20-bookworm-slim: the stage only runs npm pack, tar and
# sha256sum); that plus gcc, git and Go's own toolchain module from the Go
# module proxy, the version this machine's go runs (golang:1.26-bookworm).
# The stand-ins trust the certificate authorities this machine adds under
# /usr/local/share/ca-certificates, as its own tools do.
# A user with Docker builds the same Dockerfile with `docker build .`.
#
#   IMAGE=localhost/mesp:dev scripts/build-image.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
commit="$(git describe --always --dirty --exclude '*' 2>/dev/null || echo unknown)"
image="${IMAGE:-localhost/mesp:$commit}"
cache="${MESP_CACHE:-$HOME/.cache/mesp}/images"
B=(buildah --storage-driver vfs)
mkdir -p "$cache"

have() { "${B[@]}" inspect --type image "$1" >/dev/null 2>&1; }
pulled() { timeout 90 "${B[@]}" pull --quiet "$1" >/dev/null 2>&1; }
step() { echo "image: $*" >&2; }

debian=docker.io/library/debian:bookworm-slim
node=docker.io/library/node:20-bookworm-slim
golang=docker.io/library/golang:1.26-bookworm

standin_debian() {
	local rootfs="$cache/rootfs-bookworm" tarball="$cache/rootfs-bookworm.tar"
	if [[ ! -f "$tarball" ]]; then
		step "debootstrap bookworm (minbase) into $rootfs"
		rm -rf "$rootfs"
		debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >&2
		cat >"$rootfs/etc/apt/sources.list" <<'LIST'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
LIST
		rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
		tar -C "$rootfs" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf "$tarball.tmp" .
		mv "$tarball.tmp" "$tarball"
		rm -rf "$rootfs"
	fi
	local c
	c="$("${B[@]}" from scratch)"
	"${B[@]}" add "$c" "$tarball" / >/dev/null
	# the certificate authorities this machine adds to Debian's (a
	# TLS-inspecting egress proxy, a company CA): the stand-ins fetch Go
	# modules and npm packages through the same network as the host
	if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
		"${B[@]}" copy "$c" /usr/local/share/ca-certificates/ /usr/local/share/ca-certificates/ >/dev/null
	fi
	"${B[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash \
		--label org.mesp.standin="debootstrap minbase bookworm" "$c"
	"${B[@]}" commit --quiet --rm "$c" "$debian" >/dev/null
}

# apt_standin PACKAGES...: a working container of the debian stand-in
# with those Debian packages installed
apt_standin() {
	local c
	c="$("${B[@]}" from --pull-never "$debian")"
	"${B[@]}" run --isolation chroot "$c" -- sh -c \
		"apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $* >/dev/null && rm -rf /var/lib/apt/lists/*" >&2
	echo "$c"
}

standin_node() {
	local c
	c="$(apt_standin nodejs npm ca-certificates)"
	"${B[@]}" config --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
		--label org.mesp.standin="Debian nodejs and npm" "$c"
	"${B[@]}" commit --quiet --rm "$c" "$node" >/dev/null
}

standin_golang() {
	local gov dir c
	gov="$(go env GOVERSION)"
	step "Go toolchain $gov from the module proxy"
	dir="$(GOFLAGS=-mod=mod GOTOOLCHAIN=local go mod download -json "golang.org/toolchain@v0.0.1-$gov.linux-amd64" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
	[[ -d "$dir/bin" ]] || { echo "image: no toolchain at $dir" >&2; exit 1; }
	c="$(apt_standin gcc libc6-dev git ca-certificates)"
	"${B[@]}" copy "$c" "$dir" /usr/local/go >/dev/null
	# the module cache keeps files read-only and without their exec bits
	"${B[@]}" run --isolation chroot "$c" -- sh -c \
		'chmod -R u+w,a+rX /usr/local/go && chmod a+x /usr/local/go/bin/* /usr/local/go/pkg/tool/*/*'
	"${B[@]}" config --env GOTOOLCHAIN=local --env GOPATH=/go \
		--env PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--label org.mesp.standin="Debian gcc and git, Go $gov from the module proxy" "$c"
	"${B[@]}" commit --quiet --rm "$c" "$golang" >/dev/null
}

for base in "$debian" "$node" "$golang"; do
	if have "$base"; then
		continue
	fi
	if pulled "$base"; then
		step "pulled $base"
		continue
	fi
	step "no registry answered for $base: building a local stand-in"
	case "$base" in
	"$debian") standin_debian ;;
	"$node") standin_node ;;
	"$golang") standin_golang ;;
	esac
done

step "building $image from Dockerfile"
"${B[@]}" bud --isolation chroot --format docker --pull-never --layers=false \
	--build-arg "COMMIT=$commit" -t "$image" -f Dockerfile . >&2
# the image this tag named before, now untagged (vfs keeps whole copies)
"${B[@]}" rmi --prune >/dev/null 2>&1 || true
echo "$image"
"$root/scripts/test-image.sh" "$image"
