#!/usr/bin/env bash
# Checks what deploy/grafana/ ships:
#   - the dashboards type-check against @grafana/schema with TypeScript
#     (tests/deploy/grafana: generate.mjs makes each dashboard's JSON a fresh object
#     literal that `satisfies` the schema's Dashboard, narrowed to the panel plugins'
#     options types and Prometheus targets in schema.ts; tsc -p checks them);
#   - the dashboards' structure: unique uids and panel ids, the `datasource` variable
#     on every panel and target, a non-empty expr on every target, no Grafana variable
#     in an expr but $datasource, $lab, $controller, $__rate_interval, $__interval and
#     $__range (the defined ones), rate windows only from those variables, job="vmlab"
#     on every selector or on none, every metric read documented in docs/metrics.md;
#   - every expr (and every label_values() selector) parses as PromQL: the real
#     parser, `promtool check rules` on a rules file of them, variables substituted;
#   - the provisioning files parse, and the dashboard provider reads the folder the
#     dashboards are installed in (/usr/share/vmlab/grafana/dashboards, as
#     cmake/Install.cmake installs them with the /usr prefix of the package).
# npm: `npm ci` runs only when node_modules is missing or was installed from another
# package-lock.json (a stamp in node_modules), so after the first run this works offline.
# Usage: check_grafana.sh PROJECT_SOURCE_DIR
# PROMTOOL overrides the promtool to run.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 PROJECT_SOURCE_DIR" >&2
  exit 2
fi
src="$(cd "$1" && pwd)"
promtool="${PROMTOOL:-promtool}"
project="$src/tests/deploy/grafana"

for tool in node npm python3 "$promtool"; do
  if ! command -v "$tool" >/dev/null; then
    echo "FAIL: $tool not found (Node.js with npm, python3 with python3-yaml, Debian's prometheus for promtool)" >&2
    exit 1
  fi
done
for f in "$project/package.json" "$project/package-lock.json" "$project/tsconfig.json" \
         "$src/deploy/grafana/provisioning/dashboards/vmlab.yaml" \
         "$src/deploy/grafana/provisioning/datasources/prometheus.yaml"; do
  if [[ ! -f "$f" ]]; then
    echo "FAIL: $f is missing" >&2
    exit 1
  fi
done

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

failed=()
run() {
  local what="$1"
  shift
  echo "== $what"
  if ! "$@"; then
    echo "FAIL: $what" >&2
    failed+=("$what")
  fi
}

# ---- the npm project: in place, or in a copy when the source tree is read-only ----
work="$project"
if [[ ! -w "$project" ]]; then
  mkdir -p "$scratch/tree/tests/deploy" "$scratch/tree/deploy/grafana"
  cp -r "$src/deploy/grafana/dashboards" "$scratch/tree/deploy/grafana/"
  mkdir "$scratch/tree/tests/deploy/grafana"
  (cd "$project" && find . -maxdepth 1 -type f -exec cp {} "$scratch/tree/tests/deploy/grafana/" \;)
  chmod -R u+w "$scratch/tree"
  work="$scratch/tree/tests/deploy/grafana"
  echo "(the source tree is read-only: checking in a copy, $work)"
fi

npm_install() {
  local stamp="$work/node_modules/.vmlab-package-lock.sha256"
  local want
  want="$(sha256sum < "$work/package-lock.json" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" \
        && -f "$work/node_modules/typescript/bin/tsc" \
        && -f "$work/node_modules/@grafana/schema/package.json" ]]; then
    echo "node_modules is up to date with package-lock.json"
    return 0
  fi
  (cd "$work" && npm_config_update_notifier=false npm ci --no-audit --no-fund --prefer-offline) \
    || return 1
  echo "$want" > "$stamp"
}

typecheck() {
  (cd "$work" && node generate.mjs "$src" && npx --no-install tsc -p . && echo "tsc: no errors")
}

before=${#failed[@]}
run "npm ci (tests/deploy/grafana)" npm_install
if [[ ${#failed[@]} -eq $before ]]; then
  run "TypeScript: the dashboards against @grafana/schema (tsc -p tests/deploy/grafana)" typecheck
fi

# ---- structure, variables, selectors, provisioning; the PromQL rules file ----
rules="$scratch/dashboard_exprs.rules.yml"
structure() {
  python3 - "$src" "$rules" <<'EOF'
import glob
import json
import os
import re
import sys

import yaml

src, rules_path = sys.argv[1], sys.argv[2]
dash_dir = os.path.join(src, "deploy", "grafana", "dashboards")
INSTALLED = "/usr/share/vmlab/grafana/dashboards"
DS_VAR = {"type": "prometheus", "uid": "${datasource}"}
DS_VAR_ALT = {"type": "prometheus", "uid": "$datasource"}
# Variables exprs may use, and what promtool sees in their place.
SUBST = {"lab": ".*", "controller": ".*", "__rate_interval": "1m", "__interval": "15s",
         "__range": "1h"}
BUILTIN = {"__rate_interval", "__interval", "__range"}
EXPECTED_UIDS = {"vmlab-overview.json": "vmlab-overview",
                 "controller-runtime.json": "vmlab-controller-runtime"}
sys.path.insert(0, os.path.join(src, "tests", "deploy"))
from promql import selectors, substitute  # noqa: E402
from promql import variables as expr_variables  # noqa: E402

problems = []
exprs = []  # (where, expr with variables substituted)


def problem(msg):
    problems.append(msg)


# Metric families documented in docs/metrics.md (backticked names).
doc = open(os.path.join(src, "docs", "metrics.md")).read()
documented = set(re.findall(r"`([a-z_:][a-z0-9_:]*)`", doc))


def documented_metric(name):
    if name == "up" or name in documented:
        return True
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in documented:
            return True
    return False


def check_expr(where, expr, defined_vars):
    if not isinstance(expr, str) or not expr.strip():
        problem(f"{where}: no expr")
        return None
    for name in expr_variables(expr):
        if name not in SUBST:
            problem(f"{where}: Grafana variable ${name} is not allowed in an expr: {expr!r}")
        elif name not in BUILTIN and name not in defined_vars:
            problem(f"{where}: ${name} is not a variable of this dashboard: {expr!r}")
    for window in re.findall(r"\[([^\]]*)\]", expr):
        if window.strip() not in ("$__rate_interval", "$__range", "$__interval",
                                  "${__rate_interval}", "${__range}", "${__interval}"):
            problem(f"{where}: range window [{window}]: use $__rate_interval (or $__range)")
    sels = selectors(expr)
    if not sels:
        problem(f"{where}: reads no metric: {expr!r}")
    for name, matchers in sels:
        if not documented_metric(name):
            problem(f"{where}: {name} is not a metric of docs/metrics.md")
        job_selectors.append((where, name, matchers is not None
                              and re.search(r'(^|,)\s*job\s*=\s*"vmlab"', matchers) is not None))
    substituted = substitute(expr, SUBST)
    if "$" in substituted:
        problem(f"{where}: a $ is left after substituting the variables: {substituted!r}")
    return substituted


job_selectors = []  # (where, metric, has job="vmlab")
uids = {}
names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(dash_dir, "*.json")))
if not names:
    problem(f"{dash_dir}: no dashboards")
for name in EXPECTED_UIDS:
    if name not in names:
        problem(f"{dash_dir}/{name} is missing")

check_ts = open(os.path.join(src, "tests", "deploy", "grafana", "dashboards.check.ts")).read()
n_panels = n_targets = 0
for name in names:
    path = os.path.join(dash_dir, name)
    try:
        d = json.load(open(path))
    except ValueError as e:
        problem(f"{name}: not JSON: {e}")
        continue
    if f"deploy/grafana/dashboards/{name}'" not in check_ts:
        problem(f"{name}: not imported by tests/deploy/grafana/dashboards.check.ts")
    uid = d.get("uid")
    if not isinstance(uid, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid):
        problem(f"{name}: uid {uid!r} is not 1-40 letters, digits, - or _")
    elif uid in uids:
        problem(f"{name}: uid {uid!r} is also {uids[uid]}'s")
    uids[uid] = name
    if name in EXPECTED_UIDS and uid != EXPECTED_UIDS[name]:
        problem(f"{name}: uid {uid!r}, not {EXPECTED_UIDS[name]!r}")
    if not str(d.get("title", "")).strip():
        problem(f"{name}: no title")
    if d.get("id") is not None:
        problem(f"{name}: id must be null (Grafana assigns it)")

    variables = (d.get("templating") or {}).get("list") or []
    defined = {v.get("name") for v in variables}
    ds_vars = [v for v in variables if v.get("name") == "datasource"]
    if len(ds_vars) != 1 or ds_vars[0].get("type") != "datasource" \
            or ds_vars[0].get("query") != "prometheus":
        problem(f"{name}: needs one variable `datasource` of type datasource, query prometheus")
    for v in variables:
        where = f"{name}: variable {v.get('name')!r}"
        if v.get("type") == "query":
            if v.get("datasource") not in (DS_VAR, DS_VAR_ALT):
                problem(f"{where}: datasource is not the datasource variable")
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\)\s*", q or "")
            if not m:
                problem(f"{where}: query {q!r} is not label_values(SELECTOR, LABEL)")
                continue
            e = check_expr(where, m.group(1), defined - {v.get("name")})
            if e:
                exprs.append((where, e))
            if v.get("includeAll") and v.get("allValue") != ".*":
                problem(f"{where}: includeAll without allValue \".*\"")

    ids = {}

    def walk(panels):
        for p in panels:
            yield p
            yield from walk(p.get("panels") or [])

    for p in walk(d.get("panels") or []):
        n_panels += 1
        pid = p.get("id")
        where = f"{name}: panel {pid} {p.get('title')!r}"
        if not isinstance(pid, int):
            problem(f"{where}: id is not an integer")
        elif pid in ids:
            problem(f"{where}: id {pid} is also panel {ids[pid]!r}'s")
        ids[pid] = p.get("title")
        if not str(p.get("title", "")).strip():
            problem(f"{where}: no title")
        if p.get("datasource") not in (DS_VAR, DS_VAR_ALT):
            problem(f"{where}: datasource {p.get('datasource')!r} is not the datasource variable")
        g = p.get("gridPos") or {}
        if not all(isinstance(g.get(k), int) for k in "hwxy") or g["x"] + g["w"] > 24:
            problem(f"{where}: gridPos {g!r} is not within the 24 columns")
        targets = p.get("targets") or []
        if p.get("type") == "row":
            if targets:
                problem(f"{where}: a row with targets")
            continue
        if not targets:
            problem(f"{where}: no targets")
        refs = set()
        for t in targets:
            n_targets += 1
            twhere = f"{where} target {t.get('refId')!r}"
            if not t.get("refId") or t.get("refId") in refs:
                problem(f"{twhere}: refId missing or repeated")
            refs.add(t.get("refId"))
            if t.get("datasource") not in (DS_VAR, DS_VAR_ALT):
                problem(f"{twhere}: datasource {t.get('datasource')!r} is not the datasource variable")
            e = check_expr(twhere, t.get("expr"), defined)
            if e:
                exprs.append((twhere, e))

with_job = [s for s in job_selectors if s[2]]
without_job = [s for s in job_selectors if not s[2]]
if with_job and without_job:
    for where, metric, _ in without_job:
        problem(f"{where}: {metric} without job=\"vmlab\" (the other selectors have it: all or none)")

# ---- provisioning ----
prov = os.path.join(src, "deploy", "grafana", "provisioning")
try:
    dp = yaml.safe_load(open(os.path.join(prov, "dashboards", "vmlab.yaml")))
    if dp.get("apiVersion") != 1:
        problem("provisioning/dashboards/vmlab.yaml: apiVersion is not 1")
    providers = dp.get("providers") or []
    if len(providers) != 1:
        problem("provisioning/dashboards/vmlab.yaml: not exactly one provider")
    for pr in providers:
        if pr.get("type", "file") != "file":
            problem("provisioning/dashboards/vmlab.yaml: provider type is not file")
        path = (pr.get("options") or {}).get("path")
        if path != INSTALLED:
            problem(f"provisioning/dashboards/vmlab.yaml: path {path!r}, not {INSTALLED!r}")
        if pr.get("folder") != "vmlab":
            problem("provisioning/dashboards/vmlab.yaml: folder is not vmlab")
except Exception as e:
    problem(f"provisioning/dashboards/vmlab.yaml: {type(e).__name__}: {e}")
try:
    ds = yaml.safe_load(open(os.path.join(prov, "datasources", "prometheus.yaml")))
    if ds.get("apiVersion") != 1:
        problem("provisioning/datasources/prometheus.yaml: apiVersion is not 1")
    sources = ds.get("datasources") or []
    if len(sources) != 1:
        problem("provisioning/datasources/prometheus.yaml: not exactly one data source")
    for s in sources:
        for key in ("name", "uid", "url"):
            if not str(s.get(key, "")).strip():
                problem(f"provisioning/datasources/prometheus.yaml: no {key}")
        if s.get("type") != "prometheus":
            problem("provisioning/datasources/prometheus.yaml: type is not prometheus")
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", str(s.get("url", ""))):
            problem(f"provisioning/datasources/prometheus.yaml: url {s.get('url')!r} is not a URL")
except Exception as e:
    problem(f"provisioning/datasources/prometheus.yaml: {type(e).__name__}: {e}")

# Where the dashboards get installed: cmake's install() of deploy/grafana/dashboards under
# ${CMAKE_INSTALL_DATADIR}/vmlab/grafana, which the package's /usr prefix makes INSTALLED.
cmake_text = ""
for f in [os.path.join(src, "CMakeLists.txt")] + glob.glob(os.path.join(src, "cmake", "*.cmake")):
    if os.path.isfile(f):
        cmake_text += open(f).read() + "\n"
installs = re.findall(r"install\s*\(\s*DIRECTORY\s+([^)]*?deploy/grafana/dashboards[^)]*)\)",
                      cmake_text)
if not installs:
    problem("no cmake install(DIRECTORY ... deploy/grafana/dashboards ...) found")
for rule in installs:
    m = re.search(r"DESTINATION\s+(\S+)", rule)
    dest = m.group(1) if m else None
    if dest is None:
        problem(f"cmake install of deploy/grafana/dashboards has no DESTINATION: {rule!r}")
        continue
    installed = dest.replace("${CMAKE_INSTALL_DATADIR}", "/usr/share") + "/dashboards"
    if installed != INSTALLED:
        problem(f"cmake installs the dashboards in {installed} (with prefix /usr), "
                f"the provider reads {INSTALLED}")

# ---- the PromQL of every expr, for promtool check rules ----
rules = {"groups": [{"name": "grafana-dashboard-exprs", "rules": [
    {"record": f"dashboard_expr:check:{i}", "expr": e} for i, (_, e) in enumerate(exprs)]}]}
with open(rules_path, "w") as f:
    yaml.safe_dump(rules, f, sort_keys=False, width=1000)
with open(rules_path + ".where", "w") as f:
    for i, (where, e) in enumerate(exprs):
        f.write(f"dashboard_expr:check:{i}\t{where}\t{e}\n")

for p in problems:
    print(f"  {p}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"  SUCCESS: {len(names)} dashboards ({', '.join(names)}), {n_panels} panels, "
      f"{n_targets} targets, {len(exprs)} expressions; job=\"vmlab\" on "
      f"{'every' if with_job else 'no'} selector; provisioning OK")
EOF
}

promql() {
  if [[ ! -s "$rules" ]]; then
    echo "  no expressions collected (see the structure check)" >&2
    return 1
  fi
  local out
  if out="$(cd / && "$promtool" check rules "$rules" 2>&1)"; then
    echo "$out" | sed 's/^/  /'
    echo "  SUCCESS: $(grep -c '^dashboard_expr:' "$rules.where") expressions parse as PromQL"
    return 0
  fi
  echo "$out" | sed 's/^/  /' >&2
  echo "  (the rules: record dashboard_expr:check:N is expression N of:)" >&2
  sed 's/^/    /' "$rules.where" >&2
  return 1
}

run "dashboards: structure, variables, selectors; provisioning files" structure
run "dashboards: every expr parses as PromQL (promtool check rules)" promql

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "deploy_grafana FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "deploy_grafana: all checks passed"
