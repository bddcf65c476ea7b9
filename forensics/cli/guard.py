"""Every command's last line of defence: a csi error becomes one line and an exit status.

:func:`guarded` runs a command and turns what escapes it into one line on
stderr and the exit status the shell sees: a :class:`~forensics.errors.CsiError`
its own status (usage 2, temporary 75, ...), an interrupt 130, SIGTERM/SIGHUP
while a temporary copy existed 128 + the signal (see
:mod:`forensics.archive.tempfiles`), a bug 70 (the
traceback only with ``CSI_DEBUG=1``). It does not import click: the click
group (:mod:`forensics.cli.main`) and the click-free fast commands
(:mod:`forensics.cli.entry`) share it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from forensics.errors import CsiError, Terminated
from forensics.status import ExitStatus


def guarded(command: Callable[[], int]) -> int:
    """Run ``command``; its exit status, or that of what it raised (one line on stderr)."""
    try:
        return command()
    except CsiError as exc:
        _say(f"csi: error: {exc}")
        return exc.exit_code
    except BrokenPipeError:
        sys.stderr.close()  # `csi inspect … | head` is fine
        return ExitStatus.OK
    except KeyboardInterrupt:
        _say("csi: interrupted")
        return ExitStatus.INTERRUPTED
    except Terminated as exc:  # SIGTERM/SIGHUP while a temporary copy existed: removed
        _say(f"csi: {exc}")
        return exc.exit_code
    except Exception as exc:  # a bug in csi: still one line, the traceback only on request
        if os.environ.get("CSI_DEBUG"):
            raise
        _say(f"csi: internal error: {type(exc).__name__}: {exc} (this is a bug in csi; "
             "run again with CSI_DEBUG=1 for the traceback and report it)")
        return ExitStatus.SOFTWARE


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
