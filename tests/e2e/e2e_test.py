#!/usr/bin/env python3
"""vmlab on a real libvirtd with guests that boot (qemu, TCG), end to end.

Runs inside the network namespace tests/e2e/with_sandbox.sh made, against its
private libvirtd: `with_sandbox.sh e2e_test.py VMLAB`.
A 1 control plane + 1 worker lab is dropped into the watch folder; the test
checks that both guests boot, that cloud-init ran vmlab's user-data (console
marker), and - from inside each guest, through the guest agent - that it has
its planned address and hostname and resolves the endpoint name and the other
node through the lab network's DNS, that the base phase set swap, modules,
sysctls and /etc/hosts, that the endpoint phase runs haproxy and keepalived
holding the VIP, that the phases reach the controller over HTTP, and that the
kubernetes phase, which needs the unreachable package repository, fails
cleanly with its output in status. The apt cache: vmlab runs apt-cacher-ng on
the lab's gateway and the base phase points apt at it; a small Debian
repository served by the test inside the namespace (nothing is downloaded)
is installed from by both nodes through it: the first node's package is a
miss, the second's a hit, in vmlab's metrics. An image archive in the lab's
spec.cache.imageArchives is fetched by both nodes from the controller and
imported into containerd by the base phase. The registry mirrors: vmlab runs
docker-registry per upstream, fetching from a registry the test serves in the
namespace; both nodes' containerd pull the same image with the hosts.toml the
base phase wrote: the first pull's blobs are misses, the second's hits. Then: `virsh destroy` of a node is
repaired within the resync bound; a libvirtd restart is noticed (readyz 503,
vmlab_libvirt_connected 0), the controller reconnects and re-lists, and the
domains that kept running are not "repaired"; deleting the manifest leaves no
domain, volume or network of the lab. Prints the timings it measured.
Ends with "N passed, N failed".
"""
import argparse
import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

passed = failed = 0
figures = {}

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = "e2e"
CIDR_PREFIX = "172.31.77"
NODES = {f"{LAB}-cp-1": f"{CIDR_PREFIX}.11", f"{LAB}-worker-1": f"{CIDR_PREFIX}.101"}
DOMAIN = "e2e.test"
VIP = f"{CIDR_PREFIX}.10"
UPSTREAM_REGISTRY = "127.0.0.1:5000"  # inside the namespace: the mirrors' upstream
DRIFT_KINDS = {"DomainMissing", "DomainStopped", "DomainCrashed", "ResourceMismatch",
               "NetworkMissing", "NetworkInactive", "VolumeMissing", "OrphanDomain"}


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {what}", flush=True)
    return ok


def wait_for(predicate, what, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (urllib.error.URLError, ConnectionError, KeyError, ValueError, IndexError,
                subprocess.CalledProcessError, json.JSONDecodeError):
            pass
        time.sleep(0.2)
    check(False, f"timed out after {timeout:.0f} s waiting for {what}")
    return None


class Virsh:
    def __init__(self, uri):
        self.uri = uri

    def __call__(self, *args, check_rc=True):
        result = subprocess.run(["virsh", "-q", "-c", self.uri, *args], capture_output=True,
                                text=True, timeout=60)
        if check_rc and result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, args, result.stdout,
                                                result.stderr)
        return result.stdout

    def agent(self, domain, command, arguments=None):
        request = {"execute": command}
        if arguments is not None:
            request["arguments"] = arguments
        out = self("qemu-agent-command", domain, json.dumps(request), "--timeout", "10")
        return json.loads(out)["return"]

    def guest_exec(self, domain, path, *args, timeout=10):
        """Runs a program in the guest; returns (exit code, stdout)."""
        pid = self.agent(domain, "guest-exec",
                         {"path": path, "arg": list(args), "capture-output": True})["pid"]
        for _ in range(int(timeout * 10)):
            status = self.agent(domain, "guest-exec-status", {"pid": pid})
            if status.get("exited"):
                out = base64.b64decode(status.get("out-data", "")).decode()
                return status.get("exitcode"), out
            time.sleep(0.1)
        raise subprocess.CalledProcessError(1, path, "", "guest-exec did not finish")


class Controller:
    def __init__(self, vmlab, watch, state, uri, logs, extra=(), log_name="controller.log"):
        self.log_path = os.path.join(logs, log_name)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [vmlab, "controller", "--watch", watch, "--state-dir", state, "--libvirt", uri,
             "--listen", "127.0.0.1:0", "--debounce", "50ms", "--deletion-grace", "2s",
             "--resync", "5s", "--log-level", "debug",
             # The registry mirrors fetch from the test's registry in the namespace.
             *[f"--registry-upstream={u}=http://{UPSTREAM_REGISTRY}"
               for u in ("registry.k8s.io", "docker.io", "quay.io")], *extra],
            stdout=self.log, stderr=subprocess.STDOUT)
        match = wait_for(lambda: re.search(r"API on (http://127\.0\.0\.1:\d+)", self.read_log()),
                         "the API address in the log", 30)
        self.url = match.group(1) if match else "http://127.0.0.1:1"

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()

    def get(self, path):
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def lab(self, name=LAB):
        status, body = self.get(f"/api/v1/labclusters/{name}")
        return json.loads(body) if status == 200 else None

    def events(self, name=LAB):
        return json.loads(self.get(f"/api/v1/labclusters/{name}/events")[1])["items"]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -1
        finally:
            self.log.close()


def condition(lab, kind):
    for c in (lab or {}).get("status", {}).get("conditions", []):
        if c["type"] == kind:
            return c
    return {}


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def manifest(image, archives):
    return f"""apiVersion: vmlab.io/v1alpha1
kind: LabCluster
metadata:
  name: {LAB}
spec:
  kubernetes: {{version: "1.30.4"}}
  network: {{cidr: {CIDR_PREFIX}.0/24, domain: {DOMAIN}}}
  controlPlane: {{replicas: 1, cpus: 1, memoryMiB: 1024, diskGiB: 5}}
  workers: {{replicas: 1, cpus: 1, memoryMiB: 1024, diskGiB: 5}}
  image:
    path: {image}/base.qcow2
    kernel: {image}/vmlinuz
    initrd: {image}/initrd.img
    cmdline: "root=/dev/vda rw console=ttyS0 net.ifnames=0"
  cache: {{imageArchives: {archives}}}
"""


def console(state, node):
    try:
        with open(os.path.join(state, "console", f"{node}.log"), errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def serve_repository(scratch):
    """A flat Debian repository with one package (200 kB of payload), served on
    127.0.0.1:80 inside the test's namespace: the apt cache's upstream."""
    root = os.path.join(scratch, "repo")
    pkg = os.path.join(scratch, "pkg")
    os.makedirs(os.path.join(pkg, "DEBIAN"))
    os.makedirs(os.path.join(pkg, "usr", "share", "vmlab-e2e"))
    os.makedirs(os.path.join(root, "pool"))
    with open(os.path.join(pkg, "DEBIAN", "control"), "w") as f:
        f.write("Package: vmlab-e2e-cache\nVersion: 1.0\nArchitecture: all\n"
                "Maintainer: vmlab <vmlab@example.invalid>\nDescription: apt cache e2e\n")
    with open(os.path.join(pkg, "usr", "share", "vmlab-e2e", "payload"), "wb") as f:
        f.write(os.urandom(200_000))
    subprocess.run(["dpkg-deb", "--build", pkg, os.path.join(root, "pool", "vmlab-e2e-cache_1.0_all.deb")],
                   check=True, capture_output=True)
    with open(os.path.join(root, "Packages"), "w") as f:
        subprocess.run(["dpkg-scanpackages", "pool", "/dev/null"], cwd=root, stdout=f,
                       stderr=subprocess.DEVNULL, check=True)
    log = open(os.path.join(scratch, "repository.log"), "w")
    return subprocess.Popen([sys.executable, "-m", "http.server", "80", "--bind", "127.0.0.1",
                             "--directory", root], stdout=log, stderr=subprocess.STDOUT)


def serve_registry(scratch, made):
    """A plain docker-registry on 127.0.0.1:5000 inside the test's namespace,
    holding docker.io/library/tools:2 (fixture image): the mirrors' upstream."""
    config = os.path.join(scratch, "upstream-registry.yml")
    with open(config, "w") as f:
        f.write(f"version: 0.1\nlog: {{level: info, formatter: text}}\n"
                f"storage: {{filesystem: {{rootdirectory: {scratch}/upstream-registry}}}}\n"
                f"http: {{addr: {UPSTREAM_REGISTRY}}}\n")
    log = open(os.path.join(scratch, "upstream-registry.log"), "w")
    proc = subprocess.Popen(["docker-registry", "serve", config], stdout=log, stderr=subprocess.STDOUT)
    wait_for(lambda: subprocess.run(["curl", "-fs", "-o", "/dev/null", f"http://{UPSTREAM_REGISTRY}/v2/"]).returncode == 0,
             "the test registry", 15)
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"docker-archive:{made}/tools.tar",
                    f"docker://{UPSTREAM_REGISTRY}/library/tools:2"], check=True)
    return proc


def pull_through_mirror(virsh, node):
    """containerd in `node`, configured by vmlab's base phase, pulls docker.io/library/tools:2."""
    return virsh.guest_exec(node, "/usr/bin/ctr", "-n", "k8s.io", "images", "pull", "--hosts-dir",
                            "/etc/containerd/certs.d", "docker.io/library/tools:2", timeout=180)


def install_through_cache(virsh, node):
    """apt in `node`, configured by vmlab's base phase, fetches the package."""
    script = ("set -e; echo 'deb [trusted=yes] http://127.0.0.1/ ./' >/etc/apt/sources.list.d/e2e.list; "
              "apt-get -q -o Dir::Etc::sourcelist=/etc/apt/sources.list.d/e2e.list "
              "-o Dir::Etc::sourceparts=- update >/tmp/e2e-apt.log 2>&1; "
              "cd /tmp && apt-get -q download vmlab-e2e-cache >>/tmp/e2e-apt.log 2>&1; "
              "ls /tmp/vmlab-e2e-cache_1.0_all.deb")
    code, out = virsh.guest_exec(node, "/bin/sh", "-c", script, timeout=180)
    if code != 0:
        _, log = virsh.guest_exec(node, "/bin/cat", "/tmp/e2e-apt.log")
        out += log
    return code, out


def run(args, virsh, ctl, watch, state):
    check(wait_for(lambda: ctl.get("/readyz")[0] == 200, "readyz", 30), "controller ready")
    # An image archive made with skopeo (test fixture), for the lab's nodes.
    archives = os.path.join(args.scratch, "archives")
    os.makedirs(archives)
    os.rename(os.path.join(args.made, "app-docker.tar"), os.path.join(archives, "app.tar"))

    started = time.monotonic()
    with open(os.path.join(watch, f"{LAB}.yaml"), "w") as f:
        f.write(manifest(args.image, archives))

    lab = wait_for(lambda: ctl.lab() if condition(ctl.lab(), "InfrastructureReady").get("status") == "True"
                   else None, "InfrastructureReady", 180)
    figures["manifest to all domains running"] = time.monotonic() - started
    if not check(lab is not None, "the lab's infrastructure is ready"):
        return
    message = condition(lab, "InfrastructureReady")["message"]
    check("domain type qemu" in message and "QEMU driver" in message,
          f"status shows the detected domain type: {message}")
    check(sorted(n["name"] for n in lab["status"]["nodes"]) == sorted(NODES), "both nodes planned")
    for node in NODES:
        xml = virsh("dumpxml", node)
        check("type='qemu'" in xml and "vmlab:owner" in xml, f"{node} is a TCG domain vmlab owns")
        check(f"{node}-seed.iso" in virsh("vol-list", "vmlab"), f"{node}'s seed is in the pool")

    # cloud-init ran vmlab's user-data in both guests: the phase runner started.
    for node in NODES:
        marker = f"vmlab: node {node} phase base started"
        ok = wait_for(lambda: marker in console(state, node), f"{node}'s console marker", 420)
        if check(ok, f"{node} runs its phases from the seed"):
            figures[f"manifest to {node} booted and running its phases"] = time.monotonic() - started
    if failed:
        print(console(state, f"{LAB}-worker-1")[-3000:])

    # From inside each guest: address, hostname, and DNS of the lab network.
    for node, ip in NODES.items():
        if not wait_for(lambda: virsh.agent(node, "guest-ping") == {}, f"{node}'s guest agent", 120):
            continue
        interfaces = virsh.agent(node, "guest-network-get-interfaces")
        addresses = [a["ip-address"] for i in interfaces if i["name"] == "eth0"
                     for a in i.get("ip-addresses", [])]
        check(ip in addresses, f"{node} has its planned address {ip} (has {addresses})")
        code, out = virsh.guest_exec(node, "/usr/bin/hostname")
        check(code == 0 and out.strip() == node, f"{node}'s hostname (got {out.strip()!r})")
        code, out = virsh.guest_exec(node, "/usr/bin/getent", "hosts", f"{LAB}.{DOMAIN}")
        check(code == 0 and out.split()[:1] == [VIP],
              f"{node} resolves the endpoint {LAB}.{DOMAIN} to the VIP (got {out.strip()!r})")
        other = next(n for n in NODES if n != node)
        code, out = virsh.guest_exec(node, "/usr/bin/getent", "hosts", f"{other}.{DOMAIN}")
        check(code == 0 and out.split()[:1] == [NODES[other]],
              f"{node} resolves {other} through the lab DNS (got {out.strip()!r})")
        code, _ = virsh.guest_exec(node, "/usr/bin/ping", "-c", "1", "-W", "5", NODES[other])
        check(code == 0, f"{node} reaches {other} on the lab network")

        # The base phase for real, up to its first download (the namespace has no
        # way out, so the package steps keep retrying): swap, modules, sysctls, hosts.
        # Its steps run in order: the /etc/hosts block comes after swap, modules and sysctls.
        wait_for(lambda: "# END vmlab" in virsh.guest_exec(node, "/bin/cat", "/etc/hosts")[1],
                 f"{node}'s base phase to write /etc/hosts", 60)
        code, out = virsh.guest_exec(node, "/bin/cat", "/etc/hosts")
        check(code == 0 and f"{VIP} {LAB}.{DOMAIN} {LAB}" in out and f"{ip} {node}.{DOMAIN} {node}" in out,
              f"{node}'s /etc/hosts has the endpoint and every node: {out!r}")
        code, out = virsh.guest_exec(node, "/sbin/sysctl", "-n", "net.bridge.bridge-nf-call-iptables",
                                     "net.ipv4.ip_forward")
        check(code == 0 and out.split() == ["1", "1"], f"{node}'s sysctls set (got {out!r})")
        code, out = virsh.guest_exec(node, "/bin/cat", "/proc/modules")
        check(code == 0 and "br_netfilter" in out and "overlay" in out,
              f"{node} loaded br_netfilter and overlay")
        code, out = virsh.guest_exec(node, "/bin/cat", "/etc/modules-load.d/vmlab-kubernetes.conf")
        check(code == 0 and out.split() == ["overlay", "br_netfilter"], f"{node} persists the modules")
        code, out = virsh.guest_exec(node, "/bin/cat", "/proc/swaps")
        check(code == 0 and len(out.strip().splitlines()) == 1, f"{node} has no swap")

    # The phases report to the controller over the lab network: base and the
    # endpoint (haproxy + keepalived) run for real; the kubernetes phase needs
    # the Kubernetes package repository, which cannot be reached from here, and
    # fails cleanly with its output in status.
    cp = f"{LAB}-cp-1"
    def phases():
        lab_now = ctl.lab()
        return {n["name"]: n.get("bootstrapPhase", "") for n in lab_now["status"]["nodes"]}
    ok = wait_for(lambda: all(p.startswith("kubernetes") for p in phases().values()),
                  "both nodes to report reaching the kubernetes phase", 240)
    check(ok, f"phases reported over HTTP: {phases() if ok else ''}")
    for node in NODES:
        code, out = virsh.guest_exec(node, "/usr/bin/ctr", "-n", "k8s.io", "images", "ls", "-q")
        check(code == 0 and "example.com/team/app:1.0" in out.split(),
              f"{node} fetched the lab's image archive from the controller and imported it: {out!r}")
    check((metric(ctl.get("/metrics")[1], 'vmlab_cache_requests_total{cache="archives",result="hit"}') or 0) >= 2,
          "both archive downloads counted")
    code, out = virsh.guest_exec(cp, "/usr/bin/pgrep", "-x", "haproxy")
    check(code == 0, f"{cp} runs haproxy (endpoint phase)")
    code, out = virsh.guest_exec(cp, "/usr/bin/pgrep", "-x", "keepalived")
    check(code == 0, f"{cp} runs keepalived")
    ok = wait_for(lambda: f"{VIP}/24" in virsh.guest_exec(cp, "/sbin/ip", "-4", "-o", "addr", "show", "eth0")[1],
                  "keepalived to hold the VIP", 60)
    check(ok, f"{cp} holds the VIP {VIP}")
    refused = wait_for(lambda: condition(ctl.lab(), "ControlPlaneReady")
                      if condition(ctl.lab(), "ControlPlaneReady").get("reason") == "PhaseFailed" else None,
                      "the kubernetes phase to fail without the package repository", 420)
    if check(refused is not None, "the unreachable package repository fails the kubernetes phase"):
        message = refused["message"]
        check(f"{cp}: phase kubernetes failed (exit" in message and
              ("pkgs.k8s.io" in message or "resolve" in message or "gave up" in message),
              f"the condition carries the failing command's output: {message}")
        figures["manifest to the kubernetes phase failing cleanly"] = time.monotonic() - started
    check(any(e["reason"] == "PhaseFailed" and e["type"] == "Warning" for e in ctl.events()),
          "the failure is a Warning event")
    metrics = ctl.get("/metrics")[1]
    check((metric(metrics, 'vmlab_progress_reports_total{result="accepted"}') or 0) >= 8,
          "progress reports accepted")
    check(metric(metrics, 'vmlab_bootstrap_phase_duration_seconds_count{cache="caches",phase="endpoint",role="control-plane"}') == 1,
          "the endpoint phase's duration observed")
    check(metric(metrics, 'vmlab_progress_reports_total{result="unauthorized"}') == 0,
          "no report refused")

    # The apt cache on the lab's gateway: both nodes install the same package
    # through it; the second is served from the cache.
    gateway = f"{CIDR_PREFIX}.1"
    cache = condition(ctl.lab(), "CacheReady")
    check(cache.get("status") == "True" and cache.get("reason") == "Serving" and
          f"http://{gateway}:3142" in cache.get("message", "") and
          f"docker.io through http://{gateway}:5002" in cache.get("message", ""), f"CacheReady: {cache}")
    for node in NODES:
        code, out = virsh.guest_exec(node, "/bin/cat", "/etc/apt/apt.conf.d/90vmlab-proxy")
        check(code == 0 and f'Acquire::http::Proxy "http://{gateway}:3142";' in out,
              f"{node}'s apt goes through the lab's cache")
    repository = serve_repository(args.scratch)
    try:
        wait_for(lambda: subprocess.run(["curl", "-fs", "-o", "/dev/null", "http://127.0.0.1/Packages"]).returncode == 0,
                 "the test repository", 10)
        first, second = list(NODES)
        code, out = install_through_cache(virsh, first)
        check(code == 0, f"{first} installs from the repository through the cache: {out}")
        misses = wait_for(lambda: (metric(ctl.get("/metrics")[1], 'vmlab_cache_requests_total{cache="apt",result="miss"}') or 0) >= 1,
                          "the first node's miss in the metrics", 15)
        check(misses, "the first node's package is a cache miss")
        hits_before = metric(ctl.get("/metrics")[1], 'vmlab_cache_requests_total{cache="apt",result="hit"}') or 0
        code, out = install_through_cache(virsh, second)
        check(code == 0, f"{second} installs the same package through the cache: {out}")
        hit = wait_for(lambda: (metric(ctl.get("/metrics")[1], 'vmlab_cache_requests_total{cache="apt",result="hit"}') or 0) > hits_before,
                       "the second node's hit in the metrics", 15)
        check(hit, "the second node's package is a cache hit")
        with open(os.path.join(args.scratch, "repository.log")) as f:
            fetched = f.read().count("GET /pool/vmlab-e2e-cache_1.0_all.deb")
        check(fetched == 1, f"the repository served the package once (got {fetched})")
    finally:
        repository.terminate()
        repository.wait(timeout=10)

    # The registry mirror of docker.io on the lab's gateway: both nodes' containerd
    # pull the same image through it (hosts.toml from the base phase); the second
    # is served from the mirror's storage.
    def image_metric(result):
        return metric(ctl.get("/metrics")[1], f'vmlab_cache_requests_total{{cache="images",result="{result}"}}') or 0
    for node in NODES:
        code, out = virsh.guest_exec(node, "/bin/cat", "/etc/containerd/certs.d/docker.io/hosts.toml")
        check(code == 0 and f'[host."http://{gateway}:5002"]' in out,
              f"{node}'s containerd pulls docker.io images through the lab's mirror: {out!r}")
    first, second = list(NODES)
    code, out = pull_through_mirror(virsh, first)
    check(code == 0, f"{first} pulls docker.io/library/tools:2 through the mirror: {out}")
    check(wait_for(lambda: image_metric("miss") >= 2, "the first pull's misses in the metrics", 15),
          f"the first node's blobs are mirror misses (misses {image_metric('miss')})")
    hits_before = image_metric("hit")
    code, out = pull_through_mirror(virsh, second)
    check(code == 0, f"{second} pulls the same image through the mirror: {out}")
    check(wait_for(lambda: image_metric("hit") >= hits_before + 2, "the second pull's hits in the metrics", 15),
          f"the second node's blobs are mirror hits (hits {image_metric('hit')})")

    # A node destroyed behind vmlab's back is started again.
    victim = f"{LAB}-worker-1"
    destroyed = time.monotonic()
    virsh("destroy", victim)
    ok = wait_for(lambda: virsh("domstate", victim).strip() == "running", f"{victim} running again", 30)
    if check(ok, "a destroyed node is started again"):
        figures["virsh destroy to running again"] = time.monotonic() - destroyed
    check(wait_for(lambda: any(e["reason"] == "DomainStopped" and victim in e["message"]
                               for e in ctl.events()), "the drift event", 15),
          "the repair is a DomainStopped event")

    # libvirtd restarts: noticed, reconnected, re-listed, nothing spurious repaired.
    ids = {n: virsh("domid", n).strip() for n in NODES}
    events_before = len(ctl.events())
    with open(os.path.join(args.sandbox, "libvirtd.pid")) as f:
        libvirtd_pid = int(f.read().strip())
    killed = time.monotonic()
    os.kill(libvirtd_pid, signal.SIGTERM)  # the daemon this test's run.sh started
    check(wait_for(lambda: ctl.get("/readyz")[0] == 503, "readyz 503 without libvirtd", 30),
          "not ready while libvirtd is down")
    check(metric(ctl.get("/metrics")[1], "vmlab_libvirt_connected") == 0,
          "vmlab_libvirt_connected 0 while libvirtd is down")
    subprocess.run(args.restart_libvirtd, shell=True, check=True)
    ok = wait_for(lambda: ctl.get("/readyz")[0] == 200, "readyz after the restart", 60)
    if check(ok, "reconnected after the libvirtd restart"):
        figures["libvirtd killed to controller ready again"] = time.monotonic() - killed
    check(metric(ctl.get("/metrics")[1], "vmlab_libvirt_connected") == 1, "vmlab_libvirt_connected 1")
    time.sleep(7)  # one resync (5 s) after the re-list
    check({n: virsh("domid", n).strip() for n in NODES} == ids,
          "domains that kept running were not restarted")
    new = ctl.events()[events_before:] if len(ctl.events()) > events_before else []
    check(not any(e["reason"] in DRIFT_KINDS for e in new),
          f"no spurious drift after the reconnect: {[e['reason'] for e in new]}")

    # Deleting the manifest deletes the lab, and nothing of it is left.
    os.remove(os.path.join(watch, f"{LAB}.yaml"))
    check(wait_for(lambda: ctl.get(f"/api/v1/labclusters/{LAB}")[0] == 404, "the lab to go", 60),
          "the lab is gone from the API")
    check(not any(n.startswith(LAB + "-") for n in virsh("list", "--all", "--name").split()),
          "no domain of the lab left")
    check(f"vmlab-{LAB}" not in virsh("net-list", "--all", "--name").split(), "no network left")
    check(not any(v.startswith(LAB + "-") for v in
                  [line.split()[0] for line in virsh("vol-list", "vmlab").splitlines() if line.strip()]),
          "no volume left")


GOLD_PREFIX = "172.31.78"  # lab gold-a's network; gold-b's is 172.31.79.0/24
GOLD_REPOSITORY = f"http://{GOLD_PREFIX}.1/"  # the stand-in Kubernetes package repository


def gold_manifest(name, prefix, image, addon=None, golden=True):
    addons = f"  addons: [{addon}]\n" if addon else ""
    return f"""apiVersion: vmlab.io/v1alpha1
kind: LabCluster
metadata:
  name: {name}
spec:
  kubernetes: {{version: "1.30.4"}}
  network: {{cidr: {prefix}.0/24, domain: {DOMAIN}}}
  controlPlane: {{replicas: 1, cpus: 1, memoryMiB: 1024, diskGiB: 5}}
  workers: {{replicas: 0}}
  image:
    path: {image}/base.qcow2
    kernel: {image}/vmlinuz
    initrd: {image}/initrd.img
    cmdline: "root=/dev/vda rw console=ttyS0 net.ifnames=0"
{addons}  cache: {{goldenImage: {"true" if golden else "false"}}}
"""


def serve_kubernetes_packages(scratch, payload_bytes=0, rate=0):
    """A stand-in for pkgs.k8s.io/core:/stable:/v1.30/deb/ (a test fixture: no
    Kubernetes can be had here): kubelet, kubeadm and kubectl 1.30.4-1.1 as
    stub packages (kubeadm says what it is and fails; kubelet ships a unit),
    in a flat repository signed with a throwaway key, as the real one is.
    Served on port 80 of every address inside the test's namespace.
    `payload_bytes`: random bytes in each package (real ones are 10-20 MB);
    `rate`: bytes per second the server sends at most (0: unlimited)."""
    root = os.path.join(scratch, "k8s-packages")
    repo = os.path.join(root, "v1.30", "deb")
    os.makedirs(repo)
    for name in ("kubelet", "kubeadm", "kubectl"):
        pkg = os.path.join(scratch, "k8s-pkg", name)
        os.makedirs(os.path.join(pkg, "DEBIAN"))
        os.makedirs(os.path.join(pkg, "usr", "bin"))
        with open(os.path.join(pkg, "DEBIAN", "control"), "w") as f:
            f.write(f"Package: {name}\nVersion: 1.30.4-1.1\nArchitecture: amd64\n"
                    "Maintainer: vmlab e2e <e2e@example.invalid>\n"
                    f"Description: {name} stand-in (vmlab e2e fixture)\n")
        if payload_bytes:
            os.makedirs(os.path.join(pkg, "usr", "share", name))
            with open(os.path.join(pkg, "usr", "share", name, "payload"), "wb") as f:
                f.write(os.urandom(payload_bytes))
        tool = os.path.join(pkg, "usr", "bin", name)
        with open(tool, "w") as f:
            f.write(f"#!/bin/sh\necho '{name} stand-in (vmlab e2e fixture): no Kubernetes here' >&2\nexit 1\n")
        os.chmod(tool, 0o755)
        if name == "kubelet":
            unit = os.path.join(pkg, "lib", "systemd", "system")
            os.makedirs(unit)
            with open(os.path.join(unit, "kubelet.service"), "w") as f:
                f.write("[Unit]\nDescription=kubelet stand-in\n[Service]\nExecStart=/usr/bin/kubelet\n"
                        "[Install]\nWantedBy=multi-user.target\n")
        subprocess.run(["dpkg-deb", "-Zgzip", "--build", "--root-owner-group", pkg,
                        os.path.join(repo, f"{name}_1.30.4-1.1_amd64.deb")], check=True, capture_output=True)
    home = os.path.join(scratch, "gnupg")
    os.makedirs(home, mode=0o700)
    gpg = ["gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    subprocess.run([*gpg, "--quick-gen-key", "vmlab e2e <e2e@example.invalid>", "rsa2048", "sign", "1d"],
                   check=True, capture_output=True)
    with open(os.path.join(repo, "Release.key"), "w") as f:
        subprocess.run([*gpg, "--armor", "--export"], stdout=f, check=True)
    with open(os.path.join(repo, "Packages"), "w") as f:
        subprocess.run(["apt-ftparchive", "packages", "."], cwd=repo, stdout=f, check=True)
    with open(os.path.join(repo, "Release"), "w") as f:
        subprocess.run(["apt-ftparchive", "release", "."], cwd=repo, stdout=f, check=True)
    subprocess.run([*gpg, "--clearsign", "-o", os.path.join(repo, "InRelease"), os.path.join(repo, "Release")],
                   check=True, capture_output=True)
    log = open(os.path.join(scratch, "k8s-packages.log"), "w")
    return subprocess.Popen([sys.executable, os.path.join(SOURCE, "tests/fixtures/http_server.py"),
                             "--port", "80", "--rate", str(rate), root], stdout=log, stderr=subprocess.STDOUT)


def run_golden(args, virsh, ctl, watch, state):
    """spec.cache.goldenImage: lab gold-a's builder VM runs the download phases
    (stub Kubernetes packages from the stand-in repository, the add-on's image
    through the docker.io mirror), seals itself and powers off; vmlab makes the
    golden image of its disk; gold-a's node boots from it with the packages and
    the image already there; gold-b, with the same key, boots from the same
    image without a build."""
    check(wait_for(lambda: ctl.get("/readyz")[0] == 200, "readyz", 30), "restarted controller ready")
    addon = os.path.join(args.scratch, "tools-addon.yaml")
    with open(addon, "w") as f:
        f.write("apiVersion: v1\nkind: Pod\nmetadata: {name: tools}\n"
                "spec: {containers: [{name: tools, image: tools:2}]}\n")
    packages = serve_kubernetes_packages(args.scratch)
    try:
        started = time.monotonic()
        with open(os.path.join(watch, "gold-a.yaml"), "w") as f:
            f.write(gold_manifest("gold-a", GOLD_PREFIX, args.image, addon))
        builder = wait_for(lambda: "gold-a-golden" in virsh("list", "--name").split(),
                           "gold-a's golden image builder to run", 120)
        check(builder, "the golden image builder runs on gold-a's network")
        lab = wait_for(lambda: ctl.lab("gold-a") if condition(ctl.lab("gold-a"), "InfrastructureReady")
                       .get("reason") == "WaitingForGoldenImage" else None, "gold-a's status", 30)
        check(condition(lab, "InfrastructureReady").get("reason") == "WaitingForGoldenImage",
              f"gold-a's nodes wait for the image: {condition(lab, 'InfrastructureReady')}")
        check("gold-a-cp-1" not in virsh("list", "--all", "--name").split(),
              "no node is created while the image is built")
        check("building golden image" in condition(lab, "CacheReady").get("message", ""),
              f"CacheReady says the image is being built: {condition(lab, 'CacheReady')}")
        pool = os.path.join(state, "pool")
        def golden_images():
            return [n for n in os.listdir(pool) if n.startswith("golden-") and n.endswith(".qcow2")]
        built = wait_for(golden_images, "the golden image", 900)
        if not check(built, "the golden image is built from the builder's disk"):
            print(console(state, "gold-a-golden")[-3000:])
            print([e["message"] for e in ctl.events("gold-a")][-5:])
            return
        figures["manifest to golden image built"] = time.monotonic() - started
        image = os.path.join(pool, built[0])
        info = subprocess.run(["qemu-img", "info", "--output=json", image], capture_output=True,
                              text=True, check=True).stdout
        check("backing-filename" not in json.loads(info), "the golden image stands alone")
        check(wait_for(lambda: any(e["reason"] == "GoldenImageBuilt" for e in ctl.events("gold-a")),
                       "the GoldenImageBuilt event", 30), "a GoldenImageBuilt event")
        metrics = ctl.get("/metrics")[1]
        check(metric(metrics, 'vmlab_golden_image_builds_total{result="succeeded"}') == 1,
              "one golden image build counted")
        check((metric(metrics, 'vmlab_cache_warmed_images_total{cache="images",result="warmed"}') or 0) >= 1,
              "the add-on's image was warmed into the docker.io mirror")
        cache = condition(ctl.lab("gold-a"), "CacheReady").get("message", "")
        check("3 Kubernetes package file(s) warmed" in cache,
              f"kubelet, kubeadm and kubectl were warmed into the apt cache: {cache}")
        check(wait_for(lambda: "gold-a-golden" not in virsh("list", "--all", "--name").split(),
                       "the builder to go", 60), "the builder VM is removed")
        check(not any(v.startswith("gold-a-golden") for v in virsh("vol-list", "vmlab").split()),
              "the builder's volumes are removed")

        # gold-a's node boots from the golden image: packages and image are there.
        node = "gold-a-cp-1"
        ok = wait_for(lambda: node in virsh("list", "--name").split(), f"{node} to run", 60)
        check(ok, f"{node} runs once the image is built")
        volume = virsh("vol-dumpxml", "--pool", "vmlab", f"{node}-root.qcow2")
        check(f"<path>{image}</path>" in volume, f"{node}'s disk is backed by the golden image")
        if wait_for(lambda: virsh.agent(node, "guest-ping") == {}, f"{node}'s guest agent", 300):
            figures["golden image built to node's agent up"] = time.monotonic() - started - figures["manifest to golden image built"]
            code, out = virsh.guest_exec(node, "/usr/bin/dpkg-query", "-W", "-f=${Version}", "kubeadm")
            check(code == 0 and out == "1.30.4-1.1", f"{node} has kubeadm 1.30.4 from the image: {out!r}")
            # containerd may be starting, or restarting for the base phase's
            # configuration, when the agent answers: ask until it does.
            listing = {}

            def images():
                listing["result"] = virsh.guest_exec(node, "/usr/bin/ctr", "-n", "k8s.io", "images", "ls", "-q")
                return listing["result"][0] == 0
            wait_for(images, f"{node}'s containerd to answer", 120)
            code, out = listing.get("result", (None, ""))
            check(code == 0 and "docker.io/library/tools:2" in out.split(),
                  f"{node} has the add-on's image from the image: exit {code}, {out!r}")
            ok = wait_for(lambda: "installed already" in virsh.guest_exec(node, "/bin/cat", "/var/log/vmlab/kubernetes.log")[1],
                          f"{node}'s kubernetes phase", 300)
            check(ok, f"{node}'s kubernetes phase downloads nothing (packages installed already)")
            if ok:
                figures["manifest to golden-booted node past its download phases"] = time.monotonic() - started
            code, out = virsh.guest_exec(node, "/bin/cat", "/etc/machine-id")
            check(code == 0 and len(out.strip()) == 32, f"{node} has a machine id of its own: {out!r}")

        # gold-b, same key: no build, the same image.
        started_b = time.monotonic()
        with open(os.path.join(watch, "gold-b.yaml"), "w") as f:
            f.write(gold_manifest("gold-b", "172.31.79", args.image, addon))
        seen_builder = False
        def b_running():
            nonlocal seen_builder
            names = virsh("list", "--all", "--name").split()
            seen_builder = seen_builder or "gold-b-golden" in names
            return "gold-b-cp-1" in names
        check(wait_for(b_running, "gold-b's node", 120), "gold-b's node is created")
        figures["gold-b manifest to its node running (golden image ready)"] = time.monotonic() - started_b
        check(not seen_builder, "gold-b built nothing")
        volume = virsh("vol-dumpxml", "--pool", "vmlab", "gold-b-cp-1-root.qcow2")
        check(f"<path>{image}</path>" in volume, "gold-b's disk is backed by the same golden image")
        metrics = ctl.get("/metrics")[1]
        check(metric(metrics, 'vmlab_golden_image_builds_total{result="succeeded"}') == 1,
              "still one build")
        check(wait_for(lambda: (metric(ctl.get("/metrics")[1], 'vmlab_cache_requests_total{cache="golden",result="hit"}') or 0) >= 2,
                       "two golden image hits", 30), "both nodes counted as golden image hits")

        for name in ("gold-a", "gold-b"):
            os.remove(os.path.join(watch, f"{name}.yaml"))
        check(wait_for(lambda: not any(n.startswith("gold-") for n in virsh("list", "--all", "--name").split()),
                       "the gold labs to go", 120), "the gold labs are deleted")
        check(os.path.exists(image), "the golden image stays for later labs")
    finally:
        packages.terminate()
        packages.wait(timeout=10)


def main():
    parser = argparse.ArgumentParser(description="Run under tests/e2e/with_sandbox.sh.")
    parser.add_argument("vmlab")
    args = parser.parse_args()
    args.vmlab = os.path.abspath(args.vmlab)
    env = os.environ
    args.sandbox, args.image = env["VMLAB_SANDBOX"], env["VMLAB_IMAGE"]
    args.scratch, args.restart_libvirtd = env["VMLAB_SCRATCH"], env["VMLAB_RESTART_LIBVIRTD"]
    uri = env["VMLAB_LIBVIRT"]
    watch, state = os.path.join(args.scratch, "watch"), os.path.join(args.scratch, "state")
    os.makedirs(watch)
    virsh = Virsh(uri)
    only_golden = env.get("VMLAB_E2E_ONLY") == "golden"  # for working on that part
    # Images made with skopeo (test fixture): archives, and the registry the mirrors fetch from.
    args.made = os.path.join(args.scratch, "made")
    os.makedirs(args.made)
    subprocess.run(["bash", os.path.join(SOURCE, "tests/fixtures/images/make_archives.sh"), args.made],
                   check=True)
    registry = serve_registry(args.scratch, args.made)
    try:
        ctl = Controller(args.vmlab, watch, state, uri, args.scratch)
        try:
            if not only_golden:
                run(args, virsh, ctl, watch, state)
        finally:
            check(ctl.stop() == 0, "controller exits 0 on SIGTERM")
        # Golden images, with the stand-in Kubernetes package repository.
        ctl = Controller(args.vmlab, watch, state, uri, args.scratch,
                         extra=["--kubernetes-packages", GOLD_REPOSITORY], log_name="controller-golden.log")
        try:
            run_golden(args, virsh, ctl, watch, state)
        finally:
            check(ctl.stop() == 0, "the second controller exits 0 on SIGTERM")
    finally:
        registry.terminate()
        registry.wait(timeout=10)
    for what, seconds in figures.items():
        print(f"e2e figure: {what}: {seconds:.1f} s")
    print(f"{passed} passed, {failed} failed")
    if failed:
        print(f"controller log: {ctl.log_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
