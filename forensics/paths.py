"""Well-known places: the csi home and the kubelet's checkpoint directory.

The one definition of each; everything else imports them from here.
"""

from __future__ import annotations

import os
from pathlib import Path

KUBELET_CHECKPOINT_DIR = "/var/lib/kubelet/checkpoints"  # where the kubelet writes checkpoints
CSI_HOME_ENV = "CSI_HOME"


def csi_home() -> Path:
    """``$CSI_HOME``, else ``$XDG_DATA_HOME/csi`` (``~/.local/share/csi``)."""
    explicit = os.environ.get(CSI_HOME_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                           "share")
    return Path(base) / "csi"
