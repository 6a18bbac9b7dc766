#!/usr/bin/env bash
# Packages the kubelet, kubeadm and kubectl that build_binaries.sh made as
# Debian packages laid out like the upstream ones (pkgs.k8s.io): the kubelet
# with its systemd unit, kubeadm with the kubelet drop-in (10-kubeadm.conf)
# that makes the kubelet read what kubeadm writes, versions VERSION-1.1. The
# dependencies are the upstream packages' with two changes, both because
# Debian has no such package: containernetworking-plugins stands where
# kubernetes-cni stood (the same plugins, under /usr/lib/cni), and kubeadm
# does not depend on cri-tools (no crictl: see docs/kubernetes-versions.md).
#
# Usage: build_debs.sh BINARIES_DIR CACHE_DIR   (prints the folder holding
# the three .deb files). Cached by a key of this recipe and the binaries.
set -euo pipefail
binaries=${1:?usage: build_debs.sh BINARIES_DIR CACHE_DIR}
cache=${2:?usage: build_debs.sh BINARIES_DIR CACHE_DIR}
exec 3>&1 1>&2
here=$(cd "$(dirname "$0")" && pwd)
bin=$binaries/bin
version=$("$bin/kubeadm" version -o short)
version=${version#v}-1.1

key=$( { cat "$0" "$here"/debian/*; sha256sum "$bin/kubelet" "$bin/kubeadm" "$bin/kubectl"; } |
  sha256sum | cut -c1-16)
out="$cache/debs-$key"
if [[ -f "$out/kubeadm_${version}_amd64.deb" ]]; then
  echo "build_debs: cached in $out" >&2
  echo "$out" >&3
  exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d "$cache/.debs-XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$SECONDS

# package NAME DEPENDS DESCRIPTION: the tree in $work/NAME becomes NAME_VERSION_amd64.deb.
package() {
  local name=$1 depends=$2 description=$3 root="$work/$1"
  mkdir -p "$root/DEBIAN"
  {
    echo "Package: $name"
    echo "Version: $version"
    echo "Architecture: amd64"
    echo "Maintainer: vmlab <vmlab@example.invalid>"
    [[ -n $depends ]] && echo "Depends: $depends"
    echo "Section: misc"
    echo "Priority: optional"
    echo "Homepage: https://kubernetes.io"
    echo "Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)"
    echo "Description: $description"
    echo " Built by vmlab (scripts/kubernetes) from Debian 12's kubernetes source package."
  } >"$root/DEBIAN/control"
  dpkg-deb -Zgzip --root-owner-group --build "$root" "$work/out/${name}_${version}_amd64.deb" >/dev/null
}

mkdir -p "$work/out"
install -D -m 0755 "$bin/kubectl" "$work/kubectl/usr/bin/kubectl"
package kubectl "" "Command-line utility for interacting with a Kubernetes cluster"

install -D -m 0755 "$bin/kubelet" "$work/kubelet/usr/bin/kubelet"
install -D -m 0644 "$here/debian/kubelet.service" "$work/kubelet/lib/systemd/system/kubelet.service"
mkdir -p "$work/kubelet/etc/kubernetes/manifests"
# As upstream's: the unit is enabled on install, started by kubeadm.
mkdir -p "$work/kubelet/DEBIAN"
cat >"$work/kubelet/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
  systemctl enable kubelet >/dev/null 2>&1 || true
fi
EOF
chmod 0755 "$work/kubelet/DEBIAN/postinst"
package kubelet \
  "iptables (>= 1.4.21), containernetworking-plugins, iproute2, socat, util-linux, mount, ebtables, ethtool, conntrack" \
  "Kubernetes Node Agent"

install -D -m 0755 "$bin/kubeadm" "$work/kubeadm/usr/bin/kubeadm"
install -D -m 0644 "$here/debian/10-kubeadm.conf" \
  "$work/kubeadm/lib/systemd/system/kubelet.service.d/10-kubeadm.conf"
mkdir -p "$work/kubeadm/DEBIAN"
cat >"$work/kubeadm/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
EOF
chmod 0755 "$work/kubeadm/DEBIAN/postinst"
package kubeadm "kubelet (>= 1.19.0), kubectl (>= 1.13.0), containernetworking-plugins" \
  "Kubernetes Cluster Bootstrapping Tool"

echo "build_debs: $(ls "$work/out" | tr '\n' ' ')($(du -sm "$work/out" | cut -f1) MB, $((SECONDS - start)) s)" >&2
rm -rf "$out"
mv "$work/out" "$out"
echo "$out" >&3
