#!/usr/bin/env python3
"""Soak: 100 labs of 10 simulated nodes (1000 nodes) under random edits.

The controller runs with simulated guests on libvirt's test driver. For
SECONDS, a seeded random stream edits the watch folder about once a second:
scale a lab's workers (5..12), break a manifest (an invalid edit, fixed a few
steps later), delete a lab and create it again. The controller's resident
memory and CPU are sampled every 5 s. Then drift is injected into every lab at
once (the controller is restarted: the test driver lives in its process, so
the new one finds every lab's network, volumes and domains gone) and repaired.

At the end every lab must converge to the last valid manifest written for it:
Ready, its spec the one written (no lost update), observedGeneration equal to
generation, as many nodes as the spec says, and no lab that was deleted left.

Usage: soak.py VMLAB [SECONDS] [LABS]
"""
import json
import os
import random
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
SECONDS = int(sys.argv[2]) if len(sys.argv) > 2 else 600
LABS = int(sys.argv[3]) if len(sys.argv) > 3 else 100
SEED = int(os.environ.get("VMLAB_SOAK_SEED", "1126"))


def manifest(index, workers, broken=False):
    replicas = "many" if broken else str(workers)
    return (f"apiVersion: vmlab.io/v1alpha1\nkind: LabCluster\nmetadata:\n  name: soak{index}\n"
            f"spec:\n  kubernetes:\n    version: \"1.30.4\"\n  network:\n"
            f"    cidr: 172.{16 + index // 256}.{index % 256}.0/24\n"
            f"  workers:\n    replicas: {replicas}\n")


class Controller:
    def __init__(self, root, n):
        self.watch = os.path.join(root, "watch")
        self.log_path = os.path.join(root, f"controller-{n}.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [VMLAB, "controller", "--watch", self.watch, "--state-dir", os.path.join(root, "state"),
             "--libvirt", "test:///default", "--listen", "127.0.0.1:0", "--debounce", "100ms",
             "--deletion-grace", "2s", "--resync", "30s", "--simulate-guests",
             "--simulate-speed", "10", "--apt-cache", "off", "--image-cache", "off"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.url = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self.url:
            m = re.search(r"API on (http://[0-9.:]+)", open(self.log_path).read())
            self.url = m.group(1) if m else None
            time.sleep(0.05)

    def labs(self):
        with urllib.request.urlopen(self.url + "/api/v1/labclusters", timeout=30) as r:
            return {l["metadata"]["name"]: l for l in json.loads(r.read())["items"]}

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=120)
        self.log.close()
        return code


def condition(lab, kind):
    for c in lab.get("status", {}).get("conditions", []):
        if c["type"] == kind:
            return c.get("status")
    return None


def write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def converged(ctl, expected):
    """Problems left: labs not as the last valid manifest says ([] when converged)."""
    labs = ctl.labs()
    problems = []
    for name, workers in expected.items():
        lab = labs.get(name)
        if workers is None:
            if lab is not None:
                problems.append(f"{name} deleted but still there")
            continue
        if lab is None:
            problems.append(f"{name} missing")
            continue
        spec = lab.get("spec", {})
        nodes = lab.get("status", {}).get("nodes", [])
        if spec.get("workers", {}).get("replicas") != workers:
            problems.append(f"{name} spec has {spec.get('workers')} workers, not {workers}")
        elif condition(lab, "Ready") != "True":
            problems.append(f"{name} not Ready")
        elif lab["metadata"].get("generation") != lab["status"].get("observedGeneration"):
            problems.append(f"{name} generation {lab['metadata'].get('generation')} observed "
                            f"{lab['status'].get('observedGeneration')}")
        elif len(nodes) != 1 + workers:
            problems.append(f"{name} has {len(nodes)} nodes, not {1 + workers}")
    return problems


def wait_converged(ctl, expected, timeout):
    start = time.monotonic()
    problems = ["not asked yet"]
    while time.monotonic() - start < timeout:
        try:
            problems = converged(ctl, expected)
        except (urllib.error.URLError, ConnectionError, ValueError, TimeoutError) as e:
            problems = [str(e)]
        if not problems:
            return time.monotonic() - start, []
        time.sleep(1)
    return time.monotonic() - start, problems


def main():
    rng = random.Random(SEED)
    root = tempfile.mkdtemp(prefix="vmlab-soak-")
    os.makedirs(os.path.join(root, "watch"))
    ctl = None
    try:
        ctl = Controller(root, 1)
        expected = {}  # lab -> workers of its last valid manifest, None when deleted
        for i in range(LABS):
            workers = 9
            write(os.path.join(ctl.watch, f"soak{i}.yaml"), manifest(i, workers))
            expected[f"soak{i}"] = workers
        took, problems = wait_converged(ctl, expected, 900)
        if problems:
            print(f"soak: the first {LABS} labs did not converge: {problems[:5]}", file=sys.stderr)
            return 1
        print(f"soak: {LABS} labs of 10 simulated nodes ({10 * LABS} nodes) Ready in {took:.0f} s")

        broken = {}  # lab index -> steps until its manifest is fixed
        actions = {"scale": 0, "invalid": 0, "delete": 0, "recreate": 0}
        samples = []  # (seconds since start, rss MiB)
        cpu0 = cpu_seconds(ctl.proc.pid)
        start = time.monotonic()
        next_sample = start
        while time.monotonic() - start < SECONDS:
            now = time.monotonic()
            if now >= next_sample:
                samples.append((now - start, rss_mib(ctl.proc.pid)))
                next_sample += 5
            for index in [i for i, steps in broken.items() if steps <= 0]:
                write(os.path.join(ctl.watch, f"soak{index}.yaml"),
                      manifest(index, expected[f"soak{index}"]))
                del broken[index]
            for index in broken:
                broken[index] -= 1
            index = rng.randrange(LABS)
            name = f"soak{index}"
            path = os.path.join(ctl.watch, f"{name}.yaml")
            roll = rng.random()
            if index in broken:
                pass
            elif expected[name] is None:
                if roll < 0.5:  # back again
                    workers = rng.randint(5, 12)
                    write(path, manifest(index, workers))
                    expected[name] = workers
                    actions["recreate"] += 1
            elif roll < 0.70:
                workers = rng.randint(5, 12)
                write(path, manifest(index, workers))
                expected[name] = workers
                actions["scale"] += 1
            elif roll < 0.85:
                write(path, manifest(index, expected[name], broken=True))
                broken[index] = rng.randint(2, 10)
                actions["invalid"] += 1
            else:
                os.remove(path)
                expected[name] = None
                actions["delete"] += 1
            time.sleep(1)
        for index in list(broken):
            write(os.path.join(ctl.watch, f"soak{index}.yaml"), manifest(index, expected[f"soak{index}"]))
        elapsed = time.monotonic() - start
        used = cpu_seconds(ctl.proc.pid) - cpu0  # the whole edit period, warm-up included
        took, problems = wait_converged(ctl, expected, 900)
        after_warmup = [rss for t, rss in samples if t >= 60]
        print(f"soak: {elapsed:.0f} s of edits ({actions['scale']} scalings, {actions['invalid']} "
              f"invalid edits fixed later, {actions['delete']} deletions, {actions['recreate']} "
              f"re-creations): controller CPU {100 * used / elapsed:.1f}% of one core")
        if after_warmup:
            first = statistics.median(after_warmup[: max(1, len(after_warmup) // 4)])
            last = statistics.median(after_warmup[-max(1, len(after_warmup) // 4):])
            print(f"soak: resident memory after warm-up: first quarter median {first:.1f} MiB, "
                  f"last quarter median {last:.1f} MiB ({100 * (last - first) / first:+.1f}%), "
                  f"peak {max(after_warmup):.1f} MiB")
        if after_warmup and last > 1.05 * first:
            print("soak: FAILED: resident memory grew more than 5 % after warm-up", file=sys.stderr)
            return 1
        if problems:
            print(f"soak: FAILED to converge after the edits: {len(problems)} problems, e.g. "
                  f"{problems[:5]}", file=sys.stderr)
            return 1
        live = sum(1 for w in expected.values() if w is not None)
        print(f"soak: every lab converged {took:.0f} s after the last edit ({live} labs, "
              f"{sum(1 + w for w in expected.values() if w is not None)} nodes; no lost update)")

        # Drift in every lab at once: a restarted controller finds the test driver empty.
        if ctl.stop() != 0:
            print("soak: the controller did not stop cleanly", file=sys.stderr)
            return 1
        ctl = Controller(root, 2)
        restarted = time.monotonic()

        def repaired_labs():
            """Labs with a successful repair of their network (every lab lost it)."""
            with urllib.request.urlopen(ctl.url + "/metrics", timeout=30) as r:
                text = r.read().decode()
            labs, total = set(), 0.0
            for line in text.splitlines():
                if line.startswith("vmlab_drift_remediations_total{") and 'result="success"' in line:
                    total += float(line.split()[-1])
                    if 'kind="NetworkMissing"' in line and float(line.split()[-1]) > 0:
                        labs.add(re.search(r'name="([^"]+)"', line).group(1))
            return labs, total
        # The restored status says Ready at once: convergence counts only once
        # every lab's drift has been found and repaired.
        while time.monotonic() - restarted < 900:
            try:
                labs, repaired = repaired_labs()
                if len(labs) == live:
                    break
            except (urllib.error.URLError, ConnectionError, ValueError):
                pass
            time.sleep(0.5)
        else:
            print(f"soak: FAILED: only {len(labs)} of {live} labs repaired their drift", file=sys.stderr)
            return 1
        took, problems = wait_converged(ctl, expected, 900)
        took = time.monotonic() - restarted
        if problems:
            print(f"soak: FAILED to repair drift in every lab: {problems[:5]}", file=sys.stderr)
            return 1
        labs, repaired = repaired_labs()
        print(f"soak: drift in all {live} labs (controller restarted on an empty test driver) "
              f"repaired in {took:.0f} s ({repaired:.0f} repairs counted)")
        ctl.stop()
        ctl = None
        return 0
    finally:
        if ctl is not None:
            ctl.proc.kill()
            ctl.proc.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
