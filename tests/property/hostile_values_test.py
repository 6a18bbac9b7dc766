#!/usr/bin/env python3
"""Hostile but valid values through every renderer, checked by the real tools.

Each case is a manifest generated from a seeded random stream with values at
the edges of what the validator allows: every character a path, a kernel
command line or a URL may hold, SSH key comments full of shell, XML and YAML
metacharacters, names and integers at their limits. For
each, `vmlab validate` must accept it, and what `vmlab render` makes must pass
the tools that read it on a real host: virt-xml-validate (network, domains),
cloud-init's schema (user-data), bash -n and shellcheck (every script), and the
kernel path, command line and SSH keys must arrive intact (parsed back from
the XML and YAML, not merely present).

Usage: hostile_values_test.py VMLAB [CASES]   (VMLAB_PROPERTY_SEED sets the seed)
"""
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

import yaml

VMLAB = os.path.abspath(sys.argv[1])
CASES = int(sys.argv[2]) if len(sys.argv) > 2 else 8
SEED = int(os.environ.get("VMLAB_PROPERTY_SEED", "20261126"))
failures = []
checks = 0

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx0BCiK5pPOTAyFN5WTJDVEuCqMms0jxAYrE/IvemN/"
PATH_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-@,=:."
URL_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789/._-~:?=&%+@,"
CMDLINE_CHARS = PATH_CHARS + " /"
# Everything a key comment may hold (docs/manifest.md): shell, XML and YAML
# metacharacters among them.
COMMENT_PIECES = ["(touch /tmp/vmlab-pwned)", "|", "&&", "<b>", "&lt", ">", "<", "#", ": ",
                  "- ", "{x}", "[y]", "*", "!", "%", "^", "?", "--", "=", "@", "~", "..", "/",
                  "a,b", "_", "+", "&", "{{ x }}", "<!--", "]]>"]


def check(ok, what):
    global checks
    checks += 1
    if not ok:
        failures.append(what)
        print(f"FAIL {what}", flush=True)
    return ok


def dns_label(rng, max_len):
    length = rng.choice([1, 2, max_len, rng.randint(1, max_len)])
    if length == 1:
        return rng.choice("abcdefghijklmnopqrstuvwxyz0123456789")
    inner = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789-") for _ in range(length - 2))
    return rng.choice("abcdefghijklmnopqrstuvwxyz") + inner + rng.choice("abcdefghij0123456789")


def segment(rng, chars):
    while True:
        s = "".join(rng.choice(chars) for _ in range(rng.randint(1, 12)))
        if s not in (".", ".."):
            return s


def host_path(rng):
    return "/" + "/".join(segment(rng, PATH_CHARS) for _ in range(rng.randint(1, 5)))


def url(rng):
    path = "/".join(segment(rng, URL_CHARS.replace("/", "")) for _ in range(rng.randint(1, 4)))
    return f"https://{dns_label(rng, 10)}.example/{path}"


def comment(rng):
    return "".join(rng.choice(COMMENT_PIECES) for _ in range(rng.randint(1, 8))).strip() or "x"


def manifest(rng, case):
    name = dns_label(rng, 20)
    prefix = rng.choice([16, 20, 24, 28])
    third = rng.randint(0, 255) if prefix >= 24 else 0
    cidr = f"172.{rng.randint(16, 31)}.{third if prefix >= 24 else 0}.0/{prefix}"
    room = max(0, 2 ** (32 - prefix) - 102)  # worker i at .100+i, before the broadcast address
    workers = rng.choice([0, min(1, room), min(150, room), rng.randint(0, min(5, room))])
    # control plane i at .10+i, before the broadcast address (a /28 holds 4)
    control_planes = min(rng.choice([1, 3, 7]), 2 ** (32 - prefix) - 12)
    keys = [f"{ED25519} {comment(rng)}" for _ in range(rng.randint(1, 3))]
    kernel = rng.random() < 0.5
    spec = {
        "kubernetes": {"version": rng.choice(["1.30.4", "1.24.0", "1.31.0"]),
                       "cni": rng.choice(["calico", "cilium", "none"])},
        "network": {"cidr": cidr, "domain": ".".join(dns_label(rng, 8) for _ in range(rng.randint(1, 3)))},
        "controlPlane": {"replicas": control_planes, "cpus": rng.choice([1, 64]),
                         "memoryMiB": rng.choice([1024, 262144]), "diskGiB": rng.choice([5, 4096]),
                         "endpoint": {"host": dns_label(rng, 20), "port": rng.choice([1, 16443, 65535])}},
        "workers": {"replicas": workers, "cpus": rng.choice([1, 64]),
                    "memoryMiB": rng.choice([1024, 262144]), "diskGiB": rng.choice([5, 4096]),
                    "extraDiskGiB": rng.choice([0, 16384])},
        "image": {"path": host_path(rng)},
        "ssh": {"authorizedKeys": keys},
        "drift": {"policy": rng.choice(["Remediate", "Report"])},
        "deletionPolicy": rng.choice(["Delete", "Retain"]),
    }
    if kernel:
        spec["image"]["kernel"] = host_path(rng)
        spec["image"]["cmdline"] = "".join(rng.choice(CMDLINE_CHARS) for _ in range(rng.randint(1, 60))).strip() or "x"
        if rng.random() < 0.5:
            spec["image"]["initrd"] = host_path(rng)
    if spec["kubernetes"]["cni"] != "none" and rng.random() < 0.5:
        spec["kubernetes"]["cniManifest"] = url(rng)
    spec["addons"] = [url(rng) for _ in range(rng.randint(0, 3))]
    if spec["kubernetes"]["cni"] == "none":
        spec["kubernetes"].pop("cniManifest", None)
    return {"apiVersion": "vmlab.io/v1alpha1", "kind": "LabCluster",
            "metadata": {"name": name, "annotations": {"note": comment(rng) + " \"quoted\" 'too'"}},
            "spec": spec}


def split_render(text):
    """{'network': xml, 'domain NAME': xml, 'NODE user-data': yaml, ...}"""
    parts = {}
    key = None
    for line in text.splitlines(keepends=True):
        m = re.match(r"<!-- (network) of lab \S+ -->|<!-- domain (\S+) -->|# (\S+) seed: (\S+)$", line)
        if m:
            key = m.group(1) or (f"domain {m.group(2)}" if m.group(2) else f"{m.group(3)} {m.group(4)}")
            parts[key] = ""
            continue
        if key is not None and not line.startswith("# secrets of lab"):
            parts[key] += line
    return parts


def run(command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, timeout=120, **kwargs)


def check_case(work, case, doc):
    path = os.path.join(work, f"case-{case}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(doc, f, allow_unicode=True, sort_keys=False)
    name = doc["metadata"]["name"]
    where = f"case {case} (seed {SEED}, lab {name})"
    valid = run([VMLAB, "validate", "-q", path])
    if not check(valid.returncode == 0, f"{where}: vmlab validate accepts it: {valid.stderr.strip()}"):
        return
    rendered = run([VMLAB, "render", path, "--what", "all", "--state-dir", "/var/lib/vmlab"])
    if not check(rendered.returncode == 0, f"{where}: vmlab render: {rendered.stderr.strip()}"):
        return
    parts = split_render(rendered.stdout)
    domains = sorted(k for k in parts if k.startswith("domain "))
    check("network" in parts and domains, f"{where}: render made a network and domains")

    # libvirt XML: the schema, and the values parsed back intact.
    sample = [domains[0], domains[-1]] if len(domains) > 1 else domains
    for key in ["network"] + sample:
        file = os.path.join(work, f"{case}-{key.replace(' ', '-')}.xml")
        with open(file, "w") as f:
            f.write(parts[key])
        kind = "network" if key == "network" else "domain"
        result = run(["virt-xml-validate", file, kind])
        check(result.returncode == 0, f"{where}: virt-xml-validate {key}: {result.stderr.strip()[-300:]}")
    domain = ET.fromstring(parts[domains[0]])
    sources = [s.get("file") for s in domain.iter("source") if s.get("file")]
    image = doc["spec"]["image"]
    if "kernel" in image:
        check(domain.findtext("os/kernel") == image["kernel"], f"{where}: the kernel path intact in XML")
        check(domain.findtext("os/cmdline") == image["cmdline"],
              f"{where}: the cmdline intact in XML: {domain.findtext('os/cmdline')!r}")
    check(all("\n" not in s for s in sources), f"{where}: disk sources are single paths")

    # user-data: YAML that parses back to the same keys; the schema; every script.
    seeds = sorted(k for k in parts if k.endswith(" user-data"))
    check(seeds, f"{where}: render made user-data")
    for index, key in enumerate(seeds[:1] + seeds[-1:] if len(seeds) > 1 else seeds):
        text = parts[key]
        data = yaml.safe_load(text)
        keys_back = data.get("ssh_authorized_keys") or [
            k for u in data.get("users", []) if isinstance(u, dict) for k in u.get("ssh_authorized_keys", [])]
        check(sorted(keys_back) == sorted(doc["spec"]["ssh"]["authorizedKeys"]),
              f"{where}: {key}: the SSH keys parse back intact from the YAML")
        file = os.path.join(work, f"{case}-{index}-user-data")
        with open(file, "w") as f:
            f.write(text)
        schema = run(["cloud-init", "schema", "-c", file])
        check(schema.returncode == 0, f"{where}: cloud-init schema {key}: {(schema.stdout + schema.stderr).strip()[-300:]}")
        for entry in data.get("write_files", []):
            if not entry.get("path", "").endswith(".sh"):
                continue
            script = os.path.join(work, f"{case}-{index}-{os.path.basename(entry['path'])}")
            with open(script, "w") as f:
                f.write(entry.get("content", ""))
            syntax = run(["bash", "-n", script])
            check(syntax.returncode == 0, f"{where}: bash -n {entry['path']}: {syntax.stderr.strip()}")
            lint = run(["shellcheck", "-s", "bash", script])
            check(lint.returncode == 0, f"{where}: shellcheck {entry['path']}: {lint.stdout.strip()[-400:]}")
        for line in text.splitlines():
            if "vmlab-pwned" in line and not line.lstrip().startswith(("- ssh-", '- "ssh-', "- 'ssh-")):
                check(False, f"{where}: a key comment reached another place of the user-data: {line!r}")


def main():
    for tool in ("virt-xml-validate", "cloud-init", "shellcheck", "bash"):
        if shutil.which(tool) is None:
            print(f"FAIL {tool} not found (scripts/deps.sh installs it)")
            return 1
    rng = random.Random(SEED)
    work = tempfile.mkdtemp(prefix="vmlab-property-")
    try:
        for case in range(CASES):
            check_case(work, case, manifest(rng, case))
    finally:
        if failures:
            print(f"files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"hostile_values_test: {CASES} manifests (seed {SEED}), {checks} checks, "
          f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
