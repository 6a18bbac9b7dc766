#!/usr/bin/env python3
"""The controller with simulated guests (libvirt test driver):

1. controller overhead: a 3 control plane + 50 worker lab, phases played at
   once (--simulate-speed 0), from dropping the manifest to Ready=True
   (median of ROUNDS; includes making the lab's secrets);
2. 1000 simulated nodes (20 labs x 50) playing their phases at realistic
   speed: the controller's CPU (share of one core) and resident memory while
   they report, from the first lab's domains running to every lab Ready.

Usage: simulated_scale.py VMLAB [ROUNDS]
"""
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from procstat import cpu_seconds, rss_mib

VMLAB = os.path.abspath(sys.argv[1])
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3


def manifest(name, index, control_planes, workers):
    return (f"apiVersion: vmlab.io/v1alpha1\nkind: LabCluster\nmetadata:\n  name: {name}\n"
            f"spec:\n  kubernetes:\n    version: \"1.30.4\"\n  network:\n"
            f"    cidr: 172.{20 + index // 256}.{index % 256}.0/24\n"
            f"  controlPlane:\n    replicas: {control_planes}\n"
            f"  workers:\n    replicas: {workers}\n")


class Controller:
    def __init__(self, root, speed):
        self.watch = os.path.join(root, "watch")
        os.makedirs(self.watch, exist_ok=True)
        self.log_path = os.path.join(root, f"controller-{time.monotonic_ns()}.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [VMLAB, "controller", "--watch", self.watch, "--state-dir", os.path.join(root, "state"),
             "--libvirt", "test:///default", "--listen", "127.0.0.1:0", "--debounce", "50ms",
             "--deletion-grace", "1s", "--simulate-guests", "--simulate-speed", str(speed)],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.url = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not self.url:
            m = re.search(r"API on (http://[0-9.:]+)", open(self.log_path).read())
            self.url = m.group(1) if m else None
            time.sleep(0.02)

    def labs(self):
        with urllib.request.urlopen(self.url + "/api/v1/labclusters", timeout=10) as r:
            return json.loads(r.read())["items"]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.log.close()


def condition(lab, kind):
    for c in lab.get("status", {}).get("conditions", []):
        if c["type"] == kind:
            return c.get("status")
    return None


def wait(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except (urllib.error.URLError, ConnectionError, ValueError, KeyError):
            pass
        time.sleep(0.01)
    return False


def main():
    root = tempfile.mkdtemp(prefix="vmlab-simscale-")
    try:
        ctl = Controller(root, 0)
        times = []
        for r in range(ROUNDS):
            name = f"big{r}"
            path = os.path.join(ctl.watch, f"{name}.yaml")
            with open(path, "w") as f:
                f.write(manifest(name, r, 3, 50))
            start = time.monotonic()
            ok = wait(lambda: any(l["metadata"]["name"] == name and condition(l, "Ready") == "True"
                                  for l in ctl.labs()), 300)
            if not ok:
                print(f"{name} did not become Ready", file=sys.stderr)
                return 1
            times.append(time.monotonic() - start)
            os.remove(path)
            wait(lambda: all(l["metadata"]["name"] != name for l in ctl.labs()), 120)
        ctl.stop()
        print(f"simulated guests, 3 + 50 node lab, phases at once: manifest to Ready median "
              f"{statistics.median(times):.2f} s over {ROUNDS} rounds (all: "
              f"{', '.join(f'{t:.2f}' for t in times)})")

        ctl = Controller(os.path.join(root, "thousand"), 1)
        for i in range(20):
            with open(os.path.join(ctl.watch, f"lab{i}.yaml"), "w") as f:
                f.write(manifest(f"lab{i}", 100 + i, 1, 49))
        if not wait(lambda: len(ctl.labs()) == 20 and all(
                condition(l, "InfrastructureReady") == "True" for l in ctl.labs()), 600):
            print("the 20 labs' domains did not all run", file=sys.stderr)
            return 1
        cpu0, t0 = cpu_seconds(ctl.proc.pid), time.monotonic()
        peak = rss_mib(ctl.proc.pid)
        def all_ready():
            nonlocal peak
            peak = max(peak, rss_mib(ctl.proc.pid))
            return all(condition(l, "Ready") == "True" for l in ctl.labs())
        if not wait(all_ready, 600):
            print("the 1000 simulated nodes did not all finish", file=sys.stderr)
            return 1
        used, elapsed = cpu_seconds(ctl.proc.pid) - cpu0, time.monotonic() - t0
        print(f"simulated guests, 1000 nodes (20 labs x 50) reporting their phases for "
              f"{elapsed:.0f} s: controller CPU {100 * used / elapsed:.1f}% of one core "
              f"({used:.1f} s), resident memory peak {peak:.1f} MiB")
        ctl.stop()
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
