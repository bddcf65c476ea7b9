"""Test harness, not production: ``csi serve`` with a capture function injected.

    python tests/serve_with.py tests.receiver.capture_doubles:recording

runs the receiver exactly as ``csi serve`` does (settings from ``CSI_*`` and
the config file, the same one-line logs, the same error guard), except that
captures go to the named test double instead of the real pipeline. The serve
config has no setting for this: production never imports a module a config
names. Used by the subprocess tests (tests/receiver/serve_process.py,
test_crash.py) and benchmarks/bench_receiver.py, with the repository root on
``PYTHONPATH``.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from pathlib import Path

# Run as a script, Python puts tests/ first on sys.path, where tests/workflows would
# hide the top-level workflows package: the repository root goes there instead.
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from forensics.cli.guard import guarded
from forensics.cli.serve_cmds import LOG_FORMAT
from forensics.receiver.config import load_serve_config
from forensics.receiver.logs import setup_logging
from forensics.receiver.server import build_service, serve_forever


def main(spec: str) -> int:
    module, _, name = spec.partition(":")
    run_capture = getattr(importlib.import_module(module), name)
    config = load_serve_config(None, {})
    setup_logging(config.log_level, config.log_format, LOG_FORMAT)  # as csi serve does
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING if not config.access_log
                                                 else logging.INFO)
    service = build_service(config, run_capture=run_capture)
    asyncio.run(serve_forever(service))
    return 0


if __name__ == "__main__":
    sys.exit(guarded(lambda: main(sys.argv[1])))
