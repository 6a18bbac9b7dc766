#!/usr/bin/env bash
# `make run`: the controller on a working copy of examples/, on libvirt's
# built-in test driver, with simulated guests (vmlab plays every node's
# bootstrap phases, so the labs go all the way to Ready; no Kubernetes runs). The copy survives between runs so that edits made to
# it (scaling, breaking a file) are still there; delete build/run to start over.
set -euo pipefail
vmlab=$1
run_dir=${RUN_DIR:-build/run}
listen=${LISTEN:-127.0.0.1:9440}
mkdir -p "$run_dir/watch"
if [[ -z "$(ls -A "$run_dir/watch")" ]]; then
  cp examples/*.yaml "$run_dir/watch/"
fi
server="http://$listen"
cat <<MSG
vmlab controller on a working copy of the examples (libvirt test:///default,
simulated guests: each node's phases take seconds; labs reach Ready in about a minute)
  watch folder  $run_dir/watch   (edit, add or delete manifests here)
  state dir     $run_dir/state
  API           $server/api/v1/labclusters
  metrics       $server/metrics
Try, in another terminal:
  $vmlab get --server $server
  $vmlab describe spk --server $server
  $vmlab get --server $server -o yaml | grep -A3 'name: spk-worker'
  sed -i 's/replicas: 1\$/replicas: 2/' $run_dir/watch/spk-lab.yaml
Make a phase fail once (the simulated runner retries it): add to a manifest's
metadata   annotations: {vmlab.io/simulate-failure: spk-worker-2/base}
Stop with Ctrl-C.

MSG
exec "$vmlab" controller --watch "$run_dir/watch" --state-dir "$run_dir/state" \
  --libvirt test:///default --listen "$listen" --simulate-guests --simulate-speed "${SPEED:-2}"
