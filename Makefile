# csi: the two commands of the README.
#   make setup  - install everything (system packages, Python venv) and run the main job
#   make test   - the same installation (idempotent), then ruff, mypy and pytest
# .ci/run calls `make test`.

VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.csi-installed

.PHONY: setup install test lint bench main-job clean

setup: install main-job

install: $(STAMP)

$(STAMP): pyproject.toml deploy/dev/install-system.sh deploy/dev/install-python.sh
	bash deploy/dev/install-system.sh
	bash deploy/dev/install-python.sh $(VENV)
	touch $@

# The main job on an embedded default: checkpoint a real (harmless) implant-like
# workload with podman + CRIU and inspect it; falls back to a shipped fixture
# where CRIU cannot checkpoint.
main-job: install
	bash deploy/dev/main-job.sh $(BIN)/csi

lint: install
	$(BIN)/ruff check forensics analyzers workflows tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: install
	$(BIN)/python benchmarks/bench_inspect.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
