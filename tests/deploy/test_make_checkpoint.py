"""Fresh real checkpoints (podman + runc + CRIU 4.2) read by csi and its analyzers.

deploy/dev/make-checkpoint.sh exits 77 where this machine cannot checkpoint
(not root, no CRIU >= 4.2, old kernel); the test then skips and says why.
CI runs deploy/dev/install-system.sh first, so there it runs.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from forensics.analysis import memparse
from forensics.analysis.base import Options
from forensics.analysis.runner import analyze
from forensics.archive.checkpoint import Checkpoint

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "dev" / "make-checkpoint.sh"


def make(tmp: Path, *args: str) -> Path:
    out = tmp / "checkpoint-web-0_prod-api-2026-11-22T08:00:00Z.tar"
    done = subprocess.run(["bash", str(SCRIPT), "--name", f"csi-test-{tmp.name[-12:]}", *args,
                           "-o", str(out)], capture_output=True, text=True, timeout=600)
    if done.returncode == 77:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "exit 77"
        pytest.skip(f"this machine cannot make CRIU checkpoints: {reason}")
    assert done.returncode == 0, done.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def reverse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checkpoint]:
    tmp = tmp_path_factory.mktemp("fresh")
    path = make(tmp, "--mode", "reverse", "--pod", "web-0", "--namespace", "prod",
                "--container", "api", "--env", "STRIPE_KEY=sk_live_freshFreshFresh123",
                "--compress", "zstd")
    with Checkpoint(str(path)) as ckpt:
        yield ckpt


def test_identity_and_format(reverse: Checkpoint) -> None:
    assert reverse.archive.compression == "zstd"
    assert reverse.container.engine == "Podman"
    k = reverse.kubernetes
    assert (k.pod, k.namespace, k.container) == ("web-0", "prod", "api")
    assert k.pod_uid is not None and len(k.pod_uid) == 36
    assert reverse.warnings == []


def test_processes_read_from_criu42_memory(reverse: Checkpoint) -> None:
    implant = reverse.process(1)
    assert implant is not None
    assert implant.exe == "/tmp/.cache/.x"
    assert implant.cmdline == ("/tmp/.cache/.x", "reverse", "1")
    assert "STRIPE_KEY=sk_live_freshFreshFresh123" in (implant.environ or ())
    assert [t.name for t in implant.threads] == [".x", "beacon"]
    by_comm = {p.comm: p for p in reverse.processes}
    helper = by_comm["kworker-helper"]
    assert helper.ppid == 1 and helper.cmdline == implant.cmdline
    shell = by_comm["sh"]
    assert shell.cmdline == ("sh", "-i")
    assert {f.fd for f in shell.files if f.type == "INETSK"} >= {0, 1, 2}
    staging = [f for f in implant.files if f.path == "/tmp/.cache/.staging"]
    assert staging and staging[0].deleted
    listen = [s for s in implant.sockets if s.state == "LISTEN" and s.protocol == "TCP"]
    assert [s.src_port for s in listen] == [31337]
    assert implant.memory_pages_bytes > 0


def test_memory_search_and_analysis(reverse: Checkpoint) -> None:
    hits = list(memparse.search(reverse, [1], literal=b"stratum+tcp://pool.minexmr.example"))
    assert len(hits) == 1
    result = analyze(reverse, Options()).to_dict()
    rules = {(f["rule"], f.get("pid")) for f in result["findings"]}
    shell = next(p for p in reverse.processes if p.comm == "sh")
    assert ("process.reverse-shell", shell.pid) in rules
    assert ("process.exe-dropped", 1) in rules
    assert ("ioc.mining-pool", 1) in rules
    assert result["verdict"] == "critical"
