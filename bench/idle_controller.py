#!/usr/bin/env python3
"""CPU and memory of an idle `vmlab controller` with 100 labs.

Starts the controller (libvirt test driver) on a folder of 100 valid
manifests, waits until they are all reconciled, then measures the CPU it uses
over SECONDS of nothing changing (from /proc/PID/stat) and its resident
memory. Usage: idle_controller.py VMLAB [SECONDS]
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from procstat import cpu_seconds, rss_mib

vmlab = sys.argv[1]
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0


root = tempfile.mkdtemp(prefix="vmlab-idle-")
watch = os.path.join(root, "watch")
os.makedirs(watch)
for i in range(100):
    with open(os.path.join(watch, f"lab{i}.yaml"), "w") as f:
        f.write(f"apiVersion: vmlab.io/v1alpha1\nkind: LabCluster\nmetadata:\n  name: lab{i}\n"
                f"spec:\n  kubernetes:\n    version: \"1.30.4\"\n  network:\n"
                f"    cidr: 172.{16 + i // 256}.{i % 256}.0/24\n")
log_path = os.path.join(root, "controller.log")
log = open(log_path, "w")
proc = subprocess.Popen([vmlab, "controller", "--watch", watch, "--state-dir",
                         os.path.join(root, "state"), "--libvirt", "test:///default", "--listen",
                         "127.0.0.1:0"], stdout=log, stderr=subprocess.STDOUT)
try:
    url = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not url:
        match = re.search(r"API on (http://[0-9.:]+)", open(log_path).read())
        url = match.group(1) if match else None
        time.sleep(0.05)
    # Every lab's secrets (5 RSA keys) are made on its first reconcile: allow minutes.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url + "/api/v1/labclusters", timeout=5) as r:
            items = json.loads(r.read())["items"]
        if len(items) == 100 and all(i["metadata"]["generation"] == 1 for i in items):
            break
        time.sleep(0.1)
    time.sleep(1)
    start_cpu, start = cpu_seconds(proc.pid), time.monotonic()
    time.sleep(seconds)
    used, elapsed = cpu_seconds(proc.pid) - start_cpu, time.monotonic() - start
    print(f"idle controller, 100 labs, {elapsed:.0f} s: CPU {100 * used / elapsed:.3f}% of one core "
          f"({used:.2f} s), resident memory {rss_mib(proc.pid):.1f} MiB")
finally:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    log.close()
    shutil.rmtree(root, ignore_errors=True)
