#!/usr/bin/env bash
# The Debian packages that build Kubernetes from Debian's source and package
# it (scripts/kubernetes/artifacts.sh); skips what is installed.
set -euo pipefail
packages=(golang-1.19-go rsync golang-github-modern-go-reflect2-dev dpkg-dev gcc libc6-dev make
  umoci mmdebstrap etcd-server skopeo apt-utils gpg)
missing=()
for p in "${packages[@]}"; do
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" == installed ]] || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0
echo "kubernetes deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "${missing[@]}" ||
  { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; }
