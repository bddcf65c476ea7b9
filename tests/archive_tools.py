"""Building archive variants from real fixtures at test time (never hand-made bytes alone)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable


def rebuild_tar(
    src: str,
    dst: str,
    *,
    replace: dict[str, bytes | None] | None = None,
    rename: Callable[[str], str] | None = None,
) -> None:
    """Copy tar ``src`` to ``dst``, replacing (bytes) or dropping (None) members by name."""
    replace = replace or {}
    with tarfile.open(src) as tin, tarfile.open(dst, "w", format=tarfile.GNU_FORMAT) as tout:
        for info in tin:
            if info.name in replace:
                data = replace[info.name]
                if data is None:
                    continue
                info.size = len(data)
                stream: io.BufferedIOBase | None = io.BytesIO(data)  # type: ignore[assignment]
            else:
                stream = tin.extractfile(info) if info.isfile() else None  # type: ignore[assignment]
            if rename is not None:
                info.name = rename(info.name)
            tout.addfile(info, stream)
