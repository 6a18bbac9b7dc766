#!/usr/bin/env python3
"""The controller's state dir failing under it: full, read-only, a damaged file.

The state dir is a small tmpfs the test mounts (root): filled up, then
remounted read-only, while a lab is edited. Each time the controller must say
what is wrong (the path and the system's reason), keep serving the last status,
leave the status file whole (atomic writes: no half-written file, no temp file
left), and write the change once the fault is gone. Then, with the controller
stopped, the lab's status file is cut in half: the restarted controller sets it
aside (*.corrupt), says so, and rebuilds the lab's status.

Usage: state_dir_faults_test.py VMLAB
"""
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

VMLAB = os.path.abspath(sys.argv[1])
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {what}", flush=True)
    return ok


def wait_for(predicate, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    print(f"timed out after {timeout:.0f} s waiting for {what}", flush=True)
    return None


MANIFEST = """apiVersion: vmlab.io/v1alpha1
kind: LabCluster
metadata:
  name: faults
spec:
  kubernetes:
    version: "1.30.4"
  network:
    cidr: 172.45.45.0/24
  workers:
    replicas: {workers}
"""


class Controller:
    def __init__(self, scratch, n):
        self.log_path = os.path.join(scratch, f"controller-{n}.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [VMLAB, "controller", "--watch", os.path.join(scratch, "watch"),
             "--state-dir", os.path.join(scratch, "state"), "--libvirt", "test:///default",
             "--listen", "127.0.0.1:0", "--debounce", "50ms", "--resync", "2s",
             "--apt-cache", "off", "--image-cache", "off"],
            stdout=self.log, stderr=subprocess.STDOUT)
        match = wait_for(lambda: re.search(r"API on (http://127\.0\.0\.1:\d+)", self.read_log()),
                         "the API address in the log")
        self.url = match.group(1) if match else "http://127.0.0.1:1"

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()

    def lab(self):
        try:
            with urllib.request.urlopen(self.url + "/api/v1/labclusters/faults", timeout=5) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError:
            return None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            self.log.close()


def status_file(state):
    return os.path.join(state, "labs", "faults.json")


def stored_generation(state):
    with open(status_file(state)) as f:
        return json.load(f)["generation"]


def edit(scratch, workers):
    path = os.path.join(scratch, "watch", "faults.yaml")
    with open(path + ".new", "w") as f:
        f.write(MANIFEST.format(workers=workers))
    os.replace(path + ".new", path)


def whole_and_alone(state, generation, fault):
    """The status file is valid JSON of `generation`, and no temp file is left."""
    ok = True
    try:
        ok = stored_generation(state) == generation
    except (OSError, ValueError) as e:
        ok = False
        print(f"  status file: {e}")
    leftovers = glob.glob(os.path.join(state, "labs", "*.tmp.*"))
    check(ok and not leftovers,
          f"{fault}: the status file is whole (generation {generation}) and no temp file is left "
          f"({leftovers})")


def fault_and_recovery(ctl, scratch, state, fault, start, end, reason, generation):
    seen = len(ctl.read_log())
    start()
    edit(scratch, generation)  # workers = generation: each edit is a new generation
    line = re.compile(r"cannot write \S*/labs/faults\.json: " + re.escape(reason))
    said = wait_for(lambda: line.search(ctl.read_log()[seen:]),
                    f"the log to name the file and say {reason!r}")
    check(bool(said), f"{fault}: the log names the status file and says {reason!r}")
    time.sleep(2.5)  # a resync and retries under the fault
    lab = ctl.lab()
    check(lab is not None and lab["metadata"]["generation"] == generation - 1,
          f"{fault}: the API still serves the last status written "
          f"(generation {lab and lab['metadata']['generation']})")
    whole_and_alone(state, generation - 1, fault)
    end()
    recovered = wait_for(lambda: stored_generation(state) == generation and
                         ctl.lab()["metadata"]["generation"] == generation,
                         f"generation {generation} written after the {fault}")
    check(bool(recovered), f"{fault}: once it is over, the change is written and served")
    whole_and_alone(state, generation, f"after the {fault}")


def main():
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            print("FAIL state_dir_faults_test needs root under CI (it mounts a tmpfs)")
            return 1
        print("skipped: mounting the test's tmpfs needs root")
        return 77
    if os.environ.get("VMLAB_FAULTS_NAMESPACE") != "1":
        # Mounts in a mount namespace of the test's own: they go with it, even
        # if the test is killed, and nothing else on the machine sees them.
        env = dict(os.environ, VMLAB_FAULTS_NAMESPACE="1")
        return subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable,
                               os.path.abspath(__file__), *sys.argv[1:]], env=env).returncode
    scratch = tempfile.mkdtemp(prefix="vmlab-faults-")
    state = os.path.join(scratch, "state")
    os.makedirs(os.path.join(scratch, "watch"))
    os.makedirs(state)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "vmlab-faults",
                              state], capture_output=True, text=True)
    if mounted.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        print(f"{'FAIL' if os.environ.get('CI') == 'true' else 'skipped:'} cannot mount a tmpfs: "
              f"{mounted.stderr.strip()}")
        return 1 if os.environ.get("CI") == "true" else 77
    ctl = None
    try:
        edit(scratch, 1)
        ctl = Controller(scratch, 1)
        check(wait_for(lambda: stored_generation(state) == 1, "the lab's status file") is not None,
              "the lab's status is written")

        # The disk fills up.
        filler = os.path.join(state, "filler")

        def fill():
            with open(filler, "wb") as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                except OSError:
                    pass
        fault_and_recovery(ctl, scratch, state, "full state dir", fill,
                           lambda: os.remove(filler), "No space left on device", 2)

        # The status folder turns read-only (a read-only bind mount over it: the
        # state dir's lock file stays open for writing, so the tmpfs itself
        # cannot be remounted read-only).
        labs = os.path.join(state, "labs")

        def read_only():
            subprocess.run(["mount", "--bind", labs, labs], check=True)
            subprocess.run(["mount", "-o", "remount,bind,ro", labs], check=True)
        fault_and_recovery(ctl, scratch, state, "read-only state dir", read_only,
                           lambda: subprocess.run(["umount", labs], check=True),
                           "Read-only file system", 3)

        check(ctl.stop() == 0, "the controller stops cleanly after the faults")
        ctl = None

        # A damaged status file, found at start.
        with open(status_file(state), "r+") as f:
            text = f.read()
            f.seek(0)
            f.truncate()
            f.write(text[: len(text) // 2])
        ctl = Controller(scratch, 2)
        set_aside = wait_for(lambda: os.path.exists(status_file(state) + ".corrupt"),
                             "the damaged file set aside")
        check(bool(set_aside), "a damaged status file is set aside as *.corrupt")
        check(wait_for(lambda: "faults.json" in ctl.read_log() and "corrupt" in ctl.read_log(),
                       "the log to say so") is not None,
              "the log names the damaged file")
        rebuilt = wait_for(lambda: stored_generation(state) >= 1 and ctl.lab() is not None,
                           "the lab's status rebuilt")
        check(bool(rebuilt), "the lab's status is rebuilt from its manifest and libvirt")
        whole_and_alone(state, stored_generation(state), "after the damaged file")
        check(ctl.stop() == 0, "the controller stops cleanly")
        ctl = None
    finally:
        if ctl is not None:
            ctl.stop()
        subprocess.run(["umount", os.path.join(state, "labs")], check=False,
                       stderr=subprocess.DEVNULL)
        subprocess.run(["umount", state], check=False)
        if failed:
            print(f"logs kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
