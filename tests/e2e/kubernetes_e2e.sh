#!/usr/bin/env bash
# make e2e-kubernetes: builds (or finds in its cache) the real Kubernetes
# 1.20.2 artifacts from Debian's source (scripts/kubernetes/artifacts.sh), then
# runs tests/e2e/kubernetes_test.py next to a private libvirtd
# (with_sandbox.sh). Usage: kubernetes_e2e.sh VMLAB [TEST ARGS...]. Needs
# root; without it the test is skipped, except under CI=true.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vmlab=${1:?usage: kubernetes_e2e.sh VMLAB [TEST ARGS...]}
shift
if ((EUID != 0)); then
  if [[ "${CI:-}" == true ]]; then
    echo "kubernetes_e2e: FAILED: needs root (CI=true: the real cluster test must run)" >&2
    exit 1
  fi
  echo "kubernetes_e2e: SKIPPED: needs root to build the artifacts and run libvirtd"
  exit 0
fi
artifacts=$(bash "$here/../../scripts/kubernetes/artifacts.sh")
debs=$(awk '$1 == "debs" {print $2}' <<<"$artifacts")
images=$(awk '$1 == "images" {print $2}' <<<"$artifacts")
binaries=$(awk '$1 == "binaries" {print $2}' <<<"$artifacts")
# The host's kubectl when it has one (a user's newer client), else the one
# built with the cluster.
kubectl=$(command -v kubectl || echo "$binaries/bin/kubectl")
exec bash "$here/with_sandbox.sh" python3 "$here/kubernetes_test.py" "$vmlab" \
  --debs "$debs" --images "$images" --kubectl "$kubectl" --kubeadm "$binaries/bin/kubeadm" "$@"
