"""Every fact of every fixture checkpoint matches its independently decoded truth file."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest

from forensics.archive.checkpoint import Checkpoint
from forensics.archive.model import Socket
from tests.conftest import archive_path, truth_for


@pytest.fixture
def opened(archive: str) -> Iterator[tuple[Checkpoint, dict[str, Any]]]:
    with Checkpoint(archive_path(archive)) as ckpt:
        yield ckpt, truth_for(archive)


def truth_ip(words: list[int]) -> str:
    """The truth files keep CRIU's u32 words (network order read little-endian)."""
    raw = b"".join(w.to_bytes(4, "little") for w in words)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw))
    return str(ipaddress.IPv6Address(raw))


def truth_fd_name(name: str) -> str:
    """pycriu leaves a '=00' artefact after unix socket names (the trailing NUL)."""
    return name.removesuffix("=00")


def test_archive_hash_and_identity(opened: tuple[Checkpoint, dict[str, Any]]) -> None:
    ckpt, truth = opened
    assert ckpt.archive.sha256 == truth["sha256"]
    c = truth["container"]
    assert ckpt.container.id == c["id"]
    assert ckpt.container.name == c["name"]
    assert ckpt.container.image == c["rootfsImageName"]
    assert ckpt.container.runtime == c["runtime"]
    assert ckpt.container.engine == truth["engine"]
    assert ckpt.container.checkpointed == (c["checkpointedTime"] or "")
    k = truth["kubernetes"]
    assert ckpt.kubernetes.pod == k["pod.name"]
    assert ckpt.kubernetes.namespace == k["pod.namespace"]
    assert ckpt.kubernetes.container == k["container.name"]
    assert ckpt.kubernetes.pod_uid == k["pod.uid"]
    assert ckpt.warnings == []


def test_processes(opened: tuple[Checkpoint, dict[str, Any]]) -> None:
    ckpt, truth = opened
    assert [p.pid for p in ckpt.processes] == [p["pid"] for p in truth["processes"]]
    for expected in truth["processes"]:
        p = ckpt.process(expected["pid"])
        assert p is not None
        assert p.ppid == expected["ppid"]
        assert p.comm == expected["comm"]
        assert p.task_state == expected["state"]
        assert [t.tid for t in p.threads] == expected["threads"]
        assert list(p.cmdline or ()) == expected["cmdline"]
        assert list(p.environ or ()) == expected["env"]
        assert p.memory_pages_bytes == expected["memory_pages_bytes"]
        assert p.errors == ()


def test_file_descriptors(opened: tuple[Checkpoint, dict[str, Any]]) -> None:
    ckpt, truth = opened
    for expected in truth["processes"]:
        p = ckpt.process(expected["pid"])
        assert p is not None
        got = [(f.fd, f.type, f.path) for f in p.files]
        want = [(f["fd"], f["type"], truth_fd_name(f["name"])) for f in expected["fds"]]
        assert got == want


def test_sockets(opened: tuple[Checkpoint, dict[str, Any]]) -> None:
    ckpt, truth = opened
    for expected in truth["processes"]:
        p = ckpt.process(expected["pid"])
        assert p is not None
        assert [_socket_facts(s) for s in p.sockets] == [
            _truth_socket(s) for s in expected["sockets"]
        ]


def _socket_facts(s: Socket) -> tuple[Any, ...]:
    if s.family == "UNIX":
        return (s.fd, "UNIX", s.name, s.state_number)
    return (s.fd, s.family_number, 6 if s.protocol == "TCP" else s.protocol, s.state_number,
            s.src, s.src_port, s.dst, s.dst_port)


def _truth_socket(s: dict[str, Any]) -> tuple[Any, ...]:
    if s["family"] == "UNIX":
        return (s["fd"], "UNIX", truth_fd_name(s["name"]), s["state"])
    return (s["fd"], s["family"], s["proto"], s["state"], truth_ip(s["src"]), s["sport"],
            truth_ip(s["dst"]), s["dport"])


def test_rootfs_diff_deleted_files_mounts_stats(opened: tuple[Checkpoint, dict[str, Any]]) -> None:
    ckpt, truth = opened
    got = [
        {"path": e.path, "type": e.type, "size": e.size, "mode": oct(e.mode),
         **({"sha256": e.sha256} if e.sha256 else {})}
        for e in ckpt.rootfs_diff
    ]
    assert got == truth["rootfs_diff"]
    assert ckpt.deleted_files == truth["deleted_files"]
    assert [m.__dict__ for m in ckpt.mounts] == truth["mounts"]
    assert ckpt.stats is not None
    assert ckpt.stats.as_dict() == truth["stats"]


def test_memory_pages_size_is_the_pages_files(opened: tuple[Checkpoint, dict[str, Any]]) -> None:
    """Every present pagemap page is in a pages file: the totals agree."""
    ckpt, truth = opened
    pages_files = {
        m.name: m.size
        for m in ckpt.source.members.values() if m.name.startswith("checkpoint/pages-")
    }
    assert ckpt.sizes.memory_pages_size == sum(pages_files.values())
    # one pages file per process, each exactly the process's present pages
    assert sorted(pages_files.values()) == sorted(
        p["memory_pages_bytes"] for p in truth["processes"]
    )


def test_reverse_shell_fixture_specifics() -> None:
    """The facts an investigator needs from the reverse-shell checkpoint, spelled out."""
    from tests.conftest import PAYMENTS

    with Checkpoint(archive_path(PAYMENTS)) as ckpt:
        shell = ckpt.process(9)
        implant = ckpt.process(1)
        assert shell is not None and implant is not None
        assert shell.cmdline == ("sh", "-i")
        assert [(f.fd, f.path) for f in shell.files[:3]] == [
            (0, "inet:27581"), (1, "inet:27581"), (2, "inet:27581")
        ]
        conn = shell.sockets[0]
        assert (conn.protocol, conn.state, conn.src, conn.src_port, conn.dst, conn.dst_port) == (
            "TCP", "ESTABLISHED", "127.0.0.1", 46658, "127.0.0.1", 31337
        )
        assert implant.exe == "/tmp/.cache/.x"
        assert [(t.tid, t.name) for t in implant.threads] == [(1, ".x"), (10, "beacon")]
        staging = next(f for f in implant.files if f.fd == 4)
        assert (staging.path, staging.deleted) == ("/tmp/.cache/.staging", True)
        assert implant.cwd == "/" and implant.root == "/"
        assert implant.creds is not None and implant.creds.uid == 0
        helper = ckpt.process(11)
        assert helper is not None and helper.comm == "kworker-helper"
        assert helper.cmdline == ("/tmp/.cache/.x", "reverse", "1")
        queues = {q.ino: q for q in ckpt.tcp_queues}
        assert queues[27580].inq.startswith(b"sh: can't access tty; job control turned off")
        assert queues[27580].inq.endswith(b"/ # ")
