"""Where csi keeps its state: ``$CSI_HOME``, else ``$XDG_DATA_HOME/csi`` (~/.local/share/csi)."""

from __future__ import annotations

import os
from pathlib import Path


def csi_home() -> Path:
    explicit = os.environ.get("CSI_HOME")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                           "share")
    return Path(base) / "csi"
