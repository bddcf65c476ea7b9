"""The whole trip on a fresh real checkpoint: CRIU -> native push -> buildah-backend pull ->
``podman container restore --import`` brings the container back."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from forensics.storage import pull_archive, push_archive
from tests.capture.conftest import PLAIN, need, sha256_file
from tests.capture.servers import Registry

ROOT = Path(__file__).resolve().parents[2]
PODMAN = ["podman", "--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager",
          "cgroupfs", "--events-backend", "file"]


@pytest.mark.slow
def test_pushed_and_pulled_checkpoint_restores_with_podman(registry: Registry,
                                                          tmp_path: Path) -> None:
    need("podman")
    need("buildah")
    need("skopeo")
    name = f"csi-restore-{uuid.uuid4().hex[:8]}"
    archive = tmp_path / "fresh.tar"
    made = subprocess.run(["bash", str(ROOT / "deploy/dev/make-checkpoint.sh"), "--name", name,
                           "--mode", "miner", "--compress", "none", "-o", str(archive)],
                          capture_output=True, text=True, timeout=900)
    if made.returncode == 77:
        reason = (made.stderr.strip().splitlines() or ["no reason given"])[-1]
        pytest.skip(f"this machine cannot checkpoint: {reason}")
    assert made.returncode == 0, made.stderr[-2000:]
    sha = sha256_file(archive)

    pushed = push_archive(str(archive), f"{registry.host}/evidence/restore:{name}",
                          options=PLAIN, sha256=sha)
    assert pushed.archive_sha256 == sha
    pulled_path = tmp_path / "pulled.tar"
    pulled = pull_archive(pushed.pinned, str(pulled_path), options=PLAIN, backend="buildah")
    assert pulled.sha256 == sha and sha256_file(pulled_path) == sha

    restored = subprocess.run([*PODMAN, "container", "restore", "--import", str(pulled_path),
                               "--tcp-established"], capture_output=True, text=True,
                              timeout=300)
    cid = restored.stdout.strip().splitlines()[-1] if restored.stdout.strip() else ""
    try:
        assert restored.returncode == 0, restored.stderr[-2000:]
        state = subprocess.run([*PODMAN, "inspect", "-f", "{{.State.Status}} {{.Name}}", cid],
                               capture_output=True, text=True, timeout=60)
        assert state.stdout.split() == ["running", name]
    finally:
        if cid:
            subprocess.run([*PODMAN, "rm", "-f", "--time", "0", cid], capture_output=True,
                           timeout=120)
