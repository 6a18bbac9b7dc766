#!/usr/bin/env bash
# The real Kubernetes artifacts vmlab's e2e-kubernetes test boots, made from
# Debian 12's own kubernetes source package (1.20.2) and cached by key under
# CACHE_DIR (default /var/cache/vmlab-kubernetes): the binaries, the kubelet,
# kubeadm and kubectl Debian packages, and the control plane's OCI images.
# A fresh machine builds once (about 15 minutes on 2 cores); later runs reuse it.
#
# Usage: artifacts.sh [CACHE_DIR]   (root). Prints three lines on stdout:
#   binaries DIR   debs DIR   images DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${1:-${VMLAB_KUBERNETES_CACHE:-/var/cache/vmlab-kubernetes}}
bash "$here/deps.sh" >&2
start=$SECONDS
binaries=$(bash "$here/build_binaries.sh" "$cache")
debs=$(bash "$here/build_debs.sh" "$binaries" "$cache")
images=$(bash "$here/build_images.sh" "$binaries" "$cache")
echo "artifacts: ready in $((SECONDS - start)) s (binaries: $(tail -1 "$binaries/VERSION"))" >&2
echo "binaries $binaries"
echo "debs $debs"
echo "images $images"
