"""The exit statuses csi's commands (and the analysis worker) end with: one table.

Documented once in the README ("Exit status"). Errors carry theirs as
``CsiError.exit_code``; :mod:`forensics.cli.guard` is the one place that turns
them into the status the shell sees.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    FAILURE = 1  # a csi error with no more specific status (e.g. a report cannot be built)
    USAGE = 2  # asked for something that cannot be done as asked; bad input; not found
    EXTERNAL = 3  # the kubelet, podman, a registry, a tool or the memory limit failed
    SOFTWARE = 70  # a bug in csi (EX_SOFTWARE); the traceback with CSI_DEBUG=1
    TEMPFAIL = 75  # a temporary failure: try again (EX_TEMPFAIL; Argo retries the step)
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
