#!/usr/bin/env bash
# The README's test command (and exactly what .ci/run calls): make sure
# everything is installed (idempotent, seconds when it already is), then
# lint, type-check and run the test suite.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bash deploy/dev/install-system.sh
bash deploy/dev/install-python.sh .venv
echo "test: ruff"
.venv/bin/ruff check forensics analyzers workflows tests benchmarks
echo "test: mypy"
.venv/bin/mypy
echo "test: pytest"
exec .venv/bin/pytest "$@"
