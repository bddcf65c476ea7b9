"""The console scripts' entry point (``csi``, ``kubectl csi``).

Every command goes through the click group of :mod:`forensics.cli.main`, except
the FAST ones: ``csi memparse`` is checkpointctl's command, run by hand and
benchmarked against it to the millisecond, and click alone costs ~12 ms of its
~130. A fast command is a module with ``DESCRIPTION`` and ``main(argv) -> int``
(argparse, :func:`~forensics.cli.guard.guarded`); run directly it never imports
click, and the group lists it and forwards to it, so ``csi --help`` and
``main(["memparse", ...])`` know it as any other command.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

FAST = {"memparse": "memparse_cmd"}  # command -> its module in forensics.cli


def prog_name() -> str:
    """How the user called us, for usage lines: ``kubectl csi`` when run as the
    kubectl plugin (the ``kubectl-csi`` script), else ``csi``."""
    return "kubectl csi" if os.path.basename(sys.argv[0]).startswith("kubectl-csi") else "csi"


def fast_command(name: str) -> ModuleType:
    return importlib.import_module(f"forensics.cli.{FAST[name]}")


def run() -> None:
    """Run the command line, then exit.

    Before exiting, every object is moved out of the garbage collector's sight
    (``gc.freeze``): the interpreter's final collection then has nothing to walk,
    which takes ~7 ms off every command. Files and temporary directories are
    closed by the commands themselves, never left to the collector.
    """
    argv = sys.argv[1:]
    if argv and argv[0] in FAST:
        code = fast_command(argv[0]).main(argv[1:])
    else:
        from forensics.cli.main import main

        code = main(argv)
    import gc

    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
