#!/usr/bin/env python3
"""Download phases from a cold cache, a warm cache and a golden image, on a
real libvirtd (qemu, TCG), in one run.

A 1-node lab (1 vCPU, 1 GiB) is created three times in a row, each time
timed from its node's first phase report to the end of its kubernetes phase
(base + kubernetes: the phases that download), then deleted:
  cold    - the apt cache is empty: the Kubernetes packages come from upstream;
  warm    - the same lab again: they come from the apt cache on the gateway;
  golden  - spec.cache.goldenImage: a builder VM makes the golden image first
            (its time is reported apart), then the node boots from it and its
            phases find everything installed.
Upstream is a stand-in of pkgs.k8s.io inside the namespace (stub kubelet,
kubeadm and kubectl 1.30.4-1.1 of PAYLOAD_MB each, like the real ones' 10-20
MB), served at RATE_MB per second to stand in for a distant repository (the
namespace has no way out). The guest image carries the Debian packages, so the
base phase downloads nothing in any case; node images are not pulled (no real
kubeadm here). Phase durations are vmlab's own
(vmlab_bootstrap_phase_duration_seconds, tagged cache="caches"/"golden").

Run under tests/e2e/with_sandbox.sh (make bench-cache does):
  with_sandbox.sh python3 bench/cache_bench.py VMLAB [PAYLOAD_MB] [RATE_MB]
"""
import json
import os
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
    watch, state = os.path.join(SCRATCH, "watch"), os.path.join(SCRATCH, "state")
    os.makedirs(watch)
    upstream = e2e.serve_kubernetes_packages(SCRATCH, payload_mb * 1024 * 1024, int(rate_mb * 1024 * 1024))
    ctl = e2e.Controller(vmlab, watch, state, URI, SCRATCH,
                         extra=["--kubernetes-packages", f"http://{PREFIX}.1/"], log_name="controller-bench.log")
    results = {}
    try:
        e2e.wait_for(lambda: ctl.get("/readyz")[0] == 200, "readyz", 30)
        results["cold"] = scenario("cold", ctl, watch, False)
        results["warm"] = scenario("warm", ctl, watch, False)
        build_started = time.monotonic()
        results["golden"] = scenario("golden", ctl, watch, True)
        text = ctl.get("/metrics")[1]
        apt_hits = e2e.metric(text, 'vmlab_cache_requests_total{cache="apt",result="hit"}')
        apt_misses = e2e.metric(text, 'vmlab_cache_requests_total{cache="apt",result="miss"}')
    finally:
        ctl.stop()
        upstream.terminate()
        upstream.wait(timeout=10)
    del build_started
    print(f"cache bench: upstream {payload_mb} MiB per package (3 packages), served at {rate_mb} MiB/s; "
          f"apt cache hits {apt_hits:.0f}, misses {apt_misses:.0f}")
    for name, (phases, wall) in results.items():
        print(f"cache bench: {name:6} base+kubernetes phases {phases:6.1f} s; manifest to phases done {wall:6.1f} s")
    cold, warm, golden = (results[k][0] for k in ("cold", "warm", "golden"))
    print(f"cache bench: ratios of the download phases: warm/cold {warm / cold:.2f}, golden/cold {golden / cold:.2f}, "
          f"golden/warm {golden / warm:.2f}")
    print(json.dumps({k: {"phases_s": round(v[0], 1), "wall_s": round(v[1], 1)} for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
