#!/usr/bin/env bash
# The README's setup command: on a fresh Debian 12 machine, as root, install
# everything csi needs (system packages, the Python environment) and run the
# main job on an embedded default. Safe to run again.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bash deploy/dev/install-system.sh
bash deploy/dev/install-python.sh .venv
bash deploy/dev/main-job.sh .venv/bin/csi
