#!/usr/bin/env python3
"""Every dashboard panel and alert rule vmlab ships, run against a real Prometheus.

The test starts vmlab (simulated guests on libvirt's test driver) and Debian's
Prometheus on 127.0.0.1, both with ports of their own, Prometheus on the shipped
deploy/prometheus/prometheus.yml and alerts.yml (scrape and rule intervals
shortened to 1 s, the target pointed at this vmlab). It drives a lab through
create -> Ready -> drift (a controller restart: the test driver lives in the
controller process, so the new one finds the lab's domains, network and
volumes gone; spec.drift.policy Report keeps the drift active) -> remediation
(policy switched to Remediate) -> scale up, with a bootstrap phase failure
injected -> an invalid edit -> fixed -> delete -> controller stopped; meanwhile
a second lab whose network clashes with the test driver's own is refused on
every reconcile (reconcile errors), and a second vmlab whose libvirt is
unreachable is a second target of the job (libvirt disconnected).

Then every PromQL expression of both dashboards (Grafana variables substituted)
and of the alert rules runs through Prometheus' HTTP API over the scenario's
time range; each must return data. Alerts whose condition this scenario cannot
bring about (a failing repair, a cache down, no target at all) must evaluate
and every series they read must exist; those conditions are proven by the
rules' promtool unit tests. The drift
alert's expression must be true while drift is active and false once repaired.

Usage: observability_test.py VMLAB SOURCE_DIR
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import yaml

import promql

VMLAB = os.path.abspath(sys.argv[1])
SOURCE = os.path.abspath(sys.argv[2])
failures = []


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what, flush=True)
    if not ok:
        failures.append(what)
    return ok


def wait_for(predicate, what, timeout=60.0, interval=0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    check(False, f"timed out after {timeout:.0f} s waiting for {what}")
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


class Controller:
    def __init__(self, scratch, port, n, libvirt="test:///default", name="labs"):
        self.port = port
        self.log_path = os.path.join(scratch, f"controller-{n}.log")
        self.log = open(self.log_path, "w")
        simulate = ["--simulate-guests", "--simulate-speed", "20"] if libvirt.startswith("test:") else []
        os.makedirs(os.path.join(scratch, name), exist_ok=True)
        self.proc = subprocess.Popen(
            [VMLAB, "controller", "--watch", os.path.join(scratch, name),
             "--state-dir", os.path.join(scratch, "state-" + name), "--libvirt", libvirt,
             "--listen", f"127.0.0.1:{port}", *simulate,
             "--resync", "5s", "--deletion-grace", "2s", "--apt-cache", "off",
             "--image-cache", "off", "--log-format", "json"],
            stdout=self.log, stderr=subprocess.STDOUT)
        probe = "/readyz" if simulate else "/healthz"  # without libvirt it never gets ready
        wait_for(lambda: http_get(f"http://127.0.0.1:{port}{probe}")[0] == 200,
                 f"the controller's {probe}", timeout=30)

    def lab(self, name):
        status, body = http_get(f"http://127.0.0.1:{self.port}/api/v1/labclusters/{name}")
        return json.loads(body) if status == 200 else None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.log.close()
        return code


def condition(lab, kind):
    for c in (lab or {}).get("status", {}).get("conditions", []):
        if c["type"] == kind:
            return c
    return {}


class Prometheus:
    def __init__(self, scratch, vmlab_ports):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = yaml.safe_load(open(os.path.join(SOURCE, "deploy/prometheus/prometheus.yml")))
        config["global"]["scrape_interval"] = "1s"
        config["global"]["evaluation_interval"] = "1s"
        config["rule_files"] = [os.path.join(SOURCE, "deploy/prometheus", f)
                                for f in config["rule_files"]]
        jobs = [j for j in config["scrape_configs"] if j["job_name"] == "vmlab"]
        check(len(jobs) == 1, "the shipped config has one scrape job named vmlab")
        jobs[0]["static_configs"] = [{"targets": [f"127.0.0.1:{p}" for p in vmlab_ports]}]
        path = os.path.join(scratch, "prometheus.yml")
        with open(path, "w") as f:
            yaml.safe_dump(config, f)
        self.log = open(os.path.join(scratch, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={path}",
             f"--storage.tsdb.path={os.path.join(scratch, 'tsdb')}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: http_get(self.url + "/-/ready")[0] == 200, "Prometheus ready", timeout=60)

    def query(self, expr, at=None):
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        status, body = http_get(self.url + "/api/v1/query?" + urllib.parse.urlencode(params))
        answer = json.loads(body) if body.startswith("{") else {"status": "error", "error": body}
        return status, answer

    def query_range(self, expr, start, end, step=1):
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": str(step)}
        status, body = http_get(self.url + "/api/v1/query_range?" + urllib.parse.urlencode(params),
                                timeout=60)
        answer = json.loads(body) if body.startswith("{") else {"status": "error", "error": body}
        return status, answer

    def value(self, expr):
        _, answer = self.query(expr)
        result = answer.get("data", {}).get("result", [])
        return float(result[0]["value"][1]) if result else None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


MANIFEST = """apiVersion: vmlab.io/v1alpha1
kind: LabCluster
metadata:
  name: obs
  annotations:
    vmlab.io/simulate-failure: "{failure}"
spec:
  kubernetes:
    version: "1.30.4"
  network:
    cidr: 172.44.44.0/24
  controlPlane:
    replicas: 1
  workers:
    replicas: {workers}
  drift:
    policy: {policy}
"""


CLASH = """apiVersion: vmlab.io/v1alpha1
kind: LabCluster
metadata:
  name: clash
spec:
  kubernetes:
    version: "1.30.4"
  network:
    cidr: 192.168.122.0/24
"""


def write_manifest(scratch, workers=1, policy="Report", failure="", broken=False):
    text = MANIFEST.format(workers=workers, policy=policy, failure=failure)
    if broken:
        text = text.replace("replicas: 1\n", "replicas: many\n", 1)
    path = os.path.join(scratch, "labs", "obs.yaml")
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


# ---- expressions shipped in deploy/ ----

GRAFANA_VARIABLES = {
    "datasource": "prometheus", "lab": ".*", "controller": ".*",
    "__rate_interval": "10s", "__interval": "2s", "__range": "5m",
}


def substitute(expr):
    for name in promql.variables(expr):
        if name not in GRAFANA_VARIABLES:
            check(False, f"unknown Grafana variable ${name} in {expr!r}")
    return promql.substitute(expr, GRAFANA_VARIABLES)


def dashboard_queries():
    queries = []
    folder = os.path.join(SOURCE, "deploy/grafana/dashboards")
    for name in sorted(os.listdir(folder)):
        dashboard = json.load(open(os.path.join(folder, name)))

        def panels(items):
            for p in items:
                yield p
                yield from panels(p.get("panels", []))
        for panel in panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    queries.append((f"{name} / {panel.get('title')!r} {target.get('refId', '')}",
                                    substitute(target["expr"])))
    return queries


def alert_rules():
    rules = yaml.safe_load(open(os.path.join(SOURCE, "deploy/prometheus/alerts.yml")))
    return {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"] if "alert" in r}


def returns_data(answer):
    return answer.get("status") == "success" and len(answer.get("data", {}).get("result", [])) > 0


def finite_values(answer):
    """How many samples of a query_range answer are numbers (not NaN or infinite)."""
    count = 0
    for series in answer.get("data", {}).get("result", []):
        for _, value in series.get("values", []):
            count += value.lower() not in ("nan", "+inf", "-inf", "inf")
    return count


# Panels that can only draw NaN here, and why (their series exist all the same).
NAN_ONLY = {
    "Cache hit ratio by cache": "with the caches off on the test driver no request is served: 0/0",
}


def main():
    scratch = tempfile.mkdtemp(prefix="vmlab-observability-")
    os.makedirs(os.path.join(scratch, "labs"))
    vmlab_port = free_port()
    cut_off_port = free_port()
    prometheus = None
    ctl = None
    cut_off = None
    keep = False
    up = f'up{{job="vmlab",instance="127.0.0.1:{vmlab_port}"}}'
    try:
        write_manifest(scratch)
        ctl = Controller(scratch, vmlab_port, 1)
        # A second vmlab, whose libvirt is unreachable, as a second target of the job.
        cut_off = Controller(scratch, cut_off_port, "cut-off",
                             libvirt="qemu+unix:///system?socket=/nonexistent/libvirt-sock",
                             name="cut-off-labs")
        prometheus = Prometheus(scratch, [vmlab_port, cut_off_port])
        start = time.time()
        wait_for(lambda: prometheus.value(up) == 1, "Prometheus scraping vmlab")
        wait_for(lambda: prometheus.value(
            f'vmlab_libvirt_connected{{instance="127.0.0.1:{cut_off_port}"}}') == 0,
            "Prometheus seeing the second vmlab without libvirt")

        # create -> Ready
        lab = wait_for(lambda: condition(ctl.lab("obs"), "Ready").get("status") == "True" and ctl.lab("obs"),
                       "the lab Ready")
        check(lab is not None, "create: the lab goes Ready (simulated guests)")
        wait_for(lambda: prometheus.value(
            'vmlab_labcluster_status_condition{name="obs",type="Ready",status="True"}') == 1,
            "Prometheus seeing the lab Ready")

        # drift: a restarted controller finds the test driver empty; Report keeps it
        check(ctl.stop() == 0, "the controller stops on SIGTERM")
        wait_for(lambda: prometheus.value(up) == 0, "Prometheus seeing vmlab down")
        down_at = time.time()
        ctl = Controller(scratch, vmlab_port, 2)
        drifted = wait_for(lambda: condition(ctl.lab("obs"), "Drifted").get("status") == "True",
                           "the Drifted condition")
        check(bool(drifted), "drift: the restarted controller reports the lab's objects missing")
        wait_for(lambda: prometheus.value("sum(vmlab_drift_active)") not in (None, 0.0),
                 "Prometheus seeing drift", timeout=30)
        time.sleep(3)  # a few evaluations with drift active
        drift_alert = alert_rules()
        drift_name = next((n for n, e in drift_alert.items() if "vmlab_drift_active" in e), None)
        check(drift_name is not None, "an alert reads vmlab_drift_active")
        _, answer = prometheus.query(drift_alert[drift_name])
        check(returns_data(answer),
              f"{drift_name}: its expression is true while drift is active "
              f"({len(answer.get('data', {}).get('result', []))} series)")
        drift_seen_at = time.time()

        # a lab whose network clashes with one libvirt has (the test driver's
        # "default", 192.168.122.0/24): preflight refuses it, every reconcile fails
        with open(os.path.join(scratch, "labs", "clash.yaml"), "w") as f:
            f.write(CLASH)
        wait_for(lambda: "clashes" in condition(ctl.lab("clash"), "InfrastructureReady").get("message", "")
                 or condition(ctl.lab("clash"), "InfrastructureReady").get("reason") == "PreflightFailed",
                 "the clashing lab refused", timeout=30)
        wait_for(lambda: (prometheus.value(
            'sum(controller_runtime_reconcile_errors_total{job="vmlab"})') or 0) > 0,
            "Prometheus seeing reconcile errors", timeout=30)
        time.sleep(3)

        # remediation
        write_manifest(scratch, policy="Remediate")
        repaired = wait_for(lambda: condition(ctl.lab("obs"), "Drifted").get("status") == "False" and
                            condition(ctl.lab("obs"), "Ready").get("status") == "True",
                            "drift repaired and the lab Ready", timeout=90)
        check(bool(repaired), "remediation: Remediate repairs the drift, the lab is Ready again")
        wait_for(lambda: prometheus.value("sum(vmlab_drift_active)") == 0.0,
                 "Prometheus seeing the drift gone", timeout=30)
        time.sleep(2)
        _, answer = prometheus.query(drift_alert[drift_name])
        check(answer.get("status") == "success" and not answer["data"]["result"],
              f"{drift_name}: its expression is false after remediation")
        check((prometheus.value('sum(vmlab_drift_remediations_total{result="success"})') or 0) > 0,
              "remediations counted")

        # scale up, one new worker's phase failing once
        write_manifest(scratch, workers=3, policy="Remediate", failure="obs-worker-3/base")
        scaled = wait_for(lambda: len(ctl.lab("obs")["status"]["nodes"]) == 4 and
                          condition(ctl.lab("obs"), "Ready").get("status") == "True",
                          "the lab scaled to 3 workers and Ready", timeout=120)
        check(bool(scaled), "scale: 3 workers, Ready (worker 3's base phase failed once, retried)")
        wait_for(lambda: (prometheus.value("sum(vmlab_bootstrap_phase_failures_total)") or 0) > 0,
                 "Prometheus seeing the failed phase", timeout=30)

        # an invalid edit, then fixed
        write_manifest(scratch, workers=3, policy="Remediate", failure="obs-worker-3/base", broken=True)
        wait_for(lambda: condition(ctl.lab("obs"), "SpecValid").get("status") == "False",
                 "SpecValid False after an invalid edit")
        wait_for(lambda: prometheus.value('sum(vmlab_manifests{state="invalid"})') == 1,
                 "Prometheus seeing the invalid manifest", timeout=30)
        time.sleep(2)
        write_manifest(scratch, workers=3, policy="Remediate")
        wait_for(lambda: condition(ctl.lab("obs"), "SpecValid").get("status") == "True",
                 "SpecValid True again")

        # delete
        os.remove(os.path.join(scratch, "labs", "clash.yaml"))
        os.remove(os.path.join(scratch, "labs", "obs.yaml"))
        gone = wait_for(lambda: ctl.lab("obs") is None, "the lab deleted", timeout=60)
        check(bool(gone), "delete: the lab is gone after its manifest")
        time.sleep(3)

        # the controller stops
        check(ctl.stop() == 0, "the controller stops on SIGTERM")
        ctl = None
        wait_for(lambda: prometheus.value(up) == 0, "Prometheus seeing vmlab down")
        time.sleep(2)
        end = time.time()
        print(f"scenario: {end - start:.0f} s (controller down from {down_at - start:.0f} s, "
              f"drift seen at {drift_seen_at - start:.0f} s)")

        # --log-format json: one object per line; a reconcile's lines name the lab and reconcile
        records = []
        for n in (1, 2):
            with open(os.path.join(scratch, f"controller-{n}.log")) as f:
                for line in f:
                    try:
                        records.append(json.loads(line))
                    except ValueError:
                        check(False, f"a log line that is not JSON: {line!r}")
        check(all({"ts", "level", "msg"} <= r.keys() for r in records) and len(records) > 20,
              f"{len(records)} JSON log records, each with ts, level and msg")
        events = [r for r in records if "event" in r]
        check(events and all(r.get("lab") in ("obs", "clash") and re.fullmatch(r"[0-9a-f]{16}", r.get("reconcile", ""))
                             for r in events),
              f"{len(events)} event records, each with lab and reconcile")

        # every dashboard query returns data over the scenario
        queries = dashboard_queries()
        check(len(queries) >= 20, f"the dashboards hold {len(queries)} queries")
        for where, expr in queries:
            status, answer = prometheus.query_range(expr, start, end)
            nan_only = next((why for title, why in NAN_ONLY.items() if f"{title!r}" in where), None)
            check(status == 200 and returns_data(answer) and (nan_only or finite_values(answer) > 0),
                  f"dashboard {where}: returns data"
                  + (f" (NaN only: {nan_only})" if nan_only else f" ({finite_values(answer)} samples)")
                  + f": {expr}"
                  + ("" if returns_data(answer) else f" -> {answer.get('error', 'no series')}"))

        # every alert expression evaluates; those the scenario brings about return data
        brought_about = {"vmlab_drift_active", "vmlab_manifests", "vmlab_bootstrap_phase_failures_total",
                         "up", "vmlab_labcluster_status_condition", "vmlab_libvirt_connected",
                         "controller_runtime_reconcile_errors_total"}
        for name, expr in sorted(alert_rules().items()):
            status, answer = prometheus.query_range(expr, start, end)
            check(status == 200 and answer.get("status") == "success", f"alert {name}: evaluates")
            reads = promql.metric_names(expr)
            if reads & brought_about and not expr.startswith("absent("):
                if "CacheReady" in expr:
                    pass  # no cache runs on the test driver: only the series is checked below
                else:
                    check(finite_values(answer) > 0, f"alert {name}: its condition held in the scenario: {expr}")
            for metric in sorted(reads):
                _, series = prometheus.query_range(f'count({metric}{{job="vmlab"}})', start, end)
                check(returns_data(series), f"alert {name}: reads {metric}, which vmlab exported")
    except Exception as e:  # report, then clean up
        check(False, f"unexpected {type(e).__name__}: {e}")
    finally:
        if ctl is not None:
            ctl.stop()
        if cut_off is not None:
            cut_off.stop()
        if prometheus is not None:
            prometheus.stop()
        if failures:
            keep = True
            print(f"logs kept in {scratch}")
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)
    if failures:
        print(f"observability_test: {len(failures)} check(s) failed")
        return 1
    print("observability_test: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
