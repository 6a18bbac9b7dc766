#!/usr/bin/env bash
# The Debian package as a user gets it: built with CPack from this build,
# installed with dpkg (apt-get -f for missing dependencies), used (vmlab
# version, vmlab validate on the shipped examples, the controller started on
# the shipped settings), checked (unit, conffiles, Prometheus files), then
# removed and purged without leftovers. Needs root (dpkg).
# Usage: package_test.sh BUILD_DIR
set -euo pipefail
build=$1

if ((EUID != 0)); then
  if [[ "${CI:-}" == true ]]; then
    echo "package_test: must run as root under CI" >&2
    exit 1
  fi
  echo "package_test: skipped: installing a package needs root"
  exit 77
fi
if dpkg-query -W -f='${db:Status-Status}' vmlab 2>/dev/null | grep -qx installed; then
  echo "package_test: a vmlab package is installed on this machine already; this test installs" \
    "and removes vmlab, so remove it first (dpkg -r vmlab) or run the test elsewhere" >&2
  exit 1
fi

scratch=$(mktemp -d /tmp/vmlab-package-test.XXXXXX)
controller_pid=
cleanup() {
  [[ -n "$controller_pid" ]] && kill "$controller_pid" 2>/dev/null || true
  if dpkg-query -W -f='${db:Status-Status}' vmlab 2>/dev/null | grep -qv not-installed; then
    dpkg --purge vmlab >/dev/null 2>&1 || true
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT
failures=0
check() {  # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@" >"$scratch/out" 2>&1; then
    echo "ok: $what"
  else
    echo "FAIL: $what"
    sed 's/^/    /' "$scratch/out"
    failures=$((failures + 1))
  fi
}

echo "== make install: PREFIX and DESTDIR"
DESTDIR="$scratch/stage" cmake --install "$build" --prefix /usr >/dev/null
check "DESTDIR with the prefix /usr: settings in /etc, the unit names /usr/bin/vmlab" \
  bash -c "test -x '$scratch/stage/usr/bin/vmlab' && test -s '$scratch/stage/etc/vmlab/controller.yaml' &&
    test -d '$scratch/stage/etc/vmlab/labs' &&
    grep -qx 'ExecStart=/usr/bin/vmlab controller --config /etc/vmlab/controller.yaml' \
      '$scratch/stage/usr/lib/systemd/system/vmlab.service'"
cmake --install "$build" --prefix "$scratch/local" >/dev/null
check "another prefix: everything under it, the unit and settings name its paths" \
  bash -c "test -x '$scratch/local/bin/vmlab' &&
    grep -qx 'ExecStart=$scratch/local/bin/vmlab controller --config $scratch/local/etc/vmlab/controller.yaml' \
      '$scratch/local/lib/systemd/system/vmlab.service' &&
    grep -qx 'watch: $scratch/local/etc/vmlab/labs' '$scratch/local/etc/vmlab/controller.yaml'"

echo "== make package (cpack)"
(cd "$build" && cpack --config CPackConfig.cmake -B "$scratch/package" >"$scratch/cpack.log" 2>&1) ||
  { cat "$scratch/cpack.log"; exit 1; }
deb=$(ls "$scratch"/package/vmlab_*.deb)
echo "package: $(basename "$deb"), $(stat -c %s "$deb") bytes"
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
check "the package declares its libraries and tools" \
  bash -c "grep -q libvirt0 <<<'$depends' && grep -q libcpprest <<<'$depends' && grep -q qemu-utils <<<'$depends'"

echo "== install"
export DEBIAN_FRONTEND=noninteractive
if ! dpkg -i "$deb" >"$scratch/dpkg.log" 2>&1; then
  echo "dpkg -i left dependencies to install; apt-get -f install:"
  apt-get install -f -y -q --no-install-recommends >>"$scratch/dpkg.log" 2>&1 ||
    { cat "$scratch/dpkg.log"; exit 1; }
fi
check "installed" bash -c "dpkg-query -W -f='\${db:Status-Status}' vmlab | grep -qx installed"
for f in /usr/bin/vmlab /usr/lib/systemd/system/vmlab.service /etc/vmlab/controller.yaml \
  /usr/share/vmlab/crds/labcluster.yaml /usr/share/vmlab/examples/spk-lab.yaml \
  /usr/share/vmlab/prometheus/prometheus.yml /usr/share/vmlab/prometheus/alerts.yml \
  /usr/share/vmlab/grafana/dashboards/vmlab-overview.json \
  /usr/share/vmlab/grafana/dashboards/controller-runtime.json \
  /usr/share/vmlab/grafana/provisioning/dashboards/vmlab.yaml \
  /usr/share/doc/vmlab/deploy.md; do
  check "installs $f" test -s "$f"
done
check "the watch folder exists" test -d /etc/vmlab/labs
check "the settings are a conffile" \
  bash -c "dpkg-query -W -f='\${Conffiles}' vmlab | grep -q /etc/vmlab/controller.yaml"
check "every library of the installed binary resolves" \
  bash -c "! ldd /usr/bin/vmlab | grep 'not found'"
check "vmlab version" bash -c "/usr/bin/vmlab version | grep -E '^vmlab [0-9]+\.[0-9]+\.[0-9]+ \(commit'"
check "vmlab validate on the installed examples" /usr/bin/vmlab validate /usr/share/vmlab/examples
check "systemd-analyze verify on the installed unit" \
  systemd-analyze verify /usr/lib/systemd/system/vmlab.service
exposure=$(systemd-analyze security --offline=true /usr/lib/systemd/system/vmlab.service 2>&1 |
  sed -n 's/.*Overall exposure level for vmlab.service: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security: overall exposure $exposure (0 best, 10 worst)"
check "the unit's exposure is at most 3.0 ('OK')" \
  bash -c "[[ -n '$exposure' ]] && awk 'BEGIN { exit !($exposure <= 3.0) }'"
check "promtool check config on the installed Prometheus config" \
  promtool check config /usr/share/vmlab/prometheus/prometheus.yml

# The installed controller on the installed settings, as the unit starts it,
# with the places overridden by flags (the test driver, a scratch folder).
mkdir -p "$scratch/labs"
cp /usr/share/vmlab/examples/minimal.yaml "$scratch/labs/"
start_controller() {  # start_controller ARGS...: logs in controller.log, stdout in controller.out
  /usr/bin/vmlab controller "$@" >"$scratch/controller.out" 2>"$scratch/controller.log" &
  controller_pid=$!
  for _ in $(seq 100); do
    grep -q 'msg="API on' "$scratch/controller.log" && break
    sleep 0.1
  done
}
stop_controller() {
  kill -TERM "$controller_pid"
  check "the controller stops cleanly on SIGTERM" wait "$controller_pid"
  controller_pid=
}
start_controller --config /etc/vmlab/controller.yaml --watch "$scratch/labs" \
  --state-dir "$scratch/state" --libvirt test:///default --listen 127.0.0.1:0 \
  --apt-cache off --image-cache off
check "the controller starts on the shipped settings (logfmt, flags override the file)" \
  grep -E "^ts=[^ ]+ level=info msg=\"vmlab .* starting: watch $scratch/labs, state dir $scratch/state, libvirt test:///default\"" \
  "$scratch/controller.log"
check "logs go to stderr, nothing to stdout" test ! -s "$scratch/controller.out"
stop_controller

# Everything from the file alone, as the unit starts it: places, a flag, lists.
sed -e "s|^watch: .*|watch: $scratch/labs|" -e "s|^state-dir: .*|state-dir: $scratch/state|" \
  -e "s|^libvirt: .*|libvirt: test:///default|" -e "s|^listen: .*|listen: 127.0.0.1:0|" \
  -e "s|^apt-cache: .*|apt-cache: off|" -e "s|^image-cache: .*|image-cache: off|" \
  -e "s|^log-format: .*|log-format: json|" \
  /etc/vmlab/controller.yaml >"$scratch/controller.yaml"
printf 'simulate-guests: true\nregistry-mirror:\n  - docker.io=http://127.0.0.1:1\n  - quay.io=http://127.0.0.1:2\n' \
  >>"$scratch/controller.yaml"
start_controller --config "$scratch/controller.yaml"
check "the controller starts on settings from the file alone (watch, places, JSON logs)" \
  grep -F "\"msg\":\"vmlab $(/usr/bin/vmlab version | cut -d' ' -f2) (commit" "$scratch/controller.log"
check "the file's places, flag and lists are used" \
  bash -c "grep -qF 'starting: watch $scratch/labs, state dir $scratch/state, libvirt test:///default' '$scratch/controller.log' &&
    grep -qF 'guests are simulated' '$scratch/controller.log'"
for _ in $(seq 100); do
  [[ -e "$scratch/state/labs/solo.json" ]] && break
  sleep 0.1
done
check "the lab from the watch folder is reconciled" test -e "$scratch/state/labs/solo.json"
stop_controller

echo "== remove"
check "dpkg -r" dpkg -r vmlab
check "the program, unit and shipped files are gone" \
  bash -c "! test -e /usr/bin/vmlab && ! test -e /usr/lib/systemd/system/vmlab.service && ! test -e /usr/share/vmlab"
check "the settings stay until purge" test -e /etc/vmlab/controller.yaml
check "dpkg --purge" dpkg --purge vmlab
check "purge leaves nothing in /etc" bash -c "! test -e /etc/vmlab"
check "no longer known to dpkg" bash -c "! dpkg-query -W -f='\${db:Status-Status}' vmlab 2>/dev/null | grep -qx installed"

if ((failures > 0)); then
  echo "package_test: $failures check(s) failed"
  exit 1
fi
echo "package_test: all checks passed"
