"""What a hostile checkpoint can make csi allocate is bounded (issue 11: items 7, 13, Low).

The attacks are real: eight processes of a podman container each holding
5.9 MB of NUL-filled argv (deploy/dev/workload/argvbomb.c, checkpointed once
for this module with CRIU), and copies of a real fixture archive whose
``deleted.files`` lists a million paths or whose JSON members nest 100,000
deep. ``csi analyze`` runs as a subprocess whose peak RSS is measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from forensics import limits
from forensics.archive.checkpoint import Checkpoint
from forensics.cli.main import main
from tests.archive_tools import rebuild_tar
from tests.conftest import SHOP, archive_path
from tests.doubles import argvbomb
from tests.doubles.fixtures import CannotCheckpoint

ROOT = Path(__file__).resolve().parents[2]
ARGV_AREA = len(b"hold\0") + len(b"4\0") + 46 * 128 * 1024  # argv[0], the pipe fd, 46 x 128 KiB
KEPT_BYTES = len(b"hold\0") + len(b"4\0") + (limits.MAX_ARGV_STRINGS - 2)  # then empty ones
RSS_BOUND_KIB = 400 << 10
MIB = 1 << 20


@pytest.fixture(scope="module")
def argv_bomb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One CRIU checkpoint of the argv-bomb container, for every test of this module."""
    out = tmp_path_factory.mktemp("argvbomb") / "argvbomb.tar"
    try:
        with argvbomb.argvbomb_container("csi-bounds-analysis") as name:
            argvbomb.checkpoint(name, out)
    except CannotCheckpoint as exc:
        pytest.skip(f"this machine cannot make CRIU checkpoints: {exc}")
    yield out


def measured(*args: str, env: dict[str, str] | None = None, stdout: Path) -> tuple[int, int]:
    """Run ``csi ARGS`` in a subprocess; its exit status and peak RSS (KiB)."""
    probe = ("import resource, subprocess, sys\n"
             "with open(sys.argv[1], 'wb') as out:\n"
             "    rc = subprocess.run([sys.executable, '-m', 'forensics.cli.main', *sys.argv[2:]],"
             " stdout=out).returncode\n"
             "print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    done = subprocess.run([sys.executable, "-c", probe, str(stdout), *args], cwd=ROOT,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=600, check=True)
    rc, rss = done.stdout.split()
    return int(rc), int(rss)


# ------------------------------------------------------------------ item 7: argv bomb


def test_nul_filled_argv_of_eight_processes_is_read_up_to_its_bound(argv_bomb: Path) -> None:
    with Checkpoint(str(argv_bomb)) as ckpt:
        bombs = [p for p in ckpt.processes if p.cmdline and p.cmdline[0] == "hold"]
        assert len(bombs) == argvbomb.CHILDREN
        for p in bombs:
            assert p.cmdline == ("hold", "4", *("",) * (limits.MAX_ARGV_STRINGS - 2))
            assert p.cmdline_truncated == ARGV_AREA - KEPT_BYTES == 6_025_218
            assert p.environ is not None and p.environ_truncated == 0
        pid1 = next(p for p in ckpt.processes if p.cmdline == ("/argvbomb", "8"))
        assert pid1.cmdline_truncated == 0


def test_argv_bomb_analysis_and_report_stay_bounded(argv_bomb: Path, tmp_path: Path) -> None:
    """Before: 4.8 GB peak RSS and 675 MB of JSON for `csi analyze --format json`."""
    out = tmp_path / "analysis.json"
    home = tmp_path / "home"
    rc, rss_kib = measured("analyze", "--format", "json", "--save", str(argv_bomb),
                           env={"CSI_HOME": str(home)}, stdout=out)
    assert rc == 0
    assert rss_kib < RSS_BOUND_KIB, f"peak RSS {rss_kib >> 10} MiB"
    assert out.stat().st_size < 2 * MIB
    analysis = json.loads(out.read_bytes())
    bombs = [p for p in analysis["records"]["process"] if p["cmdline"][0] == "hold"]
    assert [p["cmdline_truncated"] for p in bombs] == [6_025_218] * argvbomb.CHILDREN
    [report_dir] = [d for d in (home / "reports").iterdir() if d.is_dir()]
    report_json = report_dir / "report.json"
    assert report_json.stat().st_size < 4 * MIB
    report = json.loads(report_json.read_bytes())
    truncated = [p for p in report["processes"] if p.get("cmdline_truncated")]
    assert [p["cmdline_truncated"] for p in truncated] == [6_025_218] * argvbomb.CHILDREN
    assert "… 6,025,218 more bytes" in (report_dir / "report.html").read_text()
    assert "… 6,025,218 more bytes" in (report_dir / "report.md").read_text()


def test_argv_bomb_inspect_marks_what_it_did_not_read(argv_bomb: Path, tmp_path: Path) -> None:
    """`csi inspect` says how much of each hostile argv it left out, in JSON and in the tree."""
    out = tmp_path / "inspect.json"
    rc, _ = measured("inspect", "--ps-tree-cmd", "--format", "json", str(argv_bomb), stdout=out)
    assert rc == 0
    [view] = json.loads(out.read_bytes())

    def walk(nodes: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        stack = list(nodes)
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.get("children", []))

    marked = [n["cmdline_truncated"] for n in walk([view["process_tree"]])
              if n.get("cmdline_truncated")]
    assert marked == [6_025_218] * argvbomb.CHILDREN
    tree = tmp_path / "inspect.txt"
    rc, _ = measured("inspect", "--ps-tree-cmd", str(argv_bomb), stdout=tree)
    assert rc == 0
    assert tree.read_text().count("… 6,025,218 more bytes") == argvbomb.CHILDREN


# ------------------------------------------------------------------ item 13: deleted.files


@pytest.fixture(scope="module")
def million_deleted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shop-frontend fixture whose deleted.files lists 1,000,000 paths (~22 MB of JSON)."""
    out = tmp_path_factory.mktemp("deleted") / "million-deleted.tar"
    paths = json.dumps([f"/var/cache/x{i:07d}" for i in range(1_000_000)]).encode()
    rebuild_tar(archive_path(SHOP), str(out), replace={"deleted.files": paths})
    return out


def test_deleted_files_of_a_million_paths_keeps_ten_thousand(million_deleted: Path) -> None:
    with Checkpoint(str(million_deleted)) as ckpt:
        assert len(ckpt.deleted_files) == limits.MAX_DELETED_FILES == 10_000
        assert ckpt.deleted_files[:2] == ["/var/cache/x0000000", "/var/cache/x0000001"]
        assert ckpt.deleted_files[-1] == "/var/cache/x0009999"
        assert ckpt.deleted_files_omitted == 990_000
        assert (f"{million_deleted}: deleted.files lists 1,000,000 paths; 10,000 are kept "
                "(the first ones, and any under /var/log/) and 990,000 more are counted"
                ) in ckpt.warnings


def test_deleted_log_after_a_million_paths_is_still_kept_and_rated(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "log-last.tar"
    paths = [f"/var/cache/x{i:07d}" for i in range(1_000_000)] + ["/var/log/auth.log"]
    rebuild_tar(archive_path(SHOP), str(archive),
                replace={"deleted.files": json.dumps(paths).encode()})
    with Checkpoint(str(archive)) as ckpt:
        assert len(ckpt.deleted_files) == 10_001
        assert ckpt.deleted_files[-1] == "/var/log/auth.log"
        assert ckpt.deleted_files_omitted == 990_000
    assert main(["analyze", "--format", "json", "--analyzer", "filesystem", str(archive)]) == 0
    deleted = [f for f in json.loads(capsys.readouterr().out)["findings"]
               if f["rule"] == "filesystem.deleted"]
    assert (deleted[0]["severity"], deleted[0]["path"]) == ("high", "/var/log/auth.log")
    assert deleted[-1]["evidence"]["omitted"] == 1_000_001 - 50


def test_deleted_files_of_a_million_paths_analysis_is_bounded_and_aggregated(
        million_deleted: Path, tmp_path: Path) -> None:
    """Before: 4.1 GB peak RSS and 419 MB of JSON."""
    out = tmp_path / "analysis.json"
    rc, rss_kib = measured("analyze", "--format", "json", str(million_deleted), stdout=out)
    assert rc == 0
    assert rss_kib < RSS_BOUND_KIB, f"peak RSS {rss_kib >> 10} MiB"
    assert out.stat().st_size < 4 * MIB
    analysis = json.loads(out.read_bytes())
    deleted = [f for f in analysis["findings"] if f["rule"] == "filesystem.deleted"]
    assert len(deleted) == limits.MAX_FINDINGS_PER_RULE + 1
    assert [f["path"] for f in deleted[:-1]] == [f"/var/cache/x{i:07d}" for i in range(50)]
    assert deleted[-1]["summary"] == ("… and 999,950 more filesystem.deleted findings (only "
                                      "the first 50 of a rule are listed)")
    assert deleted[-1]["evidence"] == {"aggregated": True, "omitted": 999_950, "listed": 50}
    assert "path" not in deleted[-1]
    run = next(r for r in analysis["analyzers"] if r["name"] == "filesystem")
    assert run["status"] == "ran"


# ------------------------------------------------------------------ Low: nested JSON

DEEP = 100_000


def _deep_object() -> bytes:
    return b'{"a":' * DEEP + b"1" + b"}" * DEEP


def _deep_list() -> bytes:
    return b"[" * DEEP + b"]" * DEEP


NESTED = {
    "config.dump": (_deep_object, "JSON nested more than 64 levels deep"),
    "spec.dump": (_deep_object, "JSON nested more than 64 levels deep"),
    "deleted.files": (_deep_list, "nested too deeply to parse"),
}


@pytest.mark.parametrize("member", sorted(NESTED))
def test_deeply_nested_json_member_is_a_warning_not_exit_70(
        member: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make, why = NESTED[member]
    archive = tmp_path / f"nested-{member}.tar"
    rebuild_tar(archive_path(SHOP), str(archive), replace={member: make()})
    code = main(["analyze", "--format", "json", str(archive)])
    out, err = capsys.readouterr()
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    assert f"{archive}: {member}: {why}" in result["warnings"]
    with Checkpoint(archive_path(SHOP)) as original:  # the rest is still shown
        assert [p["pid"] for p in result["records"]["process"]] == [
            p.pid for p in original.processes]
    code = main(["show", "--format", "json", str(archive)])
    out, err = capsys.readouterr()
    assert code == 0, err


@pytest.mark.parametrize("member", ["config.dump", "spec.dump"])
def test_json_member_nested_past_the_bound_but_parsable_is_a_warning(
        member: str, tmp_path: Path) -> None:
    depth = limits.MAX_JSON_DEPTH + 1  # json.loads reads it; csi refuses to walk it
    archive = tmp_path / f"nested-{member}.tar"
    rebuild_tar(archive_path(SHOP), str(archive),
                replace={member: b'{"a":' * depth + b"1" + b"}" * depth})
    with Checkpoint(str(archive)) as ckpt:
        assert (ckpt.config if member == "config.dump" else ckpt.spec) == {}
        assert f"{archive}: {member}: JSON nested more than 64 levels deep" in ckpt.warnings


# ------------------------------------------------------------------ item 13: rootfs-diff.tar


def test_rootfs_diff_with_more_entries_than_the_bound_is_listed_up_to_it(tmp_path: Path) -> None:
    """100,001 empty files in rootfs-diff.tar (headers only: 51 MB, ~100 KB compressed)."""
    import io
    import tarfile

    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for i in range(limits.MAX_NESTED_ENTRIES + 1):
            tar.addfile(tarfile.TarInfo(f"tmp/f{i:06d}"))
    archive = tmp_path / "many-files.tar"
    rebuild_tar(archive_path(SHOP), str(archive), replace={"rootfs-diff.tar": inner.getvalue()})
    with Checkpoint(str(archive)) as ckpt:
        assert len(ckpt.rootfs_diff) == limits.MAX_NESTED_ENTRIES
        assert ckpt.rootfs_diff[-1].path == "/tmp/f099999"
        assert (f"{archive}: rootfs-diff.tar: more than 100,000 members; only the first "
                "100,000 are listed (up to tmp/f099999)") in ckpt.warnings


def test_flood_of_minor_findings_does_not_hide_a_severe_one_of_the_same_rule(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """9,999 deleted cache files, and /var/log/auth.log among them (a HIGH finding)."""
    paths = [f"/var/cache/x{i:07d}" for i in range(9_999)]
    paths.insert(5_000, "/var/log/auth.log")
    archive = tmp_path / "flood.tar"
    rebuild_tar(archive_path(SHOP), str(archive),
                replace={"deleted.files": json.dumps(paths).encode()})
    assert main(["analyze", "--format", "json", "--analyzer", "filesystem", str(archive)]) == 0
    analysis = json.loads(capsys.readouterr().out)
    deleted = [f for f in analysis["findings"] if f["rule"] == "filesystem.deleted"]
    assert [(f["severity"], f.get("path")) for f in deleted[:2]] == [
        ("high", "/var/log/auth.log"), ("medium", "/var/cache/x0000000")]
    assert len(deleted) == limits.MAX_FINDINGS_PER_RULE + 1
    assert (deleted[-1]["severity"], deleted[-1]["evidence"]["omitted"]) == ("medium", 9_950)
