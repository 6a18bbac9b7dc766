#!/usr/bin/env bash
# The vmlab binary as users run it: exit codes and output streams of
# `vmlab validate`, `vmlab render`, `vmlab version` and --help. Usage: vmlab_cli_test.sh VMLAB SOURCE_DIR
set -uo pipefail
vmlab=$1
src=$2
passed=0
failed=0
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# expect NAME WANT_CODE COMMAND... : runs COMMAND, keeps stdout/stderr in $out/$err.
expect() {
  local name=$1 want=$2
  shift 2
  "$@" >"$scratch/out" 2>"$scratch/err"
  local code=$?
  out=$(cat "$scratch/out")
  err=$(cat "$scratch/err")
  if [[ $code == "$want" ]]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL $name: exit $code, want $want"
    echo "  stdout: $out"
    echo "  stderr: $err"
  fi
}
check() {
  if eval "$2"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL $1"; fi
}

expect "examples are valid" 0 "$vmlab" validate "$src/examples"
check "summary names both examples" '[[ $out == *"2 valid, 0 invalid"* ]]'
check "warnings only on stderr" '[[ $err == *"warning: spec.controlPlane.replicas"* && $out != *warning* ]]'

expect "invalid corpus exits 1" 1 "$vmlab" validate -q "$src/tests/fixtures/invalid"
check "quiet prints nothing on stdout" '[[ -z $out ]]'
check "errors name file, line, column and field" \
  '[[ $err == *"tests/fixtures/invalid/unknown-field-typo.yaml:9:5: error: spec.workers.replcas: unknown field; did you mean \"replicas\"?"* ]]'

expect "missing path exits 2" 2 "$vmlab" validate "$scratch/none.yaml"
expect "no arguments exits 2" 2 "$vmlab" validate
expect "unknown command exits 2" 2 "$vmlab" frobnicate
expect "no command exits 2" 2 "$vmlab"
expect "help exits 0" 0 "$vmlab" --help
check "help lists validate" '[[ $out == *validate* && $out == *version* ]]'
expect "validate help exits 0" 0 "$vmlab" validate --help
check "validate help shows the error format" '[[ $out == *"PATH:LINE:COL: error: FIELD.PATH: message"* ]]'
expect "version exits 0" 0 "$vmlab" version
check "version names the API" '[[ $out == "vmlab "*"API vmlab.io/v1alpha1)" ]]'

printf 'apiVersion: vmlab.io/v1alpha1\nkind: LabCluster\nmetadata: {name: a}\nspec: {kubernetes: {version: "1.30.4"}}\n' >"$scratch/a.yaml"
printf 'garbage: [' >"$scratch/.a.yaml.swp"
printf 'garbage: [' >"$scratch/a.yaml~"
expect "folder with editor files" 0 "$vmlab" validate "$scratch"
check "editor files are listed as skipped" \
  '[[ $out == *"skipped $scratch/.a.yaml.swp: hidden file"* && $out == *"skipped $scratch/a.yaml~: editor swap, backup or temporary file"* ]]'

expect "render one node's seed" 0 "$vmlab" render "$src/examples/spk-lab.yaml" --what seed --node spk-worker-1
check "seed has meta-data, network-config and user-data of that node only" \
  '[[ $out == *"local-hostname: spk-worker-1"* && $out == *"- 172.42.42.101/24"* && $out == *"gateway4: 172.42.42.1"* && $out == *"#cloud-config"* && $out != *"# spk-cp-1 seed"* ]]'
expect "render a control plane's user-data" 0 "$vmlab" render "$src/examples/spk-lab.yaml" --what user-data --node spk-cp-1 --state-dir "$scratch/state"
check "secrets are redacted by default" \
  '[[ $out == *"<redacted private key"* && $out == *"<redacted token>"* && $out != *"BEGIN PRIVATE KEY"* && $out == *"BEGIN CERTIFICATE"* ]]'
check "render makes no state dir" '[[ ! -e $scratch/state ]]'
expect "render with --show-secrets" 0 "$vmlab" render "$src/examples/spk-lab.yaml" --what user-data --node spk-cp-1 --show-secrets
check "--show-secrets shows the keys and the token" \
  '[[ $out == *"BEGIN PRIVATE KEY"* && $out != *"<redacted"* && $out =~ token:\ \"[a-z0-9]{6}\.[a-z0-9]{16}\" ]]'
expect "render the downloads of the workers" 0 "$vmlab" render "$src/examples/spk-lab.yaml" --what downloads --node spk-worker-1
check "the worker's packages and images, pinned" \
  '[[ $out == *"# lab spk, worker nodes"* && $out == *"  - kubelet=1.30.4"* && $out == *"  - registry.k8s.io/kube-proxy:v1.30.4"* && $out == *"  - registry.k8s.io/pause:3.9"* && $out != *"haproxy"* && $out != *"kube-apiserver"* ]]'
expect "render the downloads of every role" 0 "$vmlab" render "$src/examples/spk-lab.yaml" --what downloads
check "control planes add the endpoint packages and the control-plane images" \
  '[[ $out == *"# lab spk, control-plane nodes"* && $out == *"  - haproxy"* && $out == *"  - registry.k8s.io/etcd:3.5.12-0"* ]]'
expect "render user-data only" 0 "$vmlab" render "$src/examples/spk-lab.yaml" --what user-data
check "user-data of every node, no XML" '[[ $out == *"hostname: spk-cp-2"* && $out == *"hostname: spk-worker-1"* && $out != *"<domain"* ]]'
expect "render an unknown node exits 1" 1 "$vmlab" render "$src/examples/spk-lab.yaml" --node spk-worker-99
check "says which node is missing" '[[ $err == *"no node named spk-worker-99"* ]]'
expect "render an unknown artifact exits 2" 2 "$vmlab" render "$src/examples/spk-lab.yaml" --what kernel

# vmlab controller --config: errors name the file, line and column; nothing starts.
cp "$src/deploy/vmlab/controller.yaml" "$scratch/controller.yaml"
printf 'workerz: 3\n' >>"$scratch/controller.yaml"
expect "config: an unknown option exits 2" 2 "$vmlab" controller --config "$scratch/controller.yaml"
check "config: says where and suggests the option" \
  '[[ $err == *"controller.yaml:$(wc -l <"$scratch/controller.yaml"):1: error: workerz: not an option of \`vmlab controller\` (did you mean \`workers\`?)"* ]]'
sed -i '/^workerz: 3$/d; s/^workers: 2$/workers: 100/' "$scratch/controller.yaml"
expect "config: a value out of range exits 2" 2 "$vmlab" controller --config "$scratch/controller.yaml"
check "config: the value's line and the flag's check" \
  '[[ $err == *"error: workers: --workers: Value 100 not in range 1 to 64"* ]]'
expect "config: the command line overrides a bad value" 2 "$vmlab" controller --config "$scratch/controller.yaml" \
  --workers 3 --log-format yaml
check "config: only the command line's own mistake is left" '[[ $err == *"--log-format: yaml not in {logfmt,json}"* && $err != *workers* ]]'
printf 'watch: [a\n' >"$scratch/broken.yaml"
expect "config: not YAML exits 2" 2 "$vmlab" controller --config "$scratch/broken.yaml"
check "config: the YAML error's position" '[[ $err == *"broken.yaml:2:1: error: end of sequence flow not found (the config file is YAML)"* ]]'
expect "config: a missing file exits 2" 2 "$vmlab" controller --config "$scratch/none.yaml"
check "config: says it cannot read it" '[[ $err == *"none.yaml: cannot read the config file"* ]]'
printf 'simulate-guests: yes\n' >"$scratch/flag.yaml"
expect "config: a flag's value other than true or false exits 2" 2 "$vmlab" controller --config "$scratch/flag.yaml"
check "config: a flag takes true or false" '[[ $err == *"flag.yaml:1:1: error: simulate-guests: give true or false"* ]]'
printf 'config: other.yaml\n' >"$scratch/nested.yaml"
expect "config: a config key exits 2" 2 "$vmlab" controller --config "$scratch/nested.yaml"
check "config: config is not a setting, and not suggested" \
  '[[ $err == *"nested.yaml:1:1: error: config: not an option of \`vmlab controller\`"* && $err != *"did you mean \`config\`"* ]]'
expect "config: --help shows help whatever the file says" 0 "$vmlab" controller --config "$scratch/broken.yaml" --help
expect "controller help exits 0" 0 "$vmlab" controller --help
check "controller help names --config and --log-format" '[[ $out == *"--config"* && $out == *"--log-format"* ]]'

echo "$passed passed, $failed failed"
((failed == 0))
