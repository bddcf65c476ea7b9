#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment and install csi into it,
# editable, with the development tools. Idempotent.
set -euo pipefail
venv=${1:-.venv}
here=$(cd "$(dirname "$0")/../.." && pwd)
if [ ! -x "$venv/bin/python" ]; then
    echo "python: creating $venv"
    python3 -m venv "$venv"
fi
echo "python: installing csi and its dependencies into $venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e "$here[dev]"
echo "python: $("$venv/bin/csi" --version)"
