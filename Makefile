# Shortcuts; the README's commands are the scripts they call.
.PHONY: setup test bench demo
setup:
	bash deploy/dev/setup.sh
test:
	bash deploy/dev/test.sh
bench:
	.venv/bin/python benchmarks/bench_inspect.py
demo:
	bash deploy/dev/demo.sh
