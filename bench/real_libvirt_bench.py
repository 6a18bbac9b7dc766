#!/usr/bin/env python3
"""Parallel creation on a real libvirtd (qemu, TCG): a 1-node lab against a
3-node lab (1 control plane + 2 workers, 1 vCPU each), dropped into the watch
folder of one `vmlab controller`. For each: seconds from the manifest to all
domains running (InfrastructureReady=True) and to every guest's "user-data
done" console marker (booted, cloud-init finished). Medians over REPS rounds
and the 3-node/1-node ratios (target: at most 1.5 for domains running).

Run under tests/e2e/with_sandbox.sh (make bench-real does):
  with_sandbox.sh python3 bench/real_libvirt_bench.py VMLAB [REPS]
"""
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except (urllib.error.URLError, ConnectionError, KeyError, ValueError):
            pass
        time.sleep(0.1)
    return False


def main():
    vmlab = os.path.abspath(sys.argv[1])
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    image, scratch, uri = (os.environ[k] for k in ("VMLAB_IMAGE", "VMLAB_SCRATCH", "VMLAB_LIBVIRT"))
    watch, state = os.path.join(scratch, "watch"), os.path.join(scratch, "state")
    os.makedirs(watch)
    log = open(os.path.join(scratch, "controller.log"), "w")
    proc = subprocess.Popen([vmlab, "controller", "--watch", watch, "--state-dir", state,
                             "--libvirt", uri, "--listen", "127.0.0.1:0", "--debounce", "50ms",
                             "--deletion-grace", "1s", "--resync", "5s"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = None

    def api_url():
        nonlocal url
        with open(log.name) as f:
            m = re.search(r"API on (http://127\.0\.0\.1:\d+)", f.read())
        url = m.group(1) if m else None
        return url

    def get(path):
        try:
            with urllib.request.urlopen(url + path, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, ""

    def ready(name):
        status, body = get(f"/api/v1/labclusters/{name}")
        if status != 200:
            return False
        conditions = json.loads(body)["status"].get("conditions", [])
        return any(c["type"] == "InfrastructureReady" and c["status"] == "True" for c in conditions)

    def booted(node):
        try:
            with open(os.path.join(state, "console", f"{node}.log"), errors="replace") as f:
                return f"vmlab: user-data done on {node}" in f.read()
        except FileNotFoundError:
            return False

    results = {1: {"running": [], "booted": []}, 3: {"running": [], "booted": []}}
    try:
        if not wait_for(api_url, 30) or not wait_for(lambda: get("/readyz")[0] == 200, 30):
            print("controller did not start", file=sys.stderr)
            return 1
        for rep in range(reps):
            for size in (1, 3):
                name = f"par{size}r{rep}"
                nodes = [f"{name}-cp-1"] + [f"{name}-worker-{i}" for i in range(1, size)]
                path = os.path.join(watch, f"{name}.yaml")
                with open(path, "w") as f:
                    f.write(f"""apiVersion: vmlab.io/v1alpha1
kind: LabCluster
metadata: {{name: {name}}}
spec:
  kubernetes: {{version: "1.30.4"}}
  network: {{cidr: 172.31.{100 + rep * 2 + size // 3}.0/24}}
  controlPlane: {{replicas: 1, cpus: 1, memoryMiB: 1024, diskGiB: 5}}
  workers: {{replicas: {size - 1}, cpus: 1, memoryMiB: 1024, diskGiB: 5}}
  image: {{path: {image}/base.qcow2, kernel: {image}/vmlinuz, initrd: {image}/initrd.img,
          cmdline: "root=/dev/vda rw console=ttyS0 net.ifnames=0"}}
""")
                start = time.monotonic()
                if not wait_for(lambda: ready(name), 120):
                    print(f"{name}: domains not running within 120 s", file=sys.stderr)
                    return 1
                results[size]["running"].append(time.monotonic() - start)
                if not wait_for(lambda: all(booted(n) for n in nodes), 600):
                    print(f"{name}: guests did not finish cloud-init within 600 s", file=sys.stderr)
                    return 1
                results[size]["booted"].append(time.monotonic() - start)
                os.remove(path)
                if not wait_for(lambda: get(f"/api/v1/labclusters/{name}")[0] == 404, 120):
                    print(f"{name}: not deleted", file=sys.stderr)
                    return 1
                print(f"round {rep + 1}/{reps}, {size}-node lab: domains running "
                      f"{results[size]['running'][-1]:.2f} s, guests booted "
                      f"{results[size]['booted'][-1]:.1f} s", flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    for what in ("running", "booted"):
        one, three = statistics.median(results[1][what]), statistics.median(results[3][what])
        label = "all domains running" if what == "running" else "all guests booted (cloud-init done)"
        print(f"real libvirtd, {label}: 1 node median {one:.2f} s, 3 nodes median {three:.2f} s, "
              f"ratio {three / one:.2f} (over {reps} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
