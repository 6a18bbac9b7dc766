#!/usr/bin/env bash
# `make e2e`: vmlab against a real libvirtd and qemu (TCG), guests booting for
# real. Makes a network namespace (lab networks never touch the host's), starts
# virtlogd and libvirtd in it with private state (libvirtd_sandbox.sh), builds
# or reuses the Debian test guest (guest_image.sh), and runs e2e_test.py in the
# namespace. Cleans up everything it started, by PID, whatever happens.
#
# Usage: run.sh VMLAB   Needs root. Without root it skips, except under CI=true
# where a skip is a failure. VMLAB_E2E_CACHE: guest image cache
# (default /var/cache/vmlab-e2e).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vmlab=$(realpath "${1:?usage: run.sh VMLAB}")

unavailable() {
  if [[ "${CI:-}" == true ]]; then
    echo "e2e: FAILED: $* (CI=true: the end-to-end tests must run)" >&2
    exit 1
  fi
  echo "e2e: SKIPPED: $*"
  exit 0
}
((EUID == 0)) || unavailable "needs root for network namespaces and libvirtd"
for tool in libvirtd virtlogd qemu-system-x86_64 qemu-img dnsmasq debootstrap ip unshare nsenter virsh; do
  command -v "$tool" >/dev/null || unavailable "$tool is missing (make deps installs it)"
done
[[ -c /dev/net/tun ]] || unavailable "/dev/net/tun is missing"

# Debian's libvirtd resolves its default qemu user and group before reading
# qemu.conf; libvirt-daemon-system would create them, we do not install it.
getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
  useradd --system --no-create-home --home-dir /var/lib/libvirt --shell /usr/sbin/nologin \
    -g libvirt-qemu libvirt-qemu

image=$("$here/guest_image.sh" "${VMLAB_E2E_CACHE:-/var/cache/vmlab-e2e}")

ns="vmlab-e2e-$$"
scratch=$(mktemp -d /tmp/vmlab-e2e.XXXXXX)
chmod 0755 "$scratch"
sandbox="$scratch/libvirt"
cleanup() {
  local code=$?
  if [[ -S "$sandbox/sock/libvirt-sock" ]]; then
    local virsh=(ip netns exec "$ns" virsh -q -c "qemu:///system?socket=$sandbox/sock/libvirt-sock")
    for d in $("${virsh[@]}" list --name 2>/dev/null); do "${virsh[@]}" destroy "$d" >/dev/null 2>&1 || true; done
    for n in $("${virsh[@]}" net-list --name 2>/dev/null); do "${virsh[@]}" net-destroy "$n" >/dev/null 2>&1 || true; done
  fi
  for pidfile in "$sandbox/libvirtd.pid" "$sandbox/virtlogd.pid"; do
    [[ -s $pidfile ]] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  ip netns delete "$ns" 2>/dev/null || true
  if ((code != 0)); then
    echo "e2e: logs kept in $scratch" >&2
  else
    rm -rf "$scratch"
  fi
}
trap cleanup EXIT

ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" unshare --mount --propagation private "$here/libvirtd_sandbox.sh" "$sandbox"

ip netns exec "$ns" python3 "$here/e2e_test.py" \
  --vmlab "$vmlab" --sandbox "$sandbox" --image "$image" --scratch "$scratch" \
  --restart-libvirtd "nsenter --mount=/proc/\$(cat $sandbox/virtlogd.pid)/ns/mnt $here/libvirtd_sandbox.sh $sandbox restart"
