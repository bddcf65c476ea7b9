"""issue 12 item 4: ``csi push``/``pull`` draw progress bars on stderr when it is a
terminal (a real pty), and write nothing extra when it is not."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.capture.conftest import KUBELET
from tests.capture.servers import Registry
from tests.doubles.fixtures import Workload, workload_or_skip
from tests.doubles.kubelet import PODMAN

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workload]:
    tmp = tmp_path_factory.mktemp("workload")
    with workload_or_skip(tmp, f"csi-cli-progress-{tmp.name[-8:]}", pod="progress-0",
                          namespace="cli", container="app", mode="reverse") as running:
        yield running


def _csi(argv: list[str], tmp_path: Path, *, tty: bool) -> tuple[int, str, str]:
    """``csi ARGV`` as a user runs it; stderr a pseudo-terminal when ``tty``."""
    env = {**os.environ, "CSI_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT),
           "COLUMNS": "120", "TERM": "xterm", "CSI_PODMAN_FLAGS": " ".join(PODMAN[1:]),
           "CSI_REGISTRY_PLAIN_HTTP": "1"}
    command = [sys.executable, "-m", "forensics.cli.main", *argv]
    if not tty:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        return done.returncode, done.stdout, done.stderr
    parent, child = pty.openpty()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=child, env=env)
    os.close(child)
    seen = b""
    while True:
        try:
            chunk = os.read(parent, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    out = proc.stdout.read() if proc.stdout else b""
    code = proc.wait(120)
    os.close(parent)
    return code, out.decode(), seen.decode("utf-8", "replace")


def test_push_and_pull_show_bars_on_a_terminal_only(registry: Registry, tmp_path: Path
                                                    ) -> None:
    ref = f"{registry.host}/evidence/cli-progress:one"
    code, out, err = _csi(["push", KUBELET, ref, "--plain-http"], tmp_path, tty=True)
    assert code == 0, err
    assert out.startswith(f"pushed {KUBELET} (")
    assert "push" in err and "━" in err and "\x1b[" in err  # a rich bar, drawn then cleared
    back = tmp_path / "back.tar"
    code, out, err = _csi(["pull", ref, "-f", str(back), "--plain-http"], tmp_path, tty=True)
    assert code == 0, err
    assert "pull" in err and "━" in err
    assert back.stat().st_size == Path(KUBELET).stat().st_size

    code, out, err = _csi(["push", KUBELET, ref, "--plain-http"], tmp_path, tty=False)
    assert code == 0 and err == ""
    back.unlink()
    code, out, err = _csi(["pull", ref, "-f", str(back), "--plain-http"], tmp_path, tty=False)
    assert code == 0 and err == "" and out.startswith(f"pulled {ref} -> {back}")


def test_capture_shows_push_and_pull_bars_on_a_terminal(registry: Registry, workload: Workload,
                                                       tmp_path: Path) -> None:
    code, out, err = _csi(["capture", "container", workload.name, "--registry",
                           f"{registry.host}/evidence/cli-progress-capture"], tmp_path, tty=True)
    assert code == 0, err
    assert out.startswith("archive sha256 ")
    assert "━" in err  # the bars of the push and of the pull back
    for step in ("checkpoint", "push", "pull", "analyze"):
        assert step in err
