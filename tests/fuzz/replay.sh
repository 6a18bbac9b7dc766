#!/usr/bin/env bash
# Runs a libFuzzer binary once over every file under the given folders.
set -euo pipefail
fuzzer=$1; shift
mapfile -d '' files < <(find "$@" -type f -print0 | sort -z)
echo "replaying ${#files[@]} inputs"
"$fuzzer" -runs=1 "${files[@]}"
