#!/usr/bin/env bash
# Builds (or finds in its cache) the small Debian 12 guest the end-to-end
# tests boot: debootstrap minbase with systemd, cloud-init (NoCloud),
# qemu-guest-agent and ifupdown, and the Debian packages vmlab's base and
# endpoint phases install (containerd, open-iscsi, haproxy, keepalived,
# procps: guests cannot download here) and those the kubelet package depends
# on (iptables, conntrack, socat, ebtables, ethtool, containernetworking-plugins:
# what a cloud image has or its apt fetches); the host's Debian kernel modules for virtio,
# SATA cdrom, filesystems and networking; an ext4 root as a qcow2 image. It
# boots by direct kernel boot with the kernel and initrd of the host's
# linux-image-amd64 package (root=/dev/vda).
#
# Usage: guest_image.sh CACHE_DIR   (root; prints the image's directory, which
# holds base.qcow2, vmlinuz and initrd.img). The cache key is a hash of this
# recipe, the kernel and the debootstrap version: repeated runs skip the build.
set -euo pipefail

cache=${1:?usage: guest_image.sh CACHE_DIR}
# Only the image's folder goes to stdout; every tool's chatter goes to stderr.
exec 3>&1 1>&2
kver=$(find /lib/modules -mindepth 1 -maxdepth 1 -name '*-amd64' -printf '%f\n' | sort -V | tail -1)
[[ -n "$kver" && -f /boot/vmlinuz-$kver && -f /boot/initrd.img-$kver ]] ||
  { echo "guest_image: no Debian kernel (install linux-image-amd64)" >&2; exit 1; }
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[[ -n "$mirror" ]] || mirror=$(awk '/^deb / && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[[ -n "$mirror" ]] || mirror=http://deb.debian.org/debian

key=$( { cat "$0"; echo "$kver"; sha256sum "/boot/vmlinuz-$kver"; dpkg-query -W debootstrap; } |
  sha256sum | cut -c1-16)
out="$cache/debian12-$key"
if [[ -f "$out/base.qcow2" ]]; then
  echo "$out" >&3
  exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/root"
start=$SECONDS
echo "guest_image: debootstrap bookworm from $mirror (about 2 minutes)" >&2
debootstrap --variant=minbase \
  --include=systemd-sysv,udev,dbus,kmod,iproute2,iputils-ping,curl,ca-certificates,cloud-init,python3-cffi-backend,qemu-guest-agent,openssh-server,ifupdown,isc-dhcp-client,resolvconf,procps,containerd,open-iscsi,haproxy,keepalived,iptables,conntrack,socat,ebtables,ethtool,containernetworking-plugins \
  bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -30 "$work/debootstrap.log" >&2; exit 1; }

# Kernel modules the guest needs: virtio, disks and the SATA cdrom (seed),
# filesystems, networking (bridge, netfilter, overlay for the later phases).
src=/lib/modules/$kver
dst=$root/lib/modules/$kver
mkdir -p "$dst/kernel/drivers/net"
for d in arch block crypto fs lib mm net virt; do
  [[ -d $src/kernel/$d ]] && cp -a "$src/kernel/$d" "$dst/kernel/"
done
for d in virtio block char ata cdrom scsi md input base; do
  [[ -d $src/kernel/drivers/$d ]] && cp -a "$src/kernel/drivers/$d" "$dst/kernel/drivers/"
done
for f in virtio_net.ko net_failover.ko veth.ko dummy.ko vxlan tun.ko macvlan.ko ipvlan; do
  [[ -e $src/kernel/drivers/net/$f ]] && cp -a "$src/kernel/drivers/net/$f" "$dst/kernel/drivers/net/"
done
cp -a "$src"/modules.order "$src"/modules.builtin "$src"/modules.builtin.modinfo "$dst/" 2>/dev/null || true
depmod -b "$root" "$kver"
# The kernel's configuration, where the kernel package puts it (a
# distribution image has it; kubeadm's preflight reads it).
mkdir -p "$root/boot"
cp "/boot/config-$kver" "$root/boot/"

echo "/dev/vda / ext4 defaults,errors=remount-ro 0 1" >"$root/etc/fstab"
printf 'auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n' >"$root/etc/network/interfaces"
mkdir -p "$root/etc/cloud/cloud.cfg.d"
# minbase has no update-locale: the locale module would fail.
printf 'datasource_list: [ NoCloud, None ]\nlocale: false\n' >"$root/etc/cloud/cloud.cfg.d/90-vmlab-test-guest.cfg"
rm -f "$root/etc/resolvconf/resolv.conf.d/original"
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
echo "vmlab-test-guest" >"$root/etc/hostname"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log

size_mib=$(( $(du -sm "$root" | cut -f1) + 768 ))
mke2fs -q -t ext4 -L vmlab-root -d "$root" "$work/base.raw" "${size_mib}M"
qemu-img convert -O qcow2 "$work/base.raw" "$work/base.qcow2"
mkdir -p "$work/image"
mv "$work/base.qcow2" "$work/image/"
cp "/boot/vmlinuz-$kver" "$work/image/vmlinuz"
cp "/boot/initrd.img-$kver" "$work/image/initrd.img"
rm -rf "$out"
mv "$work/image" "$out"
echo "guest_image: built $out in $((SECONDS - start)) s" >&2
echo "$out" >&3
