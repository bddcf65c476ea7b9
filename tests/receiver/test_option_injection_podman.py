"""Issue 11 item 1 against real podman: ``--latest`` in an alert checkpoints nothing.

A bystander container runs in a podman store of its own (``--root``/``--runroot``
in a temporary directory, given to csi through ``CSI_PODMAN_FLAGS``), so that
podman's ``--latest`` could only ever mean the bystander, never a container of
whoever else shares this machine. A real receiver (HTTP on 127.0.0.1, its
journal, the local executor and the real capture pipeline) gets alerts whose
``container.name`` is ``--latest``, ``-l`` and ``--help``: each is
``unresolved`` with the reason, no capture is journaled, podman records no
checkpoint of the bystander and no report is filed. The capture library
refuses ``--latest`` itself before podman runs. Then an alert naming the
bystander properly is captured and reported, so the refusals above are not
an accident of a machine that cannot checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from forensics.capture import podman
from forensics.cli.main import main
from forensics.names import InvalidName
from forensics.receiver.config import ServeConfig
from forensics.report.store import ReportStore
from tests.receiver.conftest import ServerThread, wait_until
from tests.receiver.test_option_injection import OPTION, captures, hostile, outcome, post

BUSYBOX = "/bin/busybox"
RUNTIME = ("--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file")


@dataclass(frozen=True)
class Bystander:
    store: tuple[str, ...]  # --storage-driver/--root/--runroot of the private store
    name: str
    id: str

    @property
    def podman_flags(self) -> str:
        return " ".join((*self.store, *RUNTIME))

    def podman(self, *args: str) -> str:
        return subprocess.run(["podman", *self.store, *RUNTIME, *args], capture_output=True,
                              text=True, check=True, timeout=120).stdout

    def checkpoints(self) -> list[str]:
        """podman's own record: every checkpoint event of this container."""
        out = self.podman("events", "--stream=false", "--filter", f"container={self.id}",
                          "--filter", "event=checkpoint", "--format", "{{.ID}}")
        return out.split()


def _skip_unless_tools() -> None:
    for tool in ("podman", "buildah", "criu"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (deploy/dev/install-system.sh installs it)")
    if not os.access(BUSYBOX, os.X_OK):
        pytest.skip(f"{BUSYBOX} is missing (busybox-static: deploy/dev/install-system.sh)")
    if os.geteuid() != 0:
        pytest.skip("podman checkpoints need root")


@pytest.fixture(scope="module")
def bystander() -> Iterator[Bystander]:
    """A running busybox container, alone in a podman store under /tmp (short socket paths)."""
    _skip_unless_tools()
    top = tempfile.mkdtemp(prefix="csi-inj-", dir="/tmp")
    store = ("--storage-driver", "vfs", "--root", f"{top}/root", "--runroot", f"{top}/run")
    suffix = uuid.uuid4().hex[:8]
    name, image = f"csi-inject-bystander-{suffix}", f"localhost/csi-inject-busybox:{suffix}"
    try:
        def buildah(*args: str) -> str:
            return subprocess.run(["buildah", *store, *args], capture_output=True, text=True,
                                  check=True, timeout=120).stdout.strip()

        ctr = buildah("from", "--", "scratch")
        buildah("copy", "--", ctr, BUSYBOX, BUSYBOX)
        buildah("commit", "-q", "--", ctr, image)
        buildah("rm", "--", ctr)
        partial = Bystander(store, name, "")
        partial.podman("run", "-d", f"--name={name}", "--ulimit=nofile=1024:1024",
                       "--ulimit=nproc=1024:1024", "--", image, BUSYBOX, "sleep", "3600")
        cid = partial.podman("container", "inspect", "--format", "{{.Id}}", "--", name).strip()
        yield Bystander(store, name, cid)
    finally:
        subprocess.run(["podman", *store, *RUNTIME, "rm", "-f", "--time", "0", "--", name],
                       capture_output=True, check=False, timeout=120)
        subprocess.run(["podman", *store, *RUNTIME, "system", "reset", "--force"],
                       capture_output=True, check=False, timeout=120)
        shutil.rmtree(top, ignore_errors=True)


def test_alert_container_name_latest_checkpoints_no_bystander(
        bystander: Bystander, base_config: ServeConfig, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("CSI_HOME", str(home))
    monkeypatch.setenv("CSI_PODMAN_FLAGS", bystander.podman_flags)
    assert bystander.checkpoints() == []
    config = replace(base_config, home=str(home), backend="podman")
    with ServerThread(config) as server:  # the default run_capture: the real pipeline
        answers = {name: post(server, hostile(container_name=name, container_id=None))
                   for name in ("--latest", "-l", "--help")}
        server.settled(timeout=240)
        for name, answer in answers.items():
            assert (answer["decision"], answer["policy_rule"]) == (
                "ignore", "builtin:unresolved"), name
            assert answer["reasons"][0] == f"unresolved target: container.name {name!r} {OPTION}"
            assert outcome(server, answer["id"])["outcome"] == "unresolved"
        assert captures(server) == []
        assert bystander.checkpoints() == []
        assert ReportStore(home).query() == ([], 0)
        assert not (home / "archives").exists()

        # the capture library refuses it too, before podman runs
        direct = tmp_path / "direct"
        for name in ("--latest", "-l", "--help"):
            with pytest.raises(InvalidName) as caught:
                podman.checkpoint(name, str(direct))
            assert caught.value.what == f"podman container name or id {name!r} {OPTION}"
        assert not direct.exists() and bystander.checkpoints() == []

        # ... as does the CLI (one line, exit 2)
        assert main(["capture", "container", "--", "--latest"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"csi: error: podman container name or id '--latest' {OPTION}")
        assert "Traceback" not in err and bystander.checkpoints() == []

        # control: the bystander named as podman names it is captured and reported
        answer = post(server, hostile(container_name=bystander.name,
                                      container_id=bystander.id[:12]))
        assert answer["decision"] == "capture"

        def ended() -> list[dict[str, Any]]:
            found = captures(server)
            return found if found and found[0]["state"] in ("done", "failed") else []

        wait_until(lambda: bool(ended()), 240, "the control capture never ended")
        [capture] = ended()
        assert capture["state"] == "done", json.dumps(capture)
        assert capture["target"]["container"] == bystander.name
    assert len(bystander.checkpoints()) == 1
    rows, total = ReportStore(home).query()
    assert total == 1 and rows[0].container == bystander.name
    assert capture["links"]["report"].startswith(f"{home}/reports/{rows[0].id}")
