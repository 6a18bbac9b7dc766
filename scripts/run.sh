#!/usr/bin/env bash
# `make run`: the controller on a working copy of examples/, on libvirt's
# built-in test driver. The copy survives between runs so that edits made to
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
vmlab controller on a working copy of the examples (libvirt test:///default)
  watch folder  $run_dir/watch   (edit, add or delete manifests here)
  state dir     $run_dir/state
  API           $server/api/v1/labclusters
  metrics       $server/metrics
Try, in another terminal:
  $vmlab get --server $server
  $vmlab describe spk --server $server
  sed -i 's/replicas: 1\$/replicas: 2/' $run_dir/watch/spk-lab.yaml
Stop with Ctrl-C.

MSG
exec "$vmlab" controller --watch "$run_dir/watch" --state-dir "$run_dir/state" \
  --libvirt test:///default --listen "$listen"
