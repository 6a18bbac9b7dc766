#!/usr/bin/env bash
# Makes the OCI images kubeadm 1.20 runs, from the binaries build_binaries.sh
# made and Debian's packages, with umoci (nothing is pulled from a registry):
#   kube-apiserver, kube-controller-manager, kube-scheduler   static binary, from scratch
#   kube-proxy    the static binary on a small Debian root (iptables, conntrack, ipset, kmod)
#   etcd          Debian's etcd-server binary on the same Debian root (shared layer)
#   pause         pause.c, static, from scratch
# Names and tags are those kubeadm 1.20 asks for with imageRepository
# registry.k8s.io. One deviation, documented: Debian has etcd 3.4.23, kubeadm
# 1.20 asks for etcd:3.4.13-0 (same minor); the image under that tag runs 3.4.23.
#
# Usage: build_images.sh BINARIES_DIR CACHE_DIR   (root; prints the folder
# holding layout/ (an OCI image layout, one ref per image) and images.txt
# (lines "REF IMAGE")). Cached by a key of this recipe, the binaries and the
# Debian packages used.
set -euo pipefail
bin=${1:?usage: build_images.sh BINARIES_DIR CACHE_DIR}/bin
cache=${2:?usage: build_images.sh BINARIES_DIR CACHE_DIR}
exec 3>&1 1>&2
here=$(cd "$(dirname "$0")" && pwd)

key=$( { cat "$0"; sha256sum "$bin"/*; dpkg-query -W umoci mmdebstrap etcd-server; } | sha256sum | cut -c1-16)
out="$cache/images-$key"
if [[ -f "$out/images.txt" ]]; then
  echo "build_images: cached in $out" >&2
  echo "$out" >&3
  exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d "$cache/.images-XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$SECONDS
layout="$work/out/layout"
mkdir -p "$work/out"
umoci init --layout "$layout"

mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[[ -n "$mirror" ]] || mirror=http://deb.debian.org/debian
# The Debian root kube-proxy and etcd run on: no docs, no locales.
mmdebstrap --variant=essential --include=iptables,conntrack,ipset,kmod,ca-certificates \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
  bookworm "$work/debian.tar" "$mirror" >"$work/mmdebstrap.log" 2>&1 ||
  { tail -20 "$work/mmdebstrap.log" >&2; exit 1; }
echo "build_images: Debian root ($((SECONDS - start)) s, $(du -m "$work/debian.tar" | cut -f1) MB)" >&2

# image REF NAME ENTRY BASE FILE...: an image REF in the layout; BASE is
# "scratch" or "debian"; each FILE is SRC:DEST (DEST absolute in the image).
image() {
  local ref=$1 name=$2 entry=$3 base=$4
  shift 4
  local bundle="$work/bundle-$ref"
  if [[ $base == debian ]]; then
    if [[ ! -d "$work/debian-ref" ]]; then
      umoci new --image "$layout:debian-base"
      umoci unpack --image "$layout:debian-base" "$work/bundle-debian"
      tar -C "$work/bundle-debian/rootfs" -xf "$work/debian.tar"
      umoci repack --image "$layout:debian-base" "$work/bundle-debian"
      rm -rf "$work/bundle-debian"
      mkdir "$work/debian-ref"
    fi
    umoci tag --image "$layout:debian-base" "$ref"
  else
    umoci new --image "$layout:$ref"
  fi
  umoci unpack --image "$layout:$ref" "$bundle"
  local root="$bundle/rootfs"
  if [[ $base == scratch ]]; then
    # What a distroless base gives: passwd/group for root and nobody, tmp,
    # nsswitch (Kubernetes' own build/nsswitch.conf), CA certificates.
    mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/usr/local/bin"
    chmod 1777 "$root/tmp"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"
    cp "$here/nsswitch.conf" "$root/etc/nsswitch.conf"
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  fi
  local pair
  for pair in "$@"; do
    install -D -m 0755 "${pair%%:*}" "$root${pair#*:}"
  done
  umoci repack --image "$layout:$ref" "$bundle"
  rm -rf "$bundle"
  umoci config --image "$layout:$ref" --config.entrypoint "$entry" \
    --config.env PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --author "vmlab scripts/kubernetes/build_images.sh" \
    --history.comment "built from Debian's kubernetes source package"
  echo "$ref $name" >>"$work/out/images.txt"
  echo "build_images: $name ($((SECONDS - start)) s)" >&2
}

v=v1.20.2
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  image "$c-$v" "registry.k8s.io/$c:$v" "/usr/local/bin/$c" scratch "$bin/$c:/usr/local/bin/$c"
done
image "kube-proxy-$v" "registry.k8s.io/kube-proxy:$v" /usr/local/bin/kube-proxy debian \
  "$bin/kube-proxy:/usr/local/bin/kube-proxy"
image "etcd-3.4.13-0" "registry.k8s.io/etcd:3.4.13-0" /usr/local/bin/etcd debian \
  "/usr/bin/etcd:/usr/local/bin/etcd"
image "pause-3.2" "registry.k8s.io/pause:3.2" /pause scratch "$bin/pause:/pause"
umoci rm --image "$layout:debian-base"
umoci gc --layout "$layout"
echo "build_images: $(wc -l <"$work/out/images.txt") images, $(du -sm "$layout" | cut -f1) MB, $((SECONDS - start)) s" >&2
echo "total $((SECONDS - start)) s" >"$work/out/BUILD"
rm -rf "$out"
mv "$work/out" "$out"
echo "$out" >&3
