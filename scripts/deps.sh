#!/usr/bin/env bash
# Installs every Debian package that vmlab's build, tests and `make run` need.
# Idempotent: packages already installed are skipped; `apt-get update` runs only
# when something is missing and the package lists are absent or older than a day.
set -euo pipefail

packages=(
  # toolchain
  g++ cmake ninja-build pkg-config make git clang-format
  # libraries (see ../shared/ENVIRONMENT.md for their CMake quirks)
  libyaml-cpp-dev libssl-dev libcli11-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcpprest-dev prometheus-cpp-dev libvirt-dev libxml2-dev libisofs-dev libarchive-dev
  # tests and `make run`: real HTTP clients and libvirt's test driver
  curl libvirt-clients libxml2-utils genisoimage
  # fuzzing: clang 19 (16 lacks std::expected with libstdc++ 12); its runtime carries libFuzzer
  clang-19 libclang-rt-19-dev
  # CRD schema cross-check (an independent JSON-schema validator)
  python3 python3-yaml python3-jsonschema
  # end-to-end tests: a real libvirtd and qemu (TCG) in a network namespace,
  # NAT networks (dnsmasq, iptables), a debootstrap Debian guest booted with
  # the Debian kernel, seed images checked with isoinfo (genisoimage)
  libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils dnsmasq-base
  iptables iproute2 debootstrap linux-image-amd64 e2fsprogs util-linux
  # validators of the generated bootstrap artifacts
  cloud-init shellcheck haproxy keepalived openssl
  # a tiny Debian repository for the apt cache tests (dpkg-deb, dpkg-scanpackages)
  dpkg-dev
  # a real etcd cluster (three members on loopback, TLS from the lab's etcd CA)
  # for the control-plane scale-down client: member list, health, removal
  etcd-server
  # containerd (its own parser checks the containerd configuration the base phase
  # writes), apt-cacher-ng and docker-registry (the caches vmlab manages), skopeo
  # (image archives in docker-save and OCI layouts for tests)
  containerd apt-cacher-ng docker-registry skopeo
  # the e2e's stand-in Kubernetes package repository (stub kubelet, kubeadm and
  # kubectl packages, signed like pkgs.k8s.io): apt-ftparchive and gpg
  apt-utils gpg
  # observability pack: promtool checks the shipped scrape config and alert rules
  # (and runs their unit tests); the observability test scrapes a controller with it
  prometheus
  # packaging: `make package` (CPack's DEB generator uses dpkg-deb/dpkg-shlibdeps from
  # dpkg-dev, and file) and the unit file's checks (systemd-analyze)
  systemd file
)

# Node.js and npm type-check the Grafana dashboards (@grafana/schema with
# TypeScript); the machines come with them, Debian's packages otherwise.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ "$status" == installed ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "deps: all ${#packages[@]} packages installed"
  exit 0
fi

echo "deps: installing ${missing[*]}"
sudo_cmd=()
if ((EUID != 0)); then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
# Installing daemons (libvirtd, haproxy, keepalived, dnsmasq) must not start
# them on this machine: the tests start their own, privately. Debian's
# policy-rc.d convention tells the packages' scripts so, for this install only.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\n# vmlab scripts/deps.sh: no service starts during the install\nexit 101\n' |
    "${sudo_cmd[@]}" tee "$policy" >/dev/null
  "${sudo_cmd[@]}" chmod 0755 "$policy"
  trap '"${sudo_cmd[@]}" rm -f "$policy"' EXIT
fi
lists=/var/lib/apt/lists
if [[ -z "$(find "$lists" -maxdepth 1 -name '*_Packages*' -mmin -1440 -print -quit 2>/dev/null)" ]]; then
  "${sudo_cmd[@]}" apt-get update -q
fi
if ! "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; then
  # A stale package list is the usual cause: refresh once and retry.
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
