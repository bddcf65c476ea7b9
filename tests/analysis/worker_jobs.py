"""Jobs for the analysis worker's tests: run in ``python -m forensics.analysis.worker``."""

from __future__ import annotations

import os
import signal
from typing import Any

from forensics.errors import CsiError


def allocate(mib: int) -> dict[str, Any]:
    """Hold ``mib`` MiB, as an analysis of a hostile checkpoint might try to."""
    held = bytearray(mib << 20)
    return {"held": len(held)}


def killed() -> dict[str, Any]:
    """Die as the kernel's OOM killer would end a worker."""
    os.kill(os.getpid(), signal.SIGKILL)
    return {}


def refuse() -> dict[str, Any]:
    raise CsiError("the archive is not a checkpoint", why="no checkpoint/ directory")
