#!/usr/bin/env bash
# Runs a command next to a real libvirtd and qemu (TCG) that share nothing with
# the host: makes a network namespace (lab networks never touch the host's),
# starts virtlogd and libvirtd in it with private state (libvirtd_sandbox.sh),
# builds or reuses the Debian test guest (guest_image.sh), and runs COMMAND in
# the namespace with
#   VMLAB_SANDBOX  the sandbox folder (socket sock/libvirt-sock, libvirtd.pid)
#   VMLAB_LIBVIRT  the libvirt URI of that daemon
#   VMLAB_IMAGE    the guest image folder (base.qcow2, vmlinuz, initrd.img)
#   VMLAB_SCRATCH  a scratch folder (removed afterwards unless COMMAND failed)
#   VMLAB_RESTART_LIBVIRTD  a shell command that starts libvirtd again
# Cleans up everything it started, by PID, whatever happens.
#
# Usage: with_sandbox.sh COMMAND...   Needs root. Without root it skips, except
# under CI=true where a skip is a failure. VMLAB_E2E_CACHE: guest image cache
# (default /var/cache/vmlab-e2e).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
(($# > 0)) || { echo "usage: with_sandbox.sh COMMAND..." >&2; exit 2; }

unavailable() {
  if [[ "${CI:-}" == true ]]; then
    echo "with_sandbox: FAILED: $* (CI=true: the tests on a real libvirtd must run)" >&2
    exit 1
  fi
  echo "with_sandbox: SKIPPED: $*"
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
# As libvirt-daemon-system's postinst does: qemu's user may open /dev/kvm.
# (Without it libvirtd, which checks /dev/kvm as that user, probes qemu's
# capabilities again on every call and never gets to define a domain.)
if getent group kvm >/dev/null && ! id -nG libvirt-qemu | grep -qw kvm; then
  usermod -a -G kvm libvirt-qemu
fi

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
    if [[ -s $pidfile ]]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
  done
  ip netns delete "$ns" 2>/dev/null || true
  if ((code != 0)); then
    echo "with_sandbox: logs kept in $scratch" >&2
  else
    rm -rf "$scratch"
  fi
}
trap cleanup EXIT

ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" unshare --mount --propagation private "$here/libvirtd_sandbox.sh" "$sandbox"

export VMLAB_SANDBOX=$sandbox VMLAB_IMAGE=$image VMLAB_SCRATCH=$scratch
export VMLAB_LIBVIRT="qemu:///system?socket=$sandbox/sock/libvirt-sock"
export VMLAB_RESTART_LIBVIRTD="nsenter --mount=/proc/\$(cat $sandbox/virtlogd.pid)/ns/mnt $here/libvirtd_sandbox.sh $sandbox restart"
ip netns exec "$ns" "$@"
