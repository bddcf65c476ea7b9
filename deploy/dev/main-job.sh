#!/usr/bin/env bash
# The README's main job: the csi demo, end to end with real components
# (deploy/dev/demo.sh: a local registry, csi serve, a misbehaving container,
# its Falco alert, the capture and its signed report). Where this machine
# cannot make CRIU checkpoints, csi analyzes a shipped real checkpoint instead
# and says why.
set -euo pipefail
csi=${1:-csi}
root=$(cd "$(dirname "$0")/../.." && pwd)
set +e
bash "$root/deploy/dev/demo.sh" "$csi"
rc=$?
set -e
if [ "$rc" -eq 77 ]; then
    echo "main job: CRIU cannot checkpoint on this machine; analyzing a shipped real checkpoint" >&2
    archive="$root/tests/data/checkpoints/checkpoint-payments-api-5b8f7c9d8-qq7lm_payments-api-2026-11-22T07:10:28Z.tar"
    "$csi" show "$archive"
    "$csi" analyze --save --reason "csi main job" "$archive"
    exit 0
fi
exit "$rc"
