#!/usr/bin/env python3
"""Download phases from a cold cache, a warm cache and a golden image, on a
real libvirtd (qemu, TCG), in one run.

A 1-node lab (1 vCPU, 1 GiB) is created four times in a row, each time timed
by vmlab's own phase durations (base + kubernetes: the phases that download;
vmlab_bootstrap_phase_duration_seconds) and from the manifest to the end of
its kubernetes phase, then deleted:
  cold     - empty apt cache, warming off: the packages come from upstream
             while the node waits;
  warm     - the same again: they come from the apt cache on the gateway;
  warming  - a fresh state dir, warming on (the default): vmlab fetches them
             into the cache while the VM boots;
  golden   - spec.cache.goldenImage: a builder VM makes the golden image first
             (counted in the wall time, not in the node's phases), then the
             node boots from it and its phases find everything installed.
Upstream is a stand-in of pkgs.k8s.io inside the namespace (stub kubelet,
kubeadm and kubectl 1.30.4-1.1 of PAYLOAD_MB each, like the real ones' 10-20
MB), served at RATE_MB per second to stand in for a distant repository (the
namespace has no way out). The guest image carries the Debian packages, so the
base phase downloads nothing in any case; node images are not pulled (no real
kubeadm here).

Run under tests/e2e/with_sandbox.sh (make bench-cache does):
  with_sandbox.sh python3 bench/cache_bench.py VMLAB [PAYLOAD_MB] [RATE_MB]
"""
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "e2e"))
import e2e_test as e2e  # noqa: E402  (the e2e's fixtures: controller, virsh, stand-in repository)

IMAGE, SCRATCH, URI = (os.environ[k] for k in ("VMLAB_IMAGE", "VMLAB_SCRATCH", "VMLAB_LIBVIRT"))
PREFIX = "172.31.78"
LAB = "bench"


def manifest(golden):
    return e2e.gold_manifest(LAB, PREFIX, IMAGE, golden=golden)


def phase_sums(ctl):
    """Sum and count of base + kubernetes phase seconds of control planes, by cache label."""
    text = ctl.get("/metrics")[1]
    out = {}
    for cache in ("caches", "golden"):
        total = 0.0
        for phase in ("base", "kubernetes"):
            total += e2e.metric(text, f'vmlab_bootstrap_phase_duration_seconds_sum{{cache="{cache}",phase="{phase}",role="control-plane"}}') or 0
        count = e2e.metric(text, f'vmlab_bootstrap_phase_duration_seconds_count{{cache="{cache}",phase="kubernetes",role="control-plane"}}') or 0
        out[cache] = (total, count)
    return out


def scenario(name, ctl, watch, golden):
    """Creates the lab, waits for its node's kubernetes phase, deletes it.
    Returns (download phases seconds, manifest to phases done seconds)."""
    cache = "golden" if golden else "caches"
    before = phase_sums(ctl)[cache]
    started = time.monotonic()
    with open(os.path.join(watch, f"{LAB}.yaml"), "w") as f:
        f.write(manifest(golden))
    done = e2e.wait_for(lambda: phase_sums(ctl)[cache][1] > before[1], f"{name}: the kubernetes phase", 1500)
    wall = time.monotonic() - started
    after = phase_sums(ctl)[cache]
    os.remove(os.path.join(watch, f"{LAB}.yaml"))
    e2e.wait_for(lambda: ctl.get(f"/api/v1/labclusters/{LAB}")[0] == 404, f"{name}: the lab to go", 120)
    if not done:
        raise RuntimeError(f"{name}: the node's kubernetes phase did not finish")
    return after[0] - before[0], wall


def main():
    vmlab = os.path.abspath(sys.argv[1])
    payload_mb = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    rate_mb = float(sys.argv[3]) if len(sys.argv) > 3 else 4
    watch = os.path.join(SCRATCH, "watch")
    os.makedirs(watch)
    upstream = e2e.serve_kubernetes_packages(SCRATCH, payload_mb * 1024 * 1024, int(rate_mb * 1024 * 1024))
    results = {}
    # One state dir (one storage pool per libvirtd); the apt cache is emptied
    # before the warming scenario.
    state = os.path.join(SCRATCH, "state")
    plan = [("no-warming", ["--cache-warming=false"], [("cold", False), ("warm", False)]),
            ("warming", [], [("warming", False), ("golden", True)])]
    try:
        for run_name, flags, scenarios in plan:
            shutil.rmtree(os.path.join(state, "cache", "apt"), ignore_errors=True)
            ctl = e2e.Controller(vmlab, watch, state, URI, SCRATCH,
                                 extra=["--kubernetes-packages", f"http://{PREFIX}.1/", *flags],
                                 log_name=f"controller-{run_name}.log")
            try:
                e2e.wait_for(lambda: ctl.get("/readyz")[0] == 200, "readyz", 30)
                for name, golden in scenarios:
                    results[name] = scenario(name, ctl, watch, golden)
            finally:
                ctl.stop()
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
    print(f"cache bench: upstream {payload_mb} MiB per package (kubelet, kubeadm, kubectl), "
          f"served at {rate_mb} MiB/s")
    for name, (phases, wall) in results.items():
        print(f"cache bench: {name:8} base+kubernetes phases {phases:6.1f} s; "
              f"manifest to kubernetes phase done {wall:6.1f} s")
    cold = results["cold"][0]
    print("cache bench: download phases relative to cold: " +
          ", ".join(f"{k} {v[0] / cold:.2f}" for k, v in results.items() if k != "cold"))
    print(json.dumps({k: {"phases_s": round(v[0], 1), "wall_s": round(v[1], 1)} for k, v in results.items()}))
    return 0 if e2e.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
