#!/usr/bin/env python3
"""Parallel creation on a real libvirtd (qemu, TCG), 1 vCPU per node.

Labs are dropped into the watch folder of a `vmlab controller`; each is timed
from the manifest to all its domains running (InfrastructureReady=True), then
deleted (and gone) before the next:
  - REPS rounds of a 1-node lab and a 3-node lab (1 control plane + 2
    workers), created side by side (the default), and of the 3-node lab with
    `--parallel-nodes 1` (one node after another) as the serial baseline;
  - one round, 1 node and 3 nodes, also timed to every guest's "user-data
    done" console marker (booted, cloud-init finished).
Prints medians and the 3-node/1-node ratios (target: at most 1.5 for domains
running) and the raw libvirt floor: `virsh start` of one domain against three
at once, on the same daemon.

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
import threading
import time
import urllib.error
import urllib.request

IMAGE, SCRATCH, URI = (os.environ[k] for k in ("VMLAB_IMAGE", "VMLAB_SCRATCH", "VMLAB_LIBVIRT"))
STATE = os.path.join(SCRATCH, "state")
WATCH = os.path.join(SCRATCH, "watch")
serial_labs = 0


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except (urllib.error.URLError, ConnectionError, KeyError, ValueError):
            pass
        time.sleep(0.05)
    return False


class Controller:
    def __init__(self, vmlab, extra):
        self.log = open(os.path.join(SCRATCH, f"controller-{time.monotonic_ns()}.log"), "w")
        self.proc = subprocess.Popen(
            [vmlab, "controller", "--watch", WATCH, "--state-dir", STATE, "--libvirt", URI,
             "--listen", "127.0.0.1:0", "--debounce", "50ms", "--deletion-grace", "1s",
             "--resync", "5s", *extra], stdout=self.log, stderr=subprocess.STDOUT)
        self.url = None
        if not wait_for(self._find_url, 30) or not wait_for(lambda: self.get("/readyz")[0] == 200, 30):
            raise RuntimeError("the controller did not start")

    def _find_url(self):
        with open(self.log.name) as f:
            m = re.search(r"API on (http://127\.0\.0\.1:\d+)", f.read())
        self.url = m.group(1) if m else None
        return self.url

    def get(self, path):
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, ""

    def ready(self, name):
        status, body = self.get(f"/api/v1/labclusters/{name}")
        if status != 200:
            return False
        conditions = json.loads(body)["status"].get("conditions", [])
        return any(c["type"] == "InfrastructureReady" and c["status"] == "True" for c in conditions)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def booted(node):
    try:
        with open(os.path.join(STATE, "console", f"{node}.log"), errors="replace") as f:
            return f"vmlab: node {node} phase base started" in f.read()
    except FileNotFoundError:
        return False


def time_lab(ctl, name, size, boot):
    """Seconds to all domains running and, with boot, to all guests booted."""
    global serial_labs
    serial_labs += 1
    nodes = [f"{name}-cp-1"] + [f"{name}-worker-{i}" for i in range(1, size)]
    path = os.path.join(WATCH, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(f"""apiVersion: vmlab.io/v1alpha1
kind: LabCluster
metadata: {{name: {name}}}
spec:
  kubernetes: {{version: "1.30.4"}}
  network: {{cidr: 172.31.{100 + serial_labs}.0/24}}
  controlPlane: {{replicas: 1, cpus: 1, memoryMiB: 1024, diskGiB: 5}}
  workers: {{replicas: {size - 1}, cpus: 1, memoryMiB: 1024, diskGiB: 5}}
  image: {{path: {IMAGE}/base.qcow2, kernel: {IMAGE}/vmlinuz, initrd: {IMAGE}/initrd.img,
          cmdline: "root=/dev/vda rw console=ttyS0 net.ifnames=0"}}
""")
    start = time.monotonic()
    if not wait_for(lambda: ctl.ready(name), 120):
        raise RuntimeError(f"{name}: domains not running within 120 s")
    running = time.monotonic() - start
    boot_time = None
    if boot:
        if not wait_for(lambda: all(booted(n) for n in nodes), 600):
            raise RuntimeError(f"{name}: guests did not start their phases within 600 s")
        boot_time = time.monotonic() - start
    os.remove(path)
    if not wait_for(lambda: ctl.get(f"/api/v1/labclusters/{name}")[0] == 404, 120):
        raise RuntimeError(f"{name}: not deleted")
    return running, boot_time


def virsh_floor(vmlab, reps):
    """`virsh start` of one domain against three at once (the lab's own domains)."""
    ctl = Controller(vmlab, ["--parallel-nodes", "8"])
    path = os.path.join(WATCH, "floor.yaml")
    with open(path, "w") as f:
        f.write(f"""apiVersion: vmlab.io/v1alpha1
kind: LabCluster
metadata: {{name: floor}}
spec:
  kubernetes: {{version: "1.30.4"}}
  network: {{cidr: 172.31.99.0/24}}
  controlPlane: {{replicas: 1, cpus: 1, memoryMiB: 1024, diskGiB: 5}}
  workers: {{replicas: 2, cpus: 1, memoryMiB: 1024, diskGiB: 5}}
  image: {{path: {IMAGE}/base.qcow2, kernel: {IMAGE}/vmlinuz, initrd: {IMAGE}/initrd.img,
          cmdline: "root=/dev/vda rw console=ttyS0 net.ifnames=0"}}
""")
    if not wait_for(lambda: ctl.ready("floor"), 120):
        raise RuntimeError("floor: domains not running")
    ctl.stop()  # virsh alone from here
    virsh = ["virsh", "-q", "-c", URI]
    domains = ["floor-cp-1", "floor-worker-1", "floor-worker-2"]

    def destroy():
        for d in domains:
            subprocess.run(virsh + ["destroy", d], capture_output=True)
        time.sleep(1)

    ones, threes = [], []
    for _ in range(reps):
        destroy()
        start = time.monotonic()
        subprocess.run(virsh + ["start", domains[0]], check=True, capture_output=True)
        ones.append(time.monotonic() - start)
        destroy()
        start = time.monotonic()
        threads = [threading.Thread(target=subprocess.run, args=(virsh + ["start", d],),
                                    kwargs={"check": True, "capture_output": True}) for d in domains]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        threes.append(time.monotonic() - start)
    ctl = Controller(vmlab, [])
    os.remove(path)
    if not wait_for(lambda: ctl.get("/api/v1/labclusters/floor")[0] == 404, 120):
        raise RuntimeError("floor: not deleted")
    ctl.stop()
    return statistics.median(ones), statistics.median(threes)


def main():
    vmlab = os.path.abspath(sys.argv[1])
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    os.makedirs(WATCH)
    running = {"1": [], "3": [], "3 serial": []}
    try:
        ctl = Controller(vmlab, [])
        for rep in range(reps):
            running["1"].append(time_lab(ctl, f"one{rep}", 1, False)[0])
            running["3"].append(time_lab(ctl, f"three{rep}", 3, False)[0])
        one_run, one_boot = time_lab(ctl, "bootone", 1, True)
        three_run, three_boot = time_lab(ctl, "bootthree", 3, True)
        ctl.stop()
        ctl = Controller(vmlab, ["--parallel-nodes", "1"])
        for rep in range(reps):
            running["3 serial"].append(time_lab(ctl, f"serial{rep}", 3, False)[0])
        ctl.stop()
        floor_one, floor_three = virsh_floor(vmlab, reps)
    except RuntimeError as e:
        print(f"real_libvirt_bench: {e}", file=sys.stderr)
        return 1
    one, three, serial = (statistics.median(running[k]) for k in ("1", "3", "3 serial"))
    print(f"real libvirtd, manifest to all domains running (median of {reps}): 1 node {one:.2f} s, "
          f"3 nodes {three:.2f} s (ratio {three / one:.2f}; target <= 1.5), 3 nodes one after "
          f"another {serial:.2f} s (ratio {serial / one:.2f})")
    print(f"real libvirtd, manifest to all guests booted (cloud-init running the phases; one round): 1 node "
          f"{one_boot:.1f} s, 3 nodes {three_boot:.1f} s (ratio {three_boot / one_boot:.2f})")
    print(f"libvirt alone, `virsh start` (median of {reps}): 1 domain {floor_one:.2f} s, 3 at "
          f"once {floor_three:.2f} s (ratio {floor_three / floor_one:.2f}); {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
