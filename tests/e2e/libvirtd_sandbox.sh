#!/usr/bin/env bash
# Starts virtlogd and libvirtd that share nothing with the host's libvirt:
# run it inside `ip netns exec NS unshare --mount --propagation private`. A
# tmpfs over /run/libvirt and bind mounts of DIR/{etc,lib,log} over
# /etc/libvirt, /var/lib/libvirt and /var/log/libvirt live only in this mount
# namespace (which lives as long as the daemons do); the API socket is
# DIR/sock/libvirt-sock; pid files DIR/virtlogd.pid and DIR/libvirtd.pid.
#
# Usage: libvirtd_sandbox.sh DIR [restart]   ("restart" starts libvirtd again
# in the namespace that virtlogd still holds: run it under nsenter).
set -euo pipefail
dir=${1:?usage: libvirtd_sandbox.sh DIR [restart]}

if [[ "${2:-}" != restart ]]; then
  mkdir -p "$dir"/etc "$dir"/lib "$dir"/log "$dir"/sock
  cat >"$dir/etc/libvirtd.conf" <<CONF
unix_sock_dir = "$dir/sock"
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:$dir/libvirtd.log"
CONF
  # qemu as a user's host runs it: the distribution's defaults (Debian's
  # libvirt runs qemu as libvirt-qemu with dynamic ownership: libvirt hands
  # each disk, seed, kernel and log file to that user while the domain runs),
  # so the tests see what users' hosts do. Nothing is overridden here.
  printf '# vmlab test sandbox: the distribution defaults (no override)\n' >"$dir/etc/qemu.conf"
  echo "log_outputs = \"3:file:$dir/virtlogd.log\"" >"$dir/etc/virtlogd.conf"
  mkdir -p /run/libvirt /var/lib/libvirt /var/log/libvirt
  mount -t tmpfs -o mode=0755 tmpfs /run/libvirt
  mount --bind "$dir/etc" /etc/libvirt
  mount --bind "$dir/lib" /var/lib/libvirt
  mount --bind "$dir/log" /var/log/libvirt
  virtlogd -d -f /etc/libvirt/virtlogd.conf -p "$dir/virtlogd.pid"
fi
rm -f "$dir/libvirtd.pid"
libvirtd -d -f /etc/libvirt/libvirtd.conf -p "$dir/libvirtd.pid"
for _ in $(seq 100); do
  [[ -S "$dir/sock/libvirt-sock" && -s "$dir/libvirtd.pid" ]] && exit 0
  sleep 0.1
done
echo "libvirtd_sandbox: libvirtd did not come up; its log:" >&2
tail -20 "$dir/libvirtd.log" >&2 || true
exit 1
