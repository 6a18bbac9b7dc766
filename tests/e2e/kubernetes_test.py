#!/usr/bin/env python3
"""Real Kubernetes under vmlab: kubeadm clusters built from Debian's own
Kubernetes source (1.20.2), booted, scaled, token-rotated and drained for real.

Runs inside the network namespace tests/e2e/with_sandbox.sh made, against its
private libvirtd with the distribution's default qemu settings (qemu as
libvirt-qemu, dynamic ownership):
    with_sandbox.sh kubernetes_test.py VMLAB --debs DIR --images DIR
DIR are scripts/kubernetes/artifacts.sh's: the kubelet, kubeadm and kubectl
Debian packages, and the control plane's OCI images.

Inside the namespace (nothing leaves it), the test serves what a user's host
reaches on the internet: the Kubernetes package repository (a signed flat
repository laid out like pkgs.k8s.io/core:/stable:/v1.20/deb/, holding the
real packages) on port 80, and an upstream registry holding the images
kubeadm asks for (registry.k8s.io/...), which vmlab's own registry mirror
fetches from. Nothing Kubernetes runs is baked into the guest image: the
kubernetes phase installs the packages through vmlab's apt cache, containerd
pulls the images through vmlab's mirror.

First, before any VM: the real kubeadm reads the configuration vmlab renders
for a primary, a secondary control plane and a worker (`kubeadm config
migrate`, a strict decode and validation).

Lab k1 (1 control plane + 1 worker, cni: bridge) is dropped into the watch
folder. Checked from the host with the real kubectl (--kubectl: the host's,
else the one built with the cluster; the lab's admin
kubeconfig from the state dir, through the VIP and the endpoint port): every
node Ready, the control-plane pods Running, /readyz ok; vmlab's status
Ready=True with reason Ready (not SimulatedReady), ControlPlaneReady and
WorkersReady from the real API. Then on the real cluster: a bootstrap token
rotation (the token's age moved past half its TTL while the controller is
stopped; the restarted controller makes a new token through the real API),
workers 1 -> 2 (a real join with the rotated token), a pod placed on the new
worker, workers 2 -> 1 (a real drain through the eviction API: the pod is
evicted and runs on the other worker, the Node object is deleted, then the
VM). Then the seed's HA shape, reached by an edit: control planes 1 -> 2 (a
real `kubeadm join --control-plane`), 2 control planes behind haproxy +
keepalived on the VIP + 1 worker, every control plane's pods Running, one VIP
holder; then control planes 2 -> 1: a real etcd member removal, the Node and
VM gone, the control plane left accepting writes. Every step is timed and
printed. Ends with "N passed, N failed".

--shape ha-boot instead boots the HA shape at once from one manifest (a
measurement, not part of make test: on 2 cores under TCG it is slow; see
docs/benchmarks.md).
"""
import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_test as e2e  # noqa: E402  (Virsh, Controller, check, wait_for, console)

check, wait_for, condition, console = e2e.check, e2e.wait_for, e2e.condition, e2e.console
SOURCE = e2e.SOURCE
LAB = "k1"
PREFIX = "172.31.90"
GATEWAY = f"{PREFIX}.1"
VIP = f"{PREFIX}.10"
PORT = 16443
DOMAIN = "k8s.test"
VERSION = "1.20.2"
REGISTRY = e2e.UPSTREAM_REGISTRY  # 127.0.0.1:5000 inside the namespace
figures = {}


def manifest(image, workers, name=LAB, control_planes=1, cp_cpus=2):
    # kubelet 1.20 runs on the cgroup v1 hierarchy of Debian 12's systemd
    # (docs/kubernetes-versions.md): the kernel command line asks for it.
    return f"""apiVersion: vmlab.io/v1alpha1
kind: LabCluster
metadata:
  name: {name}
spec:
  kubernetes: {{version: "{VERSION}", cni: bridge, podCIDR: 10.244.0.0/16}}
  network: {{cidr: {PREFIX}.0/24, domain: {DOMAIN}}}
  controlPlane:
    replicas: {control_planes}
    cpus: {cp_cpus}
    memoryMiB: 2048
    diskGiB: 10
    endpoint: {{vip: {VIP}, port: {PORT}}}
  workers: {{replicas: {workers}, cpus: 1, memoryMiB: 1024, diskGiB: 10}}
  image:
    path: {image}/base.qcow2
    kernel: {image}/vmlinuz
    initrd: {image}/initrd.img
    cmdline: "root=/dev/vda rw console=ttyS0 net.ifnames=0 systemd.unified_cgroup_hierarchy=0"
"""


def check_kubeadm_configs(args):
    """Real kubeadm reads every configuration vmlab writes: the primary's
    InitConfiguration + ClusterConfiguration, a secondary's and a worker's
    JoinConfiguration, as `vmlab render` makes them for the HA shape.
    `kubeadm config migrate` decodes them strictly (unknown fields, a number
    where kubeadm wants a string) and validates them, without a cluster."""
    path = os.path.join(args.scratch, "kubeadm-check.yaml")
    with open(path, "w") as f:
        f.write(manifest(args.image, 1, control_planes=2))
    for node in (f"{LAB}-cp-1", f"{LAB}-cp-2", f"{LAB}-worker-1"):
        out = subprocess.run([args.vmlab, "render", "--show-secrets", "--what", "user-data", "--node", node, path],
                             capture_output=True, text=True)
        if not check(out.returncode == 0, f"vmlab render {node}: {out.stderr.strip()}"):
            continue
        files = {f["path"]: f.get("content", "") for f in yaml.safe_load(out.stdout).get("write_files", [])}
        config = files.get("/etc/vmlab/kubeadm.yaml")
        if not check(config is not None, f"{node}'s seed writes /etc/vmlab/kubeadm.yaml"):
            continue
        old, new = os.path.join(args.scratch, f"{node}.kubeadm.yaml"), os.path.join(args.scratch, f"{node}.migrated.yaml")
        with open(old, "w") as f:
            f.write(config)
        migrated = subprocess.run([args.kubeadm, "config", "migrate", "--old-config", old, "--new-config", new],
                                  capture_output=True, text=True)
        check(migrated.returncode == 0,
              f"kubeadm {VERSION} reads {node}'s configuration: {migrated.stderr.strip()[-600:] or 'ok'}")
        if node == f"{LAB}-cp-1":
            check_probe_patches(args, files, old)


def check_probe_patches(args, files, config):
    """The real kubeadm writes the primary's static pods with vmlab's probe
    patches applied: in a private mount namespace whose /etc is an overlay,
    so that nothing reaches the host's /etc/kubernetes."""
    base = os.path.join(args.scratch, "kubeadm-patches-check")
    patches, upper, work = (os.path.join(base, d) for d in ("patches", "upper", "work"))
    for d in (patches, upper, work):
        os.makedirs(d)
    prefix = "/etc/vmlab/kubeadm-patches/"
    for path, content in files.items():
        if path.startswith(prefix):
            with open(os.path.join(patches, path[len(prefix):]), "w") as f:
                f.write(content)
    check(sorted(os.listdir(patches)) == ["etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml",
                                          "kube-scheduler.yaml"], f"the primary's seed has the probe patches: {os.listdir(patches)}")
    flags = f"--config {config} --experimental-patches {patches}"
    script = (f"mount --make-rprivate / && mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc"
              f" && {{ {args.kubeadm} init phase control-plane all {flags} && {args.kubeadm} init phase etcd local"
              f" {flags}; }} >&2 && for f in /etc/kubernetes/manifests/*.yaml; do echo ---; cat $f; done")
    out = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
    if not check(out.returncode == 0, f"kubeadm {VERSION} applies the probe patches: {out.stderr.strip()[-600:]}"):
        return
    pods = [p for p in yaml.safe_load_all(out.stdout) if p and p.get("kind") == "Pod"]
    probes = {p["metadata"]["name"]: p["spec"]["containers"][0]["livenessProbe"] for p in pods}
    check(len(probes) == 4 and all(v.get("timeoutSeconds") == 30 and v.get("failureThreshold") == 30
                                   for v in probes.values()),
          f"the static pods' liveness probes as patched: {probes}")


def serve_packages(scratch, debs):
    """The real kubelet, kubeadm and kubectl packages in a flat repository at
    /v1.20/deb/, signed with a throwaway key as pkgs.k8s.io's are, served on
    port 80 of every address in the namespace."""
    root = os.path.join(scratch, "k8s-packages")
    repo = os.path.join(root, "v1.20", "deb")
    os.makedirs(repo)
    for name in sorted(os.listdir(debs)):
        if name.endswith(".deb"):
            shutil.copy(os.path.join(debs, name), repo)
    home = os.path.join(scratch, "gnupg-k8s")
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
                             "--port", "80", root], stdout=log, stderr=subprocess.STDOUT)


def serve_images(scratch, images):
    """A docker-registry on 127.0.0.1:5000 holding the images kubeadm 1.20
    asks for, under their registry.k8s.io paths: vmlab's registry.k8s.io
    mirror fetches from it."""
    config = os.path.join(scratch, "k8s-registry.yml")
    with open(config, "w") as f:
        f.write(f"version: 0.1\nlog: {{level: warn, formatter: text}}\n"
                f"storage: {{filesystem: {{rootdirectory: {scratch}/k8s-registry}}}}\n"
                f"http: {{addr: {REGISTRY}}}\n")
    log = open(os.path.join(scratch, "k8s-registry.log"), "w")
    proc = subprocess.Popen(["docker-registry", "serve", config], stdout=log, stderr=subprocess.STDOUT)
    wait_for(lambda: subprocess.run(["curl", "-fs", "-o", "/dev/null", f"http://{REGISTRY}/v2/"]).returncode == 0,
             "the test registry", 15)
    with open(os.path.join(images, "images.txt")) as f:
        for line in f:
            ref, name = line.split()
            path = name.split("/", 1)[1]  # registry.k8s.io/kube-apiserver:v1.20.2 -> kube-apiserver:v1.20.2
            subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false",
                            f"oci:{images}/layout:{ref}", f"docker://{REGISTRY}/{path}"], check=True)
    return proc


class Kubectl:
    """The real kubectl with the lab's admin kubeconfig, through the VIP."""

    def __init__(self, kubectl, kubeconfig):
        self.base = [kubectl, "--kubeconfig", kubeconfig, "--server", f"https://{VIP}:{PORT}",
                     "--request-timeout", "20s"]

    # An API server on a loaded TCG guest drops a connection now and then
    # (its liveness probe restarts it, haproxy fails over): tried again.
    TRANSIENT = ("Unable to connect to the server", "connection refused", "TLS handshake timeout",
                 "the server is currently unable", "net/http: request canceled", "i/o timeout")

    def __call__(self, *args, timeout=60, attempts=6):
        for attempt in range(attempts):
            result = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=timeout)
            out = result.stdout + result.stderr
            if result.returncode == 0 or not any(t in out for t in self.TRANSIENT) or attempt == attempts - 1:
                return result.returncode, out
            time.sleep(5)

    def json(self, *args):
        code, out = self(*args, "-o", "json")
        if code != 0:
            raise ValueError(out)
        return json.loads(out)

    def ready_nodes(self):
        nodes = self.json("get", "nodes")["items"]
        return sorted(n["metadata"]["name"] for n in nodes
                      if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]))

    def server_version(self):
        code, out = self("get", "--raw", "/version")
        return json.loads(out).get("gitVersion") if code == 0 else out

    def node_names(self):
        return sorted(n["metadata"]["name"] for n in self.json("get", "nodes")["items"])

    def pods(self, namespace, selector=None):
        args = ["get", "pods", "-n", namespace] + (["-l", selector] if selector else [])
        return self.json(*args)["items"]


def metric_sum(text, name, **labels):
    """The sum of `name` over the series whose labels include `labels`."""
    values = [float(line.split()[-1]) for line in text.splitlines()
              if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items())]
    return sum(values) if values else None


def node_phases(lab):
    return {n["name"]: n.get("bootstrapPhase", "") for n in (lab or {}).get("status", {}).get("nodes", [])}


def report(ctl, state, nodes, name=LAB, virsh=None):
    """What a person debugging this would look at first: the conditions, each
    node's console and, read through the guest agent while the VMs still run
    (the sandbox's libvirtd takes them down at the end), the phase logs."""
    lab = ctl.lab(name)
    for c in (lab or {}).get("status", {}).get("conditions", []):
        print(f"  condition {c['type']}={c['status']} {c['reason']}: {c['message'][:400]}")
    for node in nodes:
        print(f"  --- console of {node} (last lines) ---")
        print("\n".join(console(state, node).splitlines()[-25:]))
        if virsh is None:
            continue
        try:
            code, out = virsh.guest_exec(node, "/bin/sh", "-c",
                                         "tail -n 60 /var/log/vmlab/*.log; crictl ps -a 2>/dev/null | tail -n 20",
                                         timeout=30)
            print(f"  --- {node}: /var/log/vmlab/*.log (last lines) ---\n{out}")
        except (subprocess.CalledProcessError, OSError, ValueError, KeyError) as error:
            print(f"  --- {node}: no phase logs through the guest agent: {error}")


def wait_ready(ctl, state, nodes, what, timeout, name=LAB, virsh=None):
    started = time.monotonic()
    last = [0.0]

    def ready():
        lab = ctl.lab(name)
        if time.monotonic() - last[0] > 60:
            last[0] = time.monotonic()
            print(f"  [{time.monotonic() - started:5.0f} s] {what}: phases {node_phases(lab)}; "
                  f"Ready {condition(lab, 'Ready').get('reason')}", flush=True)
            # Where a running phase is: the last lines of its log in the guest.
            for node, phase in node_phases(lab).items():
                if virsh is None or not phase.endswith(": started"):
                    continue
                log = f"/var/log/vmlab/{phase.split(':')[0]}.log"
                try:
                    out = virsh.guest_exec(node, "/usr/bin/tail", "-n", "3", log, timeout=15)[1]
                    print("\n".join(f"      {node} {line[:300]}" for line in out.splitlines()), flush=True)
                except (subprocess.CalledProcessError, OSError, ValueError, KeyError):
                    pass
        c = condition(lab, "Ready")
        return lab if c.get("status") == "True" and sorted(node_phases(lab)) == sorted(nodes) else None
    lab = wait_for(ready, what, timeout)
    if lab is None:
        report(ctl, state, nodes, name, virsh)
    return lab


def ready_then_deleted(ctl, virsh, name, path, what):
    """After a scale-down: the lab is Ready again; then deleting its
    manifest deletes every VM of it."""
    lab = wait_for(lambda: ctl.lab(name) if condition(ctl.lab(name), "Ready").get("status") == "True" else None,
                   f"{name} Ready after {what}", 300)
    check(lab is not None, f"{name} is Ready after {what}")
    os.remove(path)
    check(wait_for(lambda: not any(n.startswith(name + "-") for n in virsh("list", "--all", "--name").split()),
                   f"{name} to go", 300), f"deleting {name}'s manifest deletes it")


def run(args, virsh, ctl, watch, state):
    check(wait_for(lambda: ctl.get("/readyz")[0] == 200, "readyz", 30), "controller ready")
    cp, w1, w2 = f"{LAB}-cp-1", f"{LAB}-worker-1", f"{LAB}-worker-2"
    path = os.path.join(watch, f"{LAB}.yaml")
    started = time.monotonic()
    with open(path, "w") as f:
        f.write(manifest(args.image, 1, cp_cpus=args.cp_cpus))

    # Every domain runs (qemu as libvirt-qemu): the host realism the issue asks for.
    ok = wait_for(lambda: all(n in virsh("list", "--name").split() for n in (cp, w1)),
                  "both domains to run", 180)
    check(ok, "both domains run under the distribution's default qemu user")
    if ok:
        figures["manifest to both domains running"] = time.monotonic() - started
        out = subprocess.run(["ps", "-o", "user=", "-C", "qemu-system-x86_64"], capture_output=True,
                             text=True).stdout.split()
        check(out and all(u == "libvirt-qemu" for u in out), f"qemu runs as libvirt-qemu: {out}")
        seed = os.path.join(state, "pool", f"{cp}-seed.iso")
        mode = os.stat(seed).st_mode & 0o777
        check(mode & 0o077 == 0, f"the seed (secrets) is unreadable to other users: {oct(mode)}")
    else:
        report(ctl, state, [cp, w1])
        return

    lab = wait_ready(ctl, state, [cp, w1], "k1 Ready from the real API", args.timeout, virsh=virsh)
    if not check(lab is not None, "k1 goes Ready"):
        return
    figures["manifest to all nodes Ready (1 control plane + 1 worker)"] = time.monotonic() - started
    ready = condition(lab, "Ready")
    check(ready["reason"] == "Ready", f"Ready from the real API, not simulated: {ready}")
    for kind in ("ControlPlaneReady", "WorkersReady"):
        c = condition(lab, kind)
        check(c.get("status") == "True" and c.get("reason") == "NodesReady", f"{kind}: {c}")
    metrics = ctl.get("/metrics")[1]
    for role, phase in (("control-plane", "primary"), ("control-plane", "kubernetes"),
                        ("control-plane", "base"), ("worker", "worker"), ("worker", "kubernetes")):
        value = metric_sum(metrics, "vmlab_bootstrap_phase_duration_seconds_sum", role=role, phase=phase)
        if check(value is not None and value > 0, f"phase {phase} ({role}) duration observed"):
            figures[f"phase {phase} ({role}), vmlab's histogram"] = value

    kubeconfig = lab["status"].get("kubeconfig", "")
    check(os.path.isfile(kubeconfig), f"the admin kubeconfig is in the state dir: {kubeconfig}")
    kubectl = Kubectl(args.kubectl, kubeconfig)
    code, out = kubectl("get", "--raw", "/readyz")
    check(code == 0 and out.strip().endswith("ok"), f"/readyz through the VIP: {out.strip()[-200:]}")
    version = kubectl.server_version()
    check(version == f"v{VERSION}", f"the API server is v{VERSION}: {version}")
    check(kubectl.ready_nodes() == [cp, w1], f"both nodes Ready: {kubectl.ready_nodes()}")
    check_control_plane_pods(kubectl, [cp])
    # kube-proxy (a DaemonSet) starts after the node is Ready: slow under TCG.
    proxies = wait_for(lambda: len([p for p in kubectl.pods("kube-system", "k8s-app=kube-proxy")
                                    if p["status"].get("phase") == "Running"]) == 2,
                       "kube-proxy on both nodes", 600)
    check(proxies, "kube-proxy (the image built on a Debian root) Running on both nodes")
    code, out = virsh.guest_exec(cp, "/bin/cat", "/var/log/vmlab/primary.log", timeout=20)
    match = re.search(r"Your Kubernetes control-plane has initialized successfully", out)
    check(match is not None, "kubeadm init said it succeeded")

    # Bootstrap token rotation for real: the token's age is moved past half its
    # TTL while the controller is stopped; the restarted controller makes a new
    # token through the real API. The next join uses it.
    check(ctl.stop() == 0, "the controller stops for the token rotation")
    meta_path = os.path.join(state, "pki", LAB, "bootstrap.yaml")
    with open(meta_path) as f:
        meta = f.read()
    old_token = re.search(r"^token: (\S+)", meta, re.M).group(1)
    aged = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=13)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with open(meta_path, "w") as f:
        f.write(re.sub(r"^tokenCreated: .*$", f"tokenCreated: {aged}", meta, flags=re.M))
    ctl = args.ctl = args.start_controller("controller-2.log")
    rotated = wait_for(lambda: [e for e in ctl.events(LAB) if e["reason"] == "BootstrapTokenRotated"],
                       "the token rotation", 120)
    if check(rotated, "the controller rotated the bootstrap token"):
        with open(meta_path) as f:
            new_token = re.search(r"^token: (\S+)", f.read(), re.M).group(1)
        check(new_token != old_token, "a new token on disk")
        code, out = kubectl("get", "secret", "-n", "kube-system", f"bootstrap-token-{new_token.split('.')[0]}")
        check(code == 0, f"the new token's Secret is in the real API: {out.strip()[-200:]}")

    # Workers 1 -> 2: a real join with the rotated token.
    started = time.monotonic()
    with open(path, "w") as f:
        f.write(manifest(args.image, 2, cp_cpus=args.cp_cpus))
    lab = wait_ready(ctl, state, [cp, w1, w2], "worker-2 to join", args.timeout, virsh=virsh)
    if check(lab is not None and kubectl.ready_nodes() == [cp, w1, w2], "worker-2 joined and is Ready"):
        figures["scale 1 -> 2 workers: edit to the new worker Ready"] = time.monotonic() - started
        code, out = virsh.guest_exec(w2, "/bin/cat", "/etc/vmlab/kubeadm.yaml", timeout=20)
        check(rotated and new_token in out, "worker-2 joined with the rotated token")
    else:
        return

    # A pod on worker-2 (worker-1 cordoned while it is placed), then workers
    # 2 -> 1: vmlab drains worker-2 through the eviction API.
    check(kubectl("cordon", w1)[0] == 0, "worker-1 cordoned for the placement")
    workload = os.path.join(args.scratch, "workload.yaml")
    with open(workload, "w") as f:
        f.write("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: sleeper, namespace: default}\n"
                "spec:\n  replicas: 1\n  selector: {matchLabels: {app: sleeper}}\n"
                "  template:\n    metadata: {labels: {app: sleeper}}\n"
                "    spec: {containers: [{name: pause, image: registry.k8s.io/pause:3.2}]}\n")
    check(kubectl("apply", "-f", workload)[0] == 0, "the workload is applied")

    def running_on():
        pods = [p for p in kubectl.pods("default", "app=sleeper") if p["status"].get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp")]
        return [p["spec"]["nodeName"] for p in pods]
    check(wait_for(lambda: running_on() == [w2], "the pod on worker-2", 300), f"the pod runs on {w2}")
    check(kubectl("uncordon", w1)[0] == 0, "worker-1 uncordoned")
    first_pod = kubectl.pods("default", "app=sleeper")[0]["metadata"]["name"]

    started = time.monotonic()
    with open(path, "w") as f:
        f.write(manifest(args.image, 1, cp_cpus=args.cp_cpus))
    moved = wait_for(lambda: running_on() == [w1], "the pod to run on worker-1", 600)
    check(moved, f"the evicted pod runs on {w1}")
    if moved:
        figures["scale 2 -> 1: edit to the pod running on the other worker"] = time.monotonic() - started
        replaced = wait_for(lambda: first_pod not in [p["metadata"]["name"] for p in kubectl.pods("default", "app=sleeper")],
                            "the evicted pod to be gone", 300)
        check(replaced, "the pod on worker-2 was evicted (a new pod replaced it)")
    gone = wait_for(lambda: w2 not in kubectl.node_names(), "worker-2's Node object to go", 300)
    check(gone, "worker-2's Node object is deleted")
    vm_gone = wait_for(lambda: w2 not in virsh("list", "--all", "--name").split(), "worker-2's VM to go", 300)
    check(vm_gone, "worker-2's VM is deleted")
    if gone and vm_gone:
        figures["scale 2 -> 1: edit to Node and VM gone (the drain)"] = time.monotonic() - started
    # The event is recorded by the reconcile that saw the VM gone: waited for.
    drained = wait_for(lambda: [e for e in ctl.events(LAB) if e["reason"] == "NodeDrained" and w2 in e.get("message", "")],
                       "the NodeDrained event", 120)
    check(drained, f"a NodeDrained event for {w2}: {[e['reason'] for e in ctl.events(LAB)][-12:]}")
    check(kubectl.ready_nodes() == [cp, w1], f"the cluster keeps its other nodes Ready: {kubectl.ready_nodes()}")

    # The seed's HA shape, reached by an edit: control planes 1 -> 2 (a real
    # `kubeadm join --control-plane` and etcd member add), 2 control planes
    # behind haproxy + keepalived on the VIP + 1 worker; then 2 -> 1.
    cp2 = f"{LAB}-cp-2"
    started = time.monotonic()
    with open(path, "w") as f:
        f.write(manifest(args.image, 1, control_planes=2, cp_cpus=args.cp_cpus))
    lab = wait_ready(ctl, state, [cp, cp2, w1], "cp-2 to join the control plane", args.timeout, virsh=virsh)
    if not check(lab is not None, "control planes 1 -> 2: cp-2 joined and the lab is Ready"):
        return
    figures["HA: control planes 1 -> 2, edit to the new control plane Ready"] = time.monotonic() - started
    metrics = ctl.get("/metrics")[1]
    value = metric_sum(metrics, "vmlab_bootstrap_phase_duration_seconds_sum", role="control-plane", phase="secondary")
    if check(value is not None and value > 0, "phase secondary duration observed"):
        figures["HA: phase secondary (control-plane join), vmlab's histogram"] = value
    check_ha(kubectl, virsh, [cp, cp2], w1)
    control_plane_scale_down(args, ctl, virsh, kubectl, LAB, path, cp, cp2)
    ready_then_deleted(ctl, virsh, LAB, path, "the control-plane scale-down")


def answered(call):
    """call()'s result, or a one-item list naming the API error: an API that
    does not answer (an etcd election under load) is "not yet" for a wait,
    not the end of the test."""
    try:
        return call()
    except ValueError as error:
        return [f"API error: {str(error).strip()[-160:]}"]


def check_control_plane_pods(kubectl, cps):
    """Each control-plane component Running on every control plane, waited
    for (under load a component may be between restarts)."""
    for component in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        def running():
            return answered(lambda: sorted(p["spec"]["nodeName"]
                                           for p in kubectl.pods("kube-system", f"component={component}")
                                           if p["status"].get("phase") == "Running"))
        check(wait_for(lambda: running() == sorted(cps), f"{component} on every control plane", 300),
              f"{component} Running on {', '.join(cps)}: {running()}")


def check_ha(kubectl, virsh, cps, worker):
    """Every node Ready, each control plane's pods Running, one VIP holder."""
    check(wait_for(lambda: answered(kubectl.ready_nodes) == sorted([*cps, worker]), "all three nodes Ready", 300),
          f"all three nodes Ready: {answered(kubectl.ready_nodes)}")
    check_control_plane_pods(kubectl, cps)
    holders = [n for n in cps if f"{VIP}/24" in virsh.guest_exec(n, "/sbin/ip", "-4", "-o", "addr", "show", "eth0")[1]]
    check(len(holders) == 1, f"exactly one control plane holds the VIP: {holders}")


def control_plane_scale_down(args, ctl, virsh, kubectl, name, path, cp1, cp2):
    """Control planes 2 -> 1: cp-2 leaves etcd first (while the member left
    keeps a quorum), then its Node and VM go; cp-1 keeps serving writes."""
    started = time.monotonic()
    with open(path, "w") as f:
        f.write(manifest(args.image, 1, name=name, control_planes=1, cp_cpus=args.cp_cpus))
    removed = wait_for(lambda: [e for e in ctl.events(name) if e["reason"] == "EtcdMemberRemoved"],
                       "cp-2's etcd member to be removed", 600)
    check(removed, f"cp-2's etcd member removed through the real etcd: {removed[:1] if removed else ''}")
    gone = wait_for(lambda: cp2 not in virsh("list", "--all", "--name").split(), "cp-2's VM to go", 600)
    check(gone, "cp-2's VM is deleted")
    check(wait_for(lambda: cp2 not in kubectl.node_names(), "cp-2's Node to go", 300), "cp-2's Node is deleted")
    if gone:
        figures["HA: control planes 2 -> 1, edit to etcd member removed and VM gone"] = time.monotonic() - started
    etcd_pods = wait_for(lambda: [p["spec"]["nodeName"] for p in kubectl.pods("kube-system", "component=etcd")] == [cp1],
                         "one etcd pod left", 300)
    check(etcd_pods, "one etcd member's pod left, on cp-1")
    code, out = kubectl("create", "configmap", "after-scale-down", "-n", "default", "--from-literal=ok=1")
    # AlreadyExists: a retried create whose first try the server took (a
    # write accepted all the same).
    check(code == 0 or "AlreadyExists" in out,
          f"the control plane left accepts writes (etcd has its quorum): {out.strip()[-200:]}")
    code, out = kubectl("get", "--raw", "/readyz")
    check(code == 0 and out.strip().endswith("ok"), f"/readyz through the VIP after the scale-down: {out.strip()[-200:]}")


def run_ha_boot(args, virsh, ctl, watch, state):
    """The seed's HA shape booted at once from one manifest (--shape ha-boot;
    a measurement, not part of make test): 2 control planes behind haproxy +
    keepalived on the VIP + 1 worker, --cp-cpus vCPUs per control plane and
    1 for the worker, on the 2-core TCG machine; then control planes 2 -> 1."""
    name = "k2"
    cp1, cp2, w1 = f"{name}-cp-1", f"{name}-cp-2", f"{name}-worker-1"
    path = os.path.join(watch, f"{name}.yaml")
    started = time.monotonic()
    with open(path, "w") as f:
        f.write(manifest(args.image, 1, name=name, control_planes=2, cp_cpus=args.cp_cpus))
    lab = wait_ready(ctl, state, [cp1, cp2, w1], "k2 (HA) Ready", args.timeout, name=name, virsh=virsh)
    if not check(lab is not None, "k2, 2 control planes + 1 worker, goes Ready"):
        return
    figures["HA boot: manifest to all nodes Ready (2 control planes + 1 worker)"] = time.monotonic() - started
    kubectl = Kubectl(args.kubectl, lab["status"]["kubeconfig"])
    check_ha(kubectl, virsh, [cp1, cp2], w1)
    control_plane_scale_down(args, ctl, virsh, kubectl, name, path, cp1, cp2)
    ready_then_deleted(ctl, virsh, name, path, "the control-plane scale-down")


def main():
    parser = argparse.ArgumentParser(description="Run under tests/e2e/with_sandbox.sh.")
    parser.add_argument("vmlab")
    parser.add_argument("--debs", required=True)
    parser.add_argument("--images", required=True)
    parser.add_argument("--kubectl", default="kubectl", help="the kubectl to check the clusters with")
    parser.add_argument("--kubeadm", required=True, help="the kubeadm built with the cluster")
    parser.add_argument("--timeout", type=float, default=2400, help="seconds to Ready for each step")
    parser.add_argument("--shape", choices=("scale", "ha-boot"), default="scale",
                        help="scale: k1 and its edits, HA by an edit (the default); ha-boot: the HA shape booted at once")
    parser.add_argument("--cp-cpus", type=int, default=2, help="vCPUs per control plane")
    args = parser.parse_args()
    args.vmlab = os.path.abspath(args.vmlab)
    client = subprocess.run([args.kubectl, "version", "--client"], capture_output=True, text=True)
    print(f"kubectl: {args.kubectl}: {client.stdout.strip()}", flush=True)
    env = os.environ
    args.image, args.scratch = env["VMLAB_IMAGE"], env["VMLAB_SCRATCH"]
    uri = env["VMLAB_LIBVIRT"]
    watch, state = os.path.join(args.scratch, "watch"), os.path.join(args.scratch, "state")
    os.makedirs(watch)
    virsh = e2e.Virsh(uri)
    check_kubeadm_configs(args)
    if e2e.failed:
        print(f"{e2e.passed} passed, {e2e.failed} failed: kubeadm refuses vmlab's configuration")
        return 1
    t = time.monotonic()
    packages = serve_packages(args.scratch, args.debs)
    registry = serve_images(args.scratch, args.images)
    figures["serving the packages and pushing the images"] = time.monotonic() - t

    def start_controller(log_name):
        return e2e.Controller(args.vmlab, watch, state, uri, args.scratch, log_name=log_name,
                              extra=["--kubernetes-packages", f"http://{GATEWAY}/"])
    args.start_controller = start_controller
    args.ctl = start_controller("controller.log")
    try:
        (run if args.shape == "scale" else run_ha_boot)(args, virsh, args.ctl, watch, state)
    finally:
        if args.ctl.proc.poll() is None:
            check(args.ctl.stop() == 0, "controller exits 0 on SIGTERM")
        for proc in (packages, registry):
            proc.terminate()
            proc.wait(timeout=10)
        # The gpg-agent that signing the package repository started.
        subprocess.run(["gpgconf", "--homedir", os.path.join(args.scratch, "gnupg-k8s"), "--kill", "gpg-agent"],
                       capture_output=True)
    for what, seconds in figures.items():
        print(f"kubernetes figure: {what}: {seconds:.1f} s")
    print(f"{e2e.passed} passed, {e2e.failed} failed")
    if e2e.failed:
        print(f"logs: {args.scratch}")
    return 1 if e2e.failed else 0


if __name__ == "__main__":
    sys.exit(main())
