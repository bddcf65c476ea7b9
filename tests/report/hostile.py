"""A fixture archive with hostile file names planted in its rootfs diff (built at test time)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from tests.archive_tools import rebuild_tar
from tests.conftest import PAYMENTS, archive_path

SCRIPT = "<script>document.title='pwned'</script>"
IMG = "<img src=x onerror=alert(1)>"
HOSTILE_PATHS = (f"tmp/{SCRIPT}", f"tmp/{IMG}")


def hostile_archive(folder: Path, paths: tuple[str, ...] = HOSTILE_PATHS,
                    name: str = "hostile-payments.tar",
                    tar_format: int = tarfile.GNU_FORMAT) -> Path:
    """A copy of the reverse-shell fixture whose rootfs diff also holds ``paths`` (by default
    two names that are HTML)."""
    src = archive_path(PAYMENTS)
    with tarfile.open(src) as outer:
        member = outer.extractfile("rootfs-diff.tar")
        assert member is not None
        original = member.read()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(original)) as tin, \
            tarfile.open(fileobj=buffer, mode="w", format=tar_format) as tout:
        for info in tin:
            tout.addfile(info, tin.extractfile(info) if info.isfile() else None)
        for path in paths:
            data = b"#!/bin/sh\necho owned\n"
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o755, 1795935000
            tout.addfile(info, io.BytesIO(data))
    dst = folder / name
    rebuild_tar(src, str(dst), replace={"rootfs-diff.tar": buffer.getvalue()})
    return dst
