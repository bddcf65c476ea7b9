#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment and install csi into
# it, editable, with the development tools. Idempotent: skipped when
# pyproject.toml has not changed since the last install.
set -euo pipefail
venv=${1:-.venv}
here=$(cd "$(dirname "$0")/../.." && pwd)
stamp="$venv/.csi-pyproject.sha256"
want=$(sha256sum "$here/pyproject.toml" | cut -d' ' -f1)
if [ -x "$venv/bin/csi" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "python: $venv is up to date"
    exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
    echo "python: creating $venv"
    python3 -m venv "$venv"
fi
echo "python: installing csi and its dependencies into $venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# compat mode: a plain .pth entry instead of an import hook (15 ms off every start-up)
"$venv/bin/python" -m pip install --quiet -e "$here[dev]" --config-settings editable_mode=compat
echo "$want" > "$stamp"
echo "python: $("$venv/bin/csi" --version)"
