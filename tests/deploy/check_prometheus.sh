#!/usr/bin/env bash
# Checks what deploy/prometheus/ ships with the real promtool:
#   - prometheus.yml is a valid config (promtool also checks the rule files it
#     names, resolved relative to the config's folder);
#   - alerts.yml is valid rules;
#   - alerts_test.yml's unit tests pass (promtool test rules);
#   - every alert of alerts.yml is tested: alerts_test.yml names it in an
#     alert_rule_test with a case where it fires and one where it stays silent,
#     and it has what alerts.yml promises (for, severity, summary, description,
#     plain PromQL).
# Usage: check_prometheus.sh PROJECT_SOURCE_DIR
# PROMTOOL overrides the promtool to run.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 PROJECT_SOURCE_DIR" >&2
  exit 2
fi
dir="$(cd "$1" && pwd)/deploy/prometheus"
promtool="${PROMTOOL:-promtool}"

if ! command -v "$promtool" >/dev/null; then
  echo "FAIL: $promtool not found (Debian package prometheus)" >&2
  exit 1
fi
for f in prometheus.yml alerts.yml alerts_test.yml; do
  if [[ ! -f "$dir/$f" ]]; then
    echo "FAIL: $dir/$f is missing" >&2
    exit 1
  fi
done

failed=()
run() {
  local what="$1"
  shift
  echo "== $what: $*"
  if ! "$@"; then
    echo "FAIL: $what" >&2
    failed+=("$what")
  fi
}

# promtool resolves rule_files relative to the file that names them; running it
# from elsewhere checks that too.
cd /
run "promtool check config" "$promtool" check config "$dir/prometheus.yml"
run "promtool check rules" "$promtool" check rules "$dir/alerts.yml"
run "promtool test rules" "$promtool" test rules "$dir/alerts_test.yml"

echo "== every alert is tested"
if ! python3 - "$dir/alerts.yml" "$dir/alerts_test.yml" <<'EOF'
import os
import re
import sys

import yaml

rules_path, tests_path = sys.argv[1], sys.argv[2]
with open(rules_path) as f:
    rules = yaml.safe_load(f)
with open(tests_path) as f:
    tests = yaml.safe_load(f)

problems = []

alerts = {}
for group in rules.get("groups") or []:
    for rule in group.get("rules") or []:
        if "alert" not in rule:
            continue
        name = rule["alert"]
        where = f"{os.path.basename(rules_path)}: {name}"
        if name in alerts:
            problems.append(f"{where}: defined twice")
        alerts[name] = rule
        if not re.fullmatch(r"Vmlab[A-Z][A-Za-z0-9]*", name):
            problems.append(f"{where}: not a CamelCase name starting with Vmlab")
        if "for" not in rule:
            problems.append(f"{where}: no for:")
        severity = (rule.get("labels") or {}).get("severity")
        if severity not in ("critical", "warning"):
            problems.append(f"{where}: severity {severity!r}, not critical or warning")
        annotations = rule.get("annotations") or {}
        for key in ("summary", "description"):
            if not str(annotations.get(key, "")).strip():
                problems.append(f"{where}: no {key} annotation")
        # Plain PromQL: no Grafana variables ($__rate_interval, $var, ${var}).
        if re.search(r"\$(\{|[A-Za-z_])", str(rule.get("expr", ""))):
            problems.append(f"{where}: expr uses a template variable: {rule['expr']!r}")

if not alerts:
    problems.append(f"{rules_path}: no alerts")

rule_files = [os.path.normpath(os.path.join(os.path.dirname(tests_path), p))
              for p in tests.get("rule_files") or []]
if os.path.normpath(rules_path) not in rule_files:
    problems.append(f"{tests_path}: rule_files does not name {os.path.basename(rules_path)}")

fires, silent = set(), set()
for test in tests.get("tests") or []:
    for case in test.get("alert_rule_test") or []:
        name = case.get("alertname")
        if name not in alerts:
            problems.append(f"{os.path.basename(tests_path)}: tests {name!r}, which alerts.yml does not define")
        (fires if case.get("exp_alerts") else silent).add(name)

for name in alerts:
    if name not in fires and name not in silent:
        problems.append(f"{name}: not tested (no alert_rule_test names it in alerts_test.yml)")
    else:
        if name not in fires:
            problems.append(f"{name}: no test case where it fires")
        if name not in silent:
            problems.append(f"{name}: no test case where it stays silent (exp_alerts: [])")

for p in problems:
    print(f"  {p}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"  SUCCESS: {len(alerts)} alerts, each tested firing and silent: {', '.join(sorted(alerts))}")
EOF
then
  echo "FAIL: every alert is tested" >&2
  failed+=("every alert is tested")
fi

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "deploy_prometheus FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "deploy_prometheus: all checks passed"
