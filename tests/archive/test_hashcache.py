"""The sha256 cache: reused for the same file, never for a changed one; analysis re-hashes."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from forensics.archive.checkpoint import Checkpoint
from tests.conftest import CRIU41, LISTENER, archive_path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", [LISTENER, CRIU41])
def test_second_open_uses_the_cache(tmp_path: Path, name: str) -> None:
    copy = tmp_path / name
    shutil.copy(archive_path(name), copy)
    with Checkpoint(str(copy)) as first:
        assert (first.archive.sha256, first.archive.sha256_cached) == (digest(copy), False)
    with Checkpoint(str(copy)) as second:
        assert (second.archive.sha256, second.archive.sha256_cached) == (digest(copy), True)
    with Checkpoint(str(copy), hash_cache=False) as fresh:
        assert (fresh.archive.sha256, fresh.archive.sha256_cached) == (digest(copy), False)


def test_a_changed_file_is_hashed_again(tmp_path: Path) -> None:
    copy = tmp_path / "a.tar"
    shutil.copy(archive_path(LISTENER), copy)
    with Checkpoint(str(copy)) as ckpt:
        before = ckpt.archive.sha256
    stat = copy.stat()
    with open(copy, "r+b") as f:  # same size, same mtime: only ctime can tell
        f.seek(stat.st_size - 1)
        f.write(b"\x01")
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with Checkpoint(str(copy)) as ckpt:
        assert ckpt.archive.sha256_cached is False
        assert ckpt.archive.sha256 == digest(copy) != before


def test_cache_can_be_disabled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSI_NO_HASH_CACHE", "1")
    for _ in range(2):
        with Checkpoint(archive_path(LISTENER)) as ckpt:
            assert ckpt.archive.sha256_cached is False


def test_unwritable_cache_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("CSI_CACHE_DIR", str(blocker / "sub"))
    with Checkpoint(archive_path(LISTENER)) as ckpt:
        assert ckpt.archive.sha256 == digest(Path(archive_path(LISTENER)))
