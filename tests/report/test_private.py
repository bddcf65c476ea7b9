"""Secrets and evidence on disk: the csi home is 0700 and its files 0600 whatever the umask;
secret files that others can read are used with a one-line warning."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from forensics.receiver.journal import Journal
from forensics.report.signing import load_signing_key

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "t" * 32


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_journal_is_not_readable_by_others(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "home" / "receiver" / "journal.sqlite3"
    journal = Journal(path)
    journal.close()
    assert mode(path.parent) == 0o700
    files = {p.name: mode(p) for p in path.parent.iterdir()}
    assert files["journal.sqlite3"] == 0o600
    assert set(files.values()) == {0o600}, files


def test_signing_key_readable_by_others_is_used_with_a_warning(
        home: Path, umask_022: None, caplog: pytest.LogCaptureFixture) -> None:
    key = load_signing_key(home)
    path = home / "keys" / "report-signing-ed25519.pem"
    assert (mode(home), mode(path.parent), mode(path)) == (0o700, 0o700, 0o600)
    assert caplog.records == []
    os.chmod(path, 0o644)
    assert load_signing_key(home).fingerprint == key.fingerprint
    assert [r.getMessage() for r in caplog.records] == [
        f"the report signing key {path} is readable by others (mode 0644): anyone on this "
        f"machine who can read it can use it; run `chmod 600 {path}` (for a Kubernetes Secret "
        "volume, set defaultMode: 0400)"]


def test_serve_token_file_readable_by_others_warns_once(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    os.chmod(token, 0o644)
    log = tmp_path / "serve.log"
    env = {**os.environ, "CSI_HOME": str(tmp_path / "home"), "CSI_LISTEN": "127.0.0.1:0",
           "CSI_TOKEN_FILE": str(token), "PYTHONPATH": str(ROOT)}
    with log.open("wb") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "forensics.cli.main", "serve"], cwd=ROOT,
                                env=env, stdout=subprocess.DEVNULL, stderr=handle)
        try:
            deadline = time.monotonic() + 30
            while b"listening on" not in log.read_bytes():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        finally:
            proc.terminate()
            proc.wait(10)
    lines = [line for line in log.read_text().splitlines() if "readable by others" in line]
    assert len(lines) == 1
    assert lines[0].endswith(f"WARNING token_file {token} is readable by others (mode 0644): "
                             "anyone on this machine who can read it can use it; run "
                             f"`chmod 600 {token}` (for a Kubernetes Secret volume, set "
                             "defaultMode: 0400)")
    assert "Traceback" not in log.read_text()


def test_a_csi_home_set_to_a_shared_folder_is_not_narrowed(tmp_path: Path) -> None:
    from forensics.home import private_dir

    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp
    private_dir(shared / "reports", shared)
    assert mode(shared) == 0o1777
    assert mode(shared / "reports") == 0o700
