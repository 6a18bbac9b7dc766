#!/usr/bin/env python3
"""`vmlab controller` as a process, end to end on libvirt's test driver.

Drops the example manifest into a watch folder, reads status through the HTTP
API and counters through /metrics, breaks the file (SpecValid=False while the
last good spec stays), deletes it (the lab goes after the grace period),
stops with SIGTERM (exit 0), restarts (same generation and events), checks
that a second controller on the same state dir refuses to start, and takes the
example to Ready with simulated guests (`make run`'s mode).
Usage: controller_process_test.py VMLAB SOURCE_DIR. Ends with "N passed, N failed".
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
import urllib.error
import urllib.request

VMLAB, SOURCE = sys.argv[1], sys.argv[2]
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {what}", flush=True)
    return ok


def wait_for(predicate, what, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (urllib.error.URLError, ConnectionError, KeyError, ValueError):
            pass
        time.sleep(0.05)
    check(False, f"timed out waiting for {what}")
    return None


class Controller:
    def __init__(self, watch, state, extra=()):
        self.log_path = os.path.join(state + "-logs", f"controller-{time.monotonic_ns()}.log")
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [VMLAB, "controller", "--watch", watch, "--state-dir", state, "--libvirt",
             "test:///default", "--listen", "127.0.0.1:0", "--debounce", "50ms",
             "--deletion-grace", "2s", *extra],
            stdout=self.log, stderr=subprocess.STDOUT)
        match = wait_for(lambda: re.search(r"API on (http://127\.0\.0\.1:\d+)", self.read_log()),
                         "the API address in the log")
        self.url = match.group(1) if match else "http://127.0.0.1:1"

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            return response.status, response.read().decode()

    def lab(self, name):
        return json.loads(self.get(f"/api/v1/labclusters/{name}")[1])

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -1
        finally:
            self.log.close()


def condition(lab, kind):
    for c in lab["status"].get("conditions", []):
        if c["type"] == kind:
            return c
    return {}


def metric(text, name_and_labels):
    for line in text.splitlines():
        if line.startswith(name_and_labels + " "):
            return float(line.split()[-1])
    return None


def main():
    scratch = tempfile.mkdtemp(prefix="vmlab-it-")
    watch, state = os.path.join(scratch, "watch"), os.path.join(scratch, "state")
    os.makedirs(watch)
    try:
        run(watch, state)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def check_secrets(ctl, state, lab):
    """The lab's secrets exist, privately, and appear in no log, event or API answer."""
    pki = os.path.join(state, "pki", "spk")
    check(os.path.isdir(pki) and (os.stat(pki).st_mode & 0o777) == 0o700, "pki folder is 0700")
    files = sorted(os.listdir(pki)) if os.path.isdir(pki) else []
    check(files == sorted(["admin.conf", "bootstrap.yaml", "ca.crt", "ca.key", "etcd-ca.crt",
                           "etcd-ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "sa.key",
                           "sa.pub"]), f"the lab's secret files: {files}")
    check(all((os.stat(os.path.join(pki, f)).st_mode & 0o777) == 0o600 for f in files),
          "every secret file is 0600")
    if lab is not None:
        check(lab["status"].get("kubeconfig") == os.path.join(pki, "admin.conf"),
              "status.kubeconfig names the admin kubeconfig")
        check(lab["status"].get("endpoint") == "https://spkcluster.lab.local:16443",
              "status.endpoint")
    token = None
    try:
        with open(os.path.join(pki, "bootstrap.yaml")) as f:
            token = re.search(r"token: ([a-z0-9]{6}\.[a-z0-9]{16})", f.read()).group(1)
    except (OSError, AttributeError):
        pass
    check(token is not None, "the bootstrap token is recorded")
    seen = ctl.read_log() + "".join(ctl.get(path)[1] for path in (
        "/api/v1/labclusters", "/api/v1/labclusters/spk", "/api/v1/labclusters/spk/events",
        "/metrics"))
    check(token is not None and token not in seen and token[7:] not in seen,
          "the token is in no log line, event, API answer or metric")
    check("PRIVATE KEY" not in seen and "vrrpPassword" not in seen, "no key or password either")


def run(watch, state):
    ctl = Controller(watch, state)
    wait_for(lambda: ctl.get("/readyz")[0] == 200, "readyz")
    check(ctl.get("/healthz") == (200, "ok\n"), "healthz")
    check(json.loads(ctl.get("/api/v1/labclusters")[1])["items"] == [], "no labs at first")

    manifest = os.path.join(watch, "spk-lab.yaml")
    shutil.copy(os.path.join(SOURCE, "examples", "spk-lab.yaml"), manifest)
    lab = wait_for(lambda: ctl.lab("spk") if condition(ctl.lab("spk"), "SpecValid") else None,
                   "the dropped manifest to be reconciled")
    check(lab is not None and condition(lab, "SpecValid").get("status") == "True", "SpecValid=True")
    check(lab is not None and lab["metadata"]["generation"] == 1, "generation 1")
    check(lab is not None and lab["spec"]["controlPlane"]["endpoint"]["host"] == "spkcluster",
          "spec served from the manifest")
    check(lab is not None and [n["name"] for n in lab["status"]["nodes"]] ==
          ["spk-cp-1", "spk-cp-2", "spk-worker-1"], "planned nodes")
    lab = wait_for(lambda: ctl.lab("spk") if condition(ctl.lab("spk"), "InfrastructureReady").get("status") == "True"
                   else None, "InfrastructureReady on the test driver")
    check(lab is not None and [n["domainState"] for n in lab["status"]["nodes"]] == ["running"] * 3,
          "domains running on the test driver")
    check(lab is not None and condition(lab, "Ready").get("reason") == "NoGuests" and
          condition(lab, "Ready").get("status") == "Unknown",
          "Ready says the test driver runs no guests")
    check_secrets(ctl, state, lab)
    metrics = ctl.get("/metrics")[1]
    check((metric(metrics, 'controller_runtime_reconcile_total{controller="labcluster",result="success"}') or 0) >= 1,
          "reconcile counted in /metrics")
    check(metric(metrics, 'vmlab_manifests{state="valid"}') == 1, "one valid manifest")
    check(metric(metrics, 'vmlab_libvirt_connected') == 1, "libvirt connected")
    check(metric(metrics, 'vmlab_labcluster_status_condition{name="spk",status="True",type="SpecValid"}') == 1,
          "condition metric")

    # An invalid edit: the last good spec stays in force.
    with open(manifest) as f:
        good = f.read()
    with open(manifest, "w") as f:
        f.write(good.replace("    replicas: 1\n", "    replicas: one\n"))
    lab = wait_for(lambda: ctl.lab("spk") if condition(ctl.lab("spk"), "SpecValid").get("status") == "False" else None,
                   "SpecValid=False after a bad edit")
    if lab:
        check("spec.workers.replicas" in condition(lab, "SpecValid")["message"], "message names the field")
        check(lab["spec"]["workers"]["replicas"] == 1, "last good spec still served")
        check(lab["metadata"]["generation"] == 1, "generation unchanged by an invalid edit")
    check(re.search(r"level=warn msg=\".*spk-lab\.yaml:\d+:\d+: error: spec\.workers\.replicas: .*\(lab spk\)",
                    ctl.read_log()) is not None, "the log says what is wrong and where")
    with open(manifest, "w") as f:
        f.write(good.replace("    replicas: 1\n", "    replicas: 3\n"))
    lab = wait_for(lambda: ctl.lab("spk") if ctl.lab("spk")["metadata"]["generation"] == 2 else None,
                   "generation 2 after a valid edit")
    check(lab is not None and lab["spec"]["workers"]["replicas"] == 3, "scaled spec applied")
    events = json.loads(ctl.get("/api/v1/labclusters/spk/events")[1])["items"]
    check([e["reason"] for e in events][:1] == ["Created"], "events recorded")

    # The CLI reads the same API.
    get = subprocess.run([VMLAB, "get", "--server", ctl.url], capture_output=True, text=True, timeout=30)
    lines = get.stdout.splitlines()
    check(get.returncode == 0 and lines[:1] and lines[0].split() ==
          ["NAME", "READY", "CONTROL-PLANE", "WORKERS", "AGE", "MESSAGE"], f"vmlab get table header: {get.stdout!r}")
    check(len(lines) == 2 and lines[1].split()[:4] == ["spk", "Unknown", "0/2", "0/3"],
          f"vmlab get row: {get.stdout!r}")
    as_json = subprocess.run([VMLAB, "get", "spk", "-o", "json", "--server", ctl.url],
                             capture_output=True, text=True, timeout=30)
    check(as_json.returncode == 0 and json.loads(as_json.stdout)["metadata"]["name"] == "spk",
          "vmlab get -o json")
    as_yaml = subprocess.run([VMLAB, "get", "spk", "-o", "yaml", "--server", ctl.url],
                             capture_output=True, text=True, timeout=30)
    check(as_yaml.returncode == 0 and "kind: LabCluster" in as_yaml.stdout, "vmlab get -o yaml")
    describe = subprocess.run([VMLAB, "describe", "spk", "--server", ctl.url],
                              capture_output=True, text=True, timeout=30)
    check(describe.returncode == 0 and "Name:         spk" in describe.stdout and
          "spk-worker-3" in describe.stdout and "SpecChanged" in describe.stdout,
          f"vmlab describe: {describe.stdout!r}")
    missing = subprocess.run([VMLAB, "describe", "nope", "--server", ctl.url],
                             capture_output=True, text=True, timeout=30)
    check(missing.returncode == 1 and 'labcluster "nope" not found' in missing.stderr,
          "describe of an unknown lab")
    unreachable = subprocess.run([VMLAB, "get", "--server", "http://127.0.0.1:1"],
                                 capture_output=True, text=True, timeout=30)
    check(unreachable.returncode == 2 and "cannot reach the vmlab controller" in unreachable.stderr,
          "unreachable controller")

    # SIGTERM, then a restart: same generation and events, nothing bumped.
    code = ctl.stop()
    check(code == 0, f"SIGTERM exits 0 (got {code})")
    ctl = Controller(watch, state)
    lab = wait_for(lambda: ctl.lab("spk"), "the lab after a restart")
    check(lab is not None and lab["metadata"]["generation"] == 2, "generation kept across restart")
    events_after = json.loads(ctl.get("/api/v1/labclusters/spk/events")[1])["items"]
    before = {(e["reason"], e["message"]) for e in events}
    check(before <= {(e["reason"], e["message"]) for e in events_after}, "events kept across restart")
    # test:///default lives inside the controller process: a restarted controller
    # finds a fresh, empty driver, sees the lab's domains gone and rebuilds them.
    # That is drift repair, never a new generation.
    added = [e["reason"] for e in events_after if (e["reason"], e["message"]) not in before]
    check(all(r in ("DomainMissing", "NetworkMissing", "VolumeMissing", "DomainsCreated", "Ready", "Creating")
              for r in added), f"only drift repair added by the restart: {added}")
    lab = wait_for(lambda: ctl.lab("spk") if condition(ctl.lab("spk"), "InfrastructureReady").get("status") == "True"
                   else None, "the lab's domains running again after the restart")
    check(lab is not None and all(n["domainState"] == "running" for n in lab["status"]["nodes"]),
          "all nodes running again")

    # A second controller on the same state dir refuses to start.
    second = subprocess.run([VMLAB, "controller", "--watch", watch, "--state-dir", state,
                             "--libvirt", "test:///default", "--listen", "127.0.0.1:0"],
                            capture_output=True, text=True, timeout=30)
    check(second.returncode == 1 and "another vmlab controller" in second.stdout + second.stderr,
          "second controller on one state dir refused")

    # Deleting the file: kept through the grace period, then gone.
    os.remove(manifest)
    lab = wait_for(lambda: ctl.lab("spk") if condition(ctl.lab("spk"), "Deleting").get("status") == "True" else None,
                   "Deleting=True")
    check(lab is not None and "deletionTimestamp" in lab["metadata"], "deletionTimestamp shown")

    def gone():
        try:
            ctl.get("/api/v1/labclusters/spk")
            return False
        except urllib.error.HTTPError as e:
            return e.code == 404
    check(wait_for(gone, "the lab to go after the grace period", timeout=10) is not None, "lab deleted")
    check(not os.path.exists(os.path.join(state, "labs", "spk.json")), "status file removed")
    code = ctl.stop()
    check(code == 0, f"second SIGTERM exits 0 (got {code})")
    check(not os.path.exists(os.path.join(state, "pki", "spk")), "the lab's secrets removed with it")

    simulated(watch, state)
    protected_api(watch, state)


def protected_api(watch, state):
    """The API beyond loopback needs a token; with one, every client must present it."""
    refused = subprocess.run([VMLAB, "controller", "--watch", watch, "--state-dir", state + "-open",
                              "--libvirt", "test:///default", "--listen", "0.0.0.0:0"],
                             capture_output=True, text=True, timeout=30)
    check(refused.returncode == 2 and "--api-token-file" in refused.stdout + refused.stderr,
          f"a non-loopback listen address without a token is refused: {refused.stderr[-300:]}")
    check(not os.path.exists(state + "-open"), "nothing is started or written before that check")
    token_file = state + "-token"
    with open(token_file, "w") as f:
        f.write("vmlab-test-token-0123456789\n")
    os.chmod(token_file, 0o600)
    ctl = Controller(watch, state, ["--api-token-file", token_file])
    for path in ("/healthz", "/readyz"):
        check(wait_for(lambda: ctl.get(path)[0] == 200, f"{path} open without a token") is not None,
              f"{path} needs no token")
    for path in ("/metrics", "/api/v1/labclusters"):
        try:
            ctl.get(path)
            check(False, f"{path} answered without the token")
        except urllib.error.HTTPError as e:
            check(e.code == 401 and e.headers.get("WWW-Authenticate") == 'Bearer realm="vmlab"',
                  f"{path} without the token: 401 with WWW-Authenticate ({e.code})")
    request = urllib.request.Request(ctl.url + "/metrics",
                                     headers={"Authorization": "Bearer vmlab-test-token-0123456789"})
    with urllib.request.urlopen(request, timeout=5) as response:
        check(response.status == 200 and "controller_runtime_reconcile_total" in response.read().decode(),
              "/metrics with the token")
    plain = subprocess.run([VMLAB, "get", "--server", ctl.url], capture_output=True, text=True, timeout=30)
    check(plain.returncode == 1 and "give --token-file FILE" in plain.stderr,
          f"vmlab get without the token says what to do: {plain.stderr.strip()}")
    with_token = subprocess.run([VMLAB, "get", "--server", ctl.url, "--token-file", token_file],
                                capture_output=True, text=True, timeout=30)
    check(with_token.returncode == 0 and "NAME" in with_token.stdout,
          f"vmlab get --token-file lists the labs: {with_token.stderr.strip()}")
    check(ctl.stop() == 0, "the controller with a token exits 0")


def simulated(watch, state):
    """`make run`'s mode: simulated guests take the example lab to Ready."""
    refused = subprocess.run([VMLAB, "controller", "--watch", watch, "--state-dir", state + "-x",
                              "--libvirt", "qemu:///system", "--simulate-guests"],
                             capture_output=True, text=True, timeout=30)
    check(refused.returncode == 2 and "test driver only" in refused.stdout + refused.stderr,
          "--simulate-guests refused with a real hypervisor")
    ctl = Controller(watch, state, ["--simulate-guests", "--simulate-speed", "100"])
    shutil.copy(os.path.join(SOURCE, "examples", "spk-lab.yaml"), os.path.join(watch, "spk-lab.yaml"))
    lab = wait_for(lambda: ctl.lab("spk") if condition(ctl.lab("spk"), "Ready").get("status") == "True"
                   else None, "Ready with simulated guests", timeout=30)
    if check(lab is not None, "the example lab goes Ready with simulated guests"):
        check(condition(lab, "Ready")["reason"] == "SimulatedReady", "Ready says it is simulated")
        check(all(n["ready"] for n in lab["status"]["nodes"]), "every node ready")
        check([n["bootstrapPhase"] for n in lab["status"]["nodes"]] ==
              ["primary: done", "secondary: done", "worker: done"], "each node's last phase")
    # Scale up to 3 workers, then back to 1: the two extra workers are drained
    # through the (simulated) Kubernetes API, highest index first, then go.
    with open(os.path.join(SOURCE, "examples", "spk-lab.yaml")) as f:
        text = f.read()
    for replicas in (3, 1):
        edited = re.sub(r"(workers:\n(?:    .*\n)*?    replicas: )1", rf"\g<1>{replicas}", text)
        check(replicas == 1 or edited != text, "the example's workers.replicas is editable")
        with open(os.path.join(watch, "spk-lab.yaml.tmp"), "w") as f:
            f.write(edited)
        os.rename(os.path.join(watch, "spk-lab.yaml.tmp"), os.path.join(watch, "spk-lab.yaml"))
        workers = wait_for(
            lambda: (lambda lab: lab if condition(lab, "Ready").get("status") == "True" and
                     lab["status"].get("observedGeneration") == lab["metadata"]["generation"] and
                     sum(n["role"] == "worker" for n in lab["status"]["nodes"]) == replicas
                     else None)(ctl.lab("spk")),
            f"Ready with {replicas} workers", timeout=30)
        check(workers is not None, f"scaled to {replicas} workers and Ready")
    # Control planes 2 -> 1: spk-cp-2 leaves etcd (the one left is a quorum),
    # is drained, and goes.
    edited = text.replace("controlPlane:\n    replicas: 2", "controlPlane:\n    replicas: 1")
    check(edited != text, "the example's controlPlane.replicas is editable")
    with open(os.path.join(watch, "spk-lab.yaml.tmp"), "w") as f:
        f.write(edited)
    os.rename(os.path.join(watch, "spk-lab.yaml.tmp"), os.path.join(watch, "spk-lab.yaml"))
    lab = wait_for(
        lambda: (lambda lab: lab if condition(lab, "Ready").get("status") == "True" and
                 [n["name"] for n in lab["status"]["nodes"]] == ["spk-cp-1", "spk-worker-1"]
                 else None)(ctl.lab("spk")),
        "Ready with one control plane", timeout=30)
    check(lab is not None, "scaled to one control plane and Ready")
    events = ctl.get("/api/v1/labclusters/spk/events")[1]
    drained = re.findall(r"spk-(?:worker|cp)-\d+(?= drained)", events)
    check(drained == ["spk-worker-3", "spk-worker-2", "spk-cp-2"],
          f"drained highest index first: {drained}")
    check("spk-cp-2's etcd member" in events, "spk-cp-2 left etcd first")
    metrics = ctl.get("/metrics")[1]
    check((metric(metrics, 'vmlab_progress_reports_total{result="accepted"}') or 0) >= 22,
          "progress reports counted")
    check(metric(metrics, 'vmlab_bootstrap_phase_duration_seconds_count{cache="none",phase="kubernetes",role="control-plane"}') == 2,
          "phase durations observed")
    os.remove(os.path.join(watch, "spk-lab.yaml"))
    check(ctl.stop() == 0, "simulated controller exits 0")
    check_log_lines(ctl.read_log())


def check_log_lines(text):
    """logfmt, one record per line; a reconcile's lines name the lab and the reconcile."""
    lines = text.splitlines()
    record = re.compile(r'^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(trace|debug|info|warn|error) '
                        r'msg=("([^"\\]|\\.)*"|\S+)( [a-z_.-]+=("([^"\\]|\\.)*"|\S+))*$')
    bad = [line for line in lines if not record.match(line)]
    check(lines and not bad, f"{len(lines)} log lines, each a logfmt record: {bad[:3]}")
    events = [line for line in lines if " event=" in line]
    unnamed = [line for line in events
               if not re.search(r" lab=spk reconcile=[0-9a-f]{16}( |$)", line)]
    check(len(events) >= 10 and not unnamed,
          f"{len(events)} event lines, each with the lab and a reconcile id: {unnamed[:3]}")
    ids = set(re.findall(r" reconcile=([0-9a-f]{16})", text))
    check(len(ids) >= 5, f"reconciles have ids of their own ({len(ids)} seen)")


if __name__ == "__main__":
    sys.exit(main())
