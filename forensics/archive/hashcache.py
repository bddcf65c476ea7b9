"""A cache of archive sha256 digests, keyed on the file's identity.

Hashing a multi-GiB archive costs about a second per GiB; inspecting the
same evidence again should not. The key is (device, inode, size, mtime_ns,
ctime_ns): any write to the file changes its ctime, which users cannot set,
so a changed archive never matches. Reports say when a digest came from the
cache, and analysis of evidence always recomputes it. The cache lives in
``$CSI_CACHE_DIR`` (default ``$XDG_CACHE_HOME/csi/sha256``); set
``CSI_NO_HASH_CACHE=1`` to bypass it. A cache that cannot be read or written
is simply not used.
"""

from __future__ import annotations

import contextlib
import os
import re

_HEX = re.compile(r"^[0-9a-f]{64}$")


def cache_dir() -> str:
    explicit = os.environ.get("CSI_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "csi", "sha256")


def enabled() -> bool:
    return os.environ.get("CSI_NO_HASH_CACHE", "") in ("", "0")


def _key_path(st: os.stat_result) -> str:
    import hashlib  # loaded only by commands that want a digest

    key = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
    return os.path.join(cache_dir(), hashlib.sha256(key.encode()).hexdigest())


def lookup(st: os.stat_result) -> str | None:
    if not enabled():
        return None
    try:
        with open(_key_path(st), encoding="ascii") as f:
            value = f.read(65).strip()
    except (OSError, UnicodeDecodeError):
        return None
    return value if _HEX.match(value) else None


def store(st: os.stat_result, digest: str) -> None:
    if not enabled():
        return
    import tempfile

    path = _key_path(st)
    with contextlib.suppress(OSError):
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(digest + "\n")
        os.replace(tmp, path)
