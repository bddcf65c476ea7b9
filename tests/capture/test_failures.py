"""Registry down, killed mid-upload, wrong digest, disk full, crashes: clear errors,
the archive never lost, a retry that resumes cleanly."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from forensics.cli.main import main
from forensics.storage import RegistryOptions, pull_archive, push_archive
from forensics.storage import upload as upload_module
from forensics.storage.errors import (
    LocalStorageError,
    RegistryStorageFullError,
    RegistryUnavailableError,
)
from forensics.storage.streams import FileWindow
from tests.capture.conftest import PLAIN, SMALL, sha256_file
from tests.capture.servers import Registry, free_port

CHUNK = 64 << 10


class SimulatedCrash(BaseException):
    """The csi process dying mid-push (not an error csi could handle)."""


def _fingerprint(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return sha256_file(path), st.st_mtime_ns, st.st_size


def _blob(reg: Registry, sha: str) -> str:
    data, _ = reg.get(f"/v2/evidence/r/blobs/sha256:{sha}")
    import hashlib

    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up ({done.stderr.strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_registry_down_is_a_temporary_error_and_the_archive_stays(
        archive_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _fingerprint(archive_copy)
    ref = f"127.0.0.1:{free_port()}/evidence/down:d"
    with pytest.raises(RegistryUnavailableError) as info:
        push_archive(str(archive_copy), ref, options=PLAIN, delete_source=True)
    assert info.value.permanent is False
    assert "cannot reach" in str(info.value) and "connection refused" in str(info.value)
    assert _fingerprint(archive_copy) == before
    code = main(["push", str(archive_copy), ref, "--plain-http", "--delete-source"])
    err = capsys.readouterr().err
    assert code == 3 and err.count("\n") == 1 and err.startswith("csi: error: ")
    assert _fingerprint(archive_copy) == before


def test_registry_killed_mid_upload_then_a_retry_completes(
        own_registry: Registry, archive_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _fingerprint(archive_copy)
    ref = f"{own_registry.host}/evidence/r:killed"

    class KillingWindow(FileWindow):
        def read(self, size: int = -1) -> bytes:
            if self.sent >= 100_000 and own_registry.proc and own_registry.proc.poll() is None:
                own_registry.kill()  # the registry dies with half the archive received
            return super().read(min(size, 50_000) if size and size > 0 else 50_000)

    monkeypatch.setattr(upload_module, "FileWindow", KillingWindow)
    with pytest.raises(RegistryUnavailableError) as info:
        push_archive(str(archive_copy), ref, options=PLAIN, delete_source=True)
    assert f"the archive is untouched at {archive_copy}" in str(info.value)
    assert _fingerprint(archive_copy) == before
    monkeypatch.setattr(upload_module, "FileWindow", FileWindow)
    own_registry.start()
    result = push_archive(str(archive_copy), ref, options=PLAIN, delete_source=True)
    assert result.source_deleted and not archive_copy.exists()
    assert _blob(own_registry, result.archive_sha256) == before[0]


def test_crash_between_chunks_resumes_at_the_registry_offset(
        own_registry: Registry, archive_copy: Path, monkeypatch: pytest.MonkeyPatch,
        private_home: Path) -> None:
    before = _fingerprint(archive_copy)
    size = before[2]
    ref = f"{own_registry.host}/evidence/r:chunks"
    options = RegistryOptions(plain_http=True, chunk_size=CHUNK, retries=2, backoff=0.05)

    class CrashingWindow(FileWindow):
        def read(self, size: int = -1) -> bytes:
            if self._start == 3 * CHUNK:  # the 4th chunk's request has started
                raise SimulatedCrash
            return super().read(size)

    monkeypatch.setattr(upload_module, "FileWindow", CrashingWindow)
    with pytest.raises(SimulatedCrash):
        push_archive(str(archive_copy), ref, options=options)
    assert len(list((private_home / "uploads").iterdir())) == 1  # the journal
    monkeypatch.setattr(upload_module, "FileWindow", FileWindow)
    result = push_archive(str(archive_copy), ref, options=options)
    assert (result.resumed_from, result.uploaded_bytes) == (3 * CHUNK, size - 3 * CHUNK)
    assert _blob(own_registry, result.archive_sha256) == before[0]
    assert _fingerprint(archive_copy) == before
    assert list((private_home / "uploads").iterdir()) == []


def test_crash_mid_chunk_starts_a_new_session(
        own_registry: Registry, archive_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """distribution 2.x drops a session that received part of a request: csi starts over."""
    before = _fingerprint(archive_copy)
    ref = f"{own_registry.host}/evidence/r:midchunk"
    options = RegistryOptions(plain_http=True, chunk_size=4 * CHUNK, retries=2, backoff=0.05)

    class HalfWindow(FileWindow):
        def read(self, size: int = -1) -> bytes:
            if self._start == 4 * CHUNK:
                if self.sent:
                    raise SimulatedCrash
                return super().read(CHUNK)
            return super().read(size)

    monkeypatch.setattr(upload_module, "FileWindow", HalfWindow)
    with pytest.raises(SimulatedCrash):
        push_archive(str(archive_copy), ref, options=options)
    monkeypatch.setattr(upload_module, "FileWindow", FileWindow)
    result = push_archive(str(archive_copy), ref, options=options)
    assert (result.resumed_from, result.uploaded_bytes) == (0, before[2])
    assert _blob(own_registry, result.archive_sha256) == before[0]


def test_registry_disk_full(tmp_path_factory: pytest.TempPathFactory, archive_copy: Path) -> None:
    work = tmp_path_factory.mktemp("full-registry")
    with tmpfs(work / "storage", "128k") as storage:
        reg = Registry(work, storage=storage)
        try:
            before = _fingerprint(archive_copy)
            with pytest.raises(RegistryStorageFullError) as info:
                push_archive(str(archive_copy), f"{reg.host}/evidence/full:f", options=PLAIN,
                             delete_source=True)
            assert info.value.permanent is True
            assert "storage is full" in str(info.value)
            assert "no space left on device" in str(info.value)
            assert _fingerprint(archive_copy) == before
        finally:
            reg.close()


def test_local_disk_full_on_pull_leaves_nothing(registry: Registry, tmp_path: Path) -> None:
    result = push_archive(SMALL, f"{registry.host}/evidence/localfull:l", options=PLAIN)
    with tmpfs(tmp_path / "small", "128k") as small:
        with pytest.raises(LocalStorageError, match="no space left on device"):
            pull_archive(result.pinned, str(small / "out.tar"), options=PLAIN)
        assert list(small.iterdir()) == []


def test_pull_of_an_unknown_image_is_one_line(registry: Registry,
                                              capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    code = main(["pull", f"{registry.host}/evidence/none:missing", "-f",
                 str(tmp_path / "x.tar"), "--plain-http"])
    err = capsys.readouterr().err
    assert code == 3
    assert err == (f"csi: error: {registry.host}/evidence/none:missing: no such image "
                   "(check the name and tag)\n")
    assert [n for n in os.listdir(tmp_path) if n.startswith("x.tar")] == []
