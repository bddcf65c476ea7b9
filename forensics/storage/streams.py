"""Moving archive bytes without holding them: file windows for uploads, verified writers.

Archives are streamed from disk in chunks (never read whole), hashed on
the way, and written on pull to ``DEST.partial`` first: only bytes whose
digest matched are renamed to ``DEST``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from typing import Any

from forensics.storage.base import Progress
from forensics.storage.errors import DigestMismatchError, LocalStorageError

CHUNK = 1 << 20


class FileWindow:
    """``length`` bytes of ``path`` from ``start``, as a file object an HTTP body can be.

    Bytes read are fed to ``hasher`` (when given) and reported to ``progress``.
    ``seek(0)`` rewinds (e.g. to resend after an auth challenge) and, as the
    hash must then start over, replaces the hasher's state.
    """

    def __init__(self, path: str, start: int, length: int, *, hasher: Any = None,
                 progress: Progress | None = None, progress_base: int = 0,
                 progress_total: int = 0) -> None:
        self._f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self._start = start
        self._length = length
        self._pos = 0
        self._hasher = hasher
        self._hash_start = hasher.copy() if hasher is not None else None
        self._progress = progress
        self._base = progress_base
        self._total = progress_total or length
        self._f.seek(start)

    def __len__(self) -> int:
        return self._length

    @property
    def sent(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        left = self._length - self._pos
        if left <= 0:
            return b""
        size = left if size is None or size < 0 else min(size, left)
        data = self._f.read(min(size, 4 * CHUNK))
        if not data:
            raise LocalStorageError(f"{self._f.name}: ended early while uploading",
                                    why="the file shrank during the push",
                                    hint="the archive must not change while it is pushed")
        self._pos += len(data)
        if self._hasher is not None:
            self._hasher.update(data)
        if self._progress is not None:
            self._progress(self._base + self._pos, self._total)
        return data

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if (offset, whence) not in ((0, 0), (0, 1)):
            raise OSError(errno.ESPIPE, "only rewinding is supported")
        if whence == 0:
            self._pos = 0
            self._f.seek(self._start)
            if self._hash_start is not None:
                self._hasher = self._hash_start.copy()
        return self._pos

    @property
    def hasher(self) -> Any:
        return self._hasher

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> FileWindow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def hash_prefix(path: str, length: int) -> Any:
    """A sha256 object fed with the first ``length`` bytes of ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        left = length
        while left > 0:
            data = f.read(min(left, 4 * CHUNK))
            if not data:
                raise LocalStorageError(f"{path}: shorter than {length} bytes")
            digest.update(data)
            left -= len(data)
    return digest


def local_error(path: str, exc: OSError) -> LocalStorageError:
    if exc.errno == errno.ENOSPC:
        return LocalStorageError(f"{path}: no space left on device",
                                 hint="free space or pull to another file system; "
                                 "nothing partial was kept")
    return LocalStorageError(f"{path}: cannot write", why=exc.strerror or str(exc))


class VerifiedWriter:
    """Writes ``dest`` through ``dest.partial``: hashed, then renamed only if it matched.

    With ``resume=True`` an existing ``.partial`` is kept and hashed, so a
    pull can continue where an interrupted one stopped (``offset``).
    """

    def __init__(self, dest: str, *, overwrite: bool = False, resume: bool = False,
                 key: str = "") -> None:
        self.dest = dest
        self.partial = f"{dest}.partial" + (f"-{key}" if key else "")
        if os.path.exists(dest) and not overwrite:
            raise LocalStorageError(f"{dest}: already exists",
                                    hint="choose another file or pass --force")
        self.hasher = hashlib.sha256()
        self.offset = 0
        try:
            if resume and os.path.isfile(self.partial):
                self.offset = os.path.getsize(self.partial)
                self.hasher = hash_prefix(self.partial, self.offset)
                self._f = open(self.partial, "ab")  # noqa: SIM115 - closed in commit/abort
            else:
                self._f = open(self.partial, "wb")  # noqa: SIM115 - closed in commit/abort
        except OSError as exc:
            raise local_error(dest, exc) from None
        self.size = self.offset

    def write(self, data: bytes | memoryview) -> None:
        try:
            self._f.write(data)
        except OSError as exc:
            self.abort()
            raise local_error(self.dest, exc) from None
        self.hasher.update(data)
        self.size += len(data)

    def commit(self, expected_sha256: str, expected_size: int | None, *, what: str) -> str:
        """Verify and rename; on a mismatch delete the partial file and raise."""
        got = self.hasher.hexdigest()
        try:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
        except OSError as exc:
            self.abort()
            raise local_error(self.dest, exc) from None
        if got != expected_sha256 or (expected_size is not None and self.size != expected_size):
            self.abort()
            raise DigestMismatchError(
                f"{what}: the bytes received do not match their digest",
                why=f"expected sha256:{expected_sha256} ({expected_size} bytes), got "
                f"sha256:{got} ({self.size} bytes)",
                hint="nothing was written; pull again, and if it persists the stored copy "
                "is damaged")
        os.replace(self.partial, self.dest)
        return got

    def abort(self, *, keep: bool = False) -> None:
        """Close; delete the partial file unless ``keep`` (to resume later)."""
        with contextlib.suppress(OSError):
            self._f.close()
        if not keep:
            with contextlib.suppress(OSError):
                os.unlink(self.partial)
