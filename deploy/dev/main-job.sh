#!/usr/bin/env bash
# The main job on an embedded default: checkpoint a real (harmless)
# implant-like workload with podman + runc + CRIU, then let csi show and
# inspect it. Where this machine cannot checkpoint, inspect the shipped
# real fixture instead, saying why.
set -euo pipefail
csi=${1:-csi}
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${CSI_MAIN_JOB_DIR:-/var/tmp/csi-main-job}
mkdir -p "$out"
archive="$out/checkpoint-shop-frontend-demo_prod-web-$(date -u +%Y-%m-%dT%H:%M:%SZ).tar"
set +e
bash "$root/deploy/dev/make-checkpoint.sh" --name csi-main-job --mode miner \
    --pod shop-frontend-demo --namespace prod --container web --compress none -o "$archive"
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
    echo "main job: could not make a fresh checkpoint here (exit $rc); inspecting a shipped real one" >&2
    archive="$root/tests/data/checkpoints/checkpoint-shop-frontend-7d9c6b5f4-x2x9q_prod-web-2026-11-22T07:09:54Z.tar"
fi
"$csi" show "$archive"
"$csi" inspect --ps-tree-cmd --files --sockets --rootfs "$archive"
# what the checkpoint shows, saved as a signed report in the csi home
"$csi" analyze --save --reason "csi main job" "$archive"
echo "main job: archive $archive"
echo "main job: reports: $csi report list; $csi report show latest"
