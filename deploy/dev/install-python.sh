#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment and install csi into
# it, editable, with the development tools. Idempotent: skipped when
# pyproject.toml has not changed since the last install.
#
# The venv is built on Debian's own interpreter (/usr/bin/python3, installed by
# install-system.sh), the one users and CI get on a fresh machine, even when
# another python3 (pyenv, a distribution backport) comes first in PATH: start-up
# time is part of what csi's benchmarks measure, and a different build of the
# interpreter starts at a different speed. CSI_PYTHON overrides the choice.
set -euo pipefail
venv=${1:-.venv}
here=$(cd "$(dirname "$0")/../.." && pwd)
base=${CSI_PYTHON:-/usr/bin/python3}
[ -x "$base" ] || base=$(command -v python3)
stamp="$venv/.csi-pyproject.sha256"
want="$(sha256sum "$here/pyproject.toml" | cut -d' ' -f1) $(readlink -f "$base")"
if [ -x "$venv/bin/csi" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "python: $venv is up to date"
    exit 0
fi
if [ -x "$venv/bin/python" ] && ! grep -qx "home = $(dirname "$(readlink -f "$base")")" "$venv/pyvenv.cfg" \
        && ! grep -qx "home = $(dirname "$base")" "$venv/pyvenv.cfg"; then
    echo "python: $venv was built on another interpreter; rebuilding it on $base"
    rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
    echo "python: creating $venv on $base"
    "$base" -m venv "$venv"
fi
echo "python: installing csi and its dependencies into $venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# compat mode: a plain .pth entry instead of an import hook (15 ms off every start-up)
if ! "$venv/bin/python" -m pip install --quiet -e "$here[dev]" \
        --config-settings editable_mode=compat; then
    # setuptools announces the end of compat mode: then the default mode (an import hook)
    echo "python: compat editable install failed; installing in the default mode"
    "$venv/bin/python" -m pip install --quiet -e "$here[dev]"
fi
# pip compiles the bytecode of what it installs, but not of an editable project:
# do it here, so that no run pays for compiling (PYTHONDONTWRITEBYTECODE=1, common
# in CI, would otherwise make every run compile csi afresh).
"$venv/bin/python" -m compileall -q "$here/forensics" "$here/analyzers" "$here/workflows" >/dev/null
echo "$want" > "$stamp"
echo "python: $("$venv/bin/csi" --version)"
