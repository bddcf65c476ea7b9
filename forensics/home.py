"""Where csi keeps its state, and keeping it private.

The home is ``$CSI_HOME``, else ``$XDG_DATA_HOME/csi`` (~/.local/share/csi).
It holds evidence (reports, archives), the signing key, the fingerprint key
and the receiver's journal: its directories are made 0700 and its files 0600
(:func:`private_dir`, :func:`private_file`), whatever the umask. Secret files
csi reads but did not make (a token file, a signing key) get a one-line
warning when others can read them (:func:`readable_by_others`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

from forensics.paths import csi_home as csi_home  # the one csi home, re-exported

log = logging.getLogger("csi.home")
_warned: set[str] = set()

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path, home: Path | None = None) -> Path:
    """Make ``path`` (and missing parents) a 0700 directory; the csi home too, if given.

    An existing csi home or directory that others can enter is narrowed to 0700.
    """
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    for folder in (home, path):
        if folder is None or _shared(folder):
            continue
        with contextlib.suppress(OSError):  # not ours to change (e.g. a shared mount): leave it
            if stat.S_IMODE(folder.stat().st_mode) & 0o077:
                os.chmod(folder, PRIVATE_DIR)
    return path


def _shared(folder: Path) -> bool:
    """A folder csi must never narrow, even as its home: /, the user's home, /tmp-like ones."""
    try:
        real = folder.resolve()
        sticky = bool(real.stat().st_mode & stat.S_ISVTX)
    except OSError:
        return True
    return sticky or real == Path("/") or real == Path(os.path.expanduser("~")).resolve()


def private_file(path: Path | str) -> None:
    """Narrow an existing file to 0600 (sqlite and others create theirs with the umask)."""
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, PRIVATE_FILE)


def private_db(path: Path | str) -> None:
    """Narrow an SQLite database and its -wal/-shm files to 0600 (SQLite gives new -wal and
    -shm files the database's own mode)."""
    for suffix in ("", "-wal", "-shm"):
        private_file(f"{path}{suffix}")


def open_private(path: Path | str, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC) -> int:
    """``os.open`` a file for writing, created 0600."""
    return os.open(path, flags | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE)


def readable_by_others(path: Path | str, what: str) -> str | None:
    """A one-line warning if the secret file ``path`` is group- or other-readable, else None."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return (f"{what} {path} is readable by others (mode {mode:04o}): anyone on this machine "
            f"who can read it can use it; run `chmod 600 {path}` (for a Kubernetes Secret volume, "
            "set defaultMode: 0400)")


def warn_if_readable(path: Path | str | None, what: str) -> str | None:
    """Log :func:`readable_by_others`' warning (once per file and process); returns it."""
    if not path:
        return None
    warning = readable_by_others(path, what)
    if warning and str(path) not in _warned:
        _warned.add(str(path))
        log.warning("%s", warning)
    return warning
