"""The checkpointctl commands under csi: show, inspect, list, diff."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from forensics.cli.main import main
from tests.conftest import ARCHIVES, CRIU41, LISTENER, PAYMENTS, SHOP, archive_path, truth_for

CHECKPOINTCTL_KEYS = {
    "container_name", "image", "id", "runtime", "created", "engine", "checkpoint_size",
    "statistics", "metadata", "process_tree", "file_descriptors", "sockets", "mounts",
}
CSI_KEYS = {"container_id_short", "kubernetes", "rootfs_diff", "deleted_files", "devshm",
            "tcp_queues", "archive"}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def inspect_json(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    code, out, err = run(capsys, "inspect", "--all", "--reveal", "--format", "json", *args)
    assert code == 0, err
    assert err == ""
    return list(json.loads(out))


def walk(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("children", []) for n in walk(child))]


def test_entry_points_for_csi_and_kubectl_plugin() -> None:
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts["csi"] == "forensics.cli.entry:run"
    assert scripts["kubectl-csi"] == "forensics.cli.entry:run"


def test_inspect_json_uses_checkpointctl_keys(capsys: pytest.CaptureFixture[str]) -> None:
    rows = inspect_json(capsys, *(archive_path(a) for a in ARCHIVES))
    assert len(rows) == len(ARCHIVES)
    for name, row in zip(ARCHIVES, rows, strict=True):
        truth = truth_for(name)
        assert row.keys() >= CHECKPOINTCTL_KEYS | CSI_KEYS
        assert row["id"] == truth["container"]["id"]
        assert row["container_id_short"] == truth["container"]["id"][:12]
        assert row["archive"]["sha256"] == truth["sha256"]
        procs = {p["pid"]: p for p in walk(row["process_tree"])}
        for expected in truth["processes"]:
            p = procs[expected["pid"]]
            assert p["command"] == expected["comm"]
            assert p["ppid"] == expected["ppid"]
            assert p["cmdline"] == " ".join(expected["cmdline"])
            assert p["environment_variables"] == dict(e.split("=", 1) for e in expected["env"])
            assert [t["tid"] for t in p["threads"]] == expected["threads"]
        fds = {f["pid"]: f["open_files"] for f in row["file_descriptors"]}
        for expected in truth["processes"]:
            real = [f for f in fds[expected["pid"]] if f["fd"] not in ("cwd", "root")]
            assert [(f["fd"], f["type"]) for f in real] == [
                (f"{f['type']} {f['fd']}", f["type"]) for f in expected["fds"]
            ]
        assert [m["destination"] for m in row["mounts"]] == [
            m["destination"] for m in truth["mounts"]
        ]
        assert row["statistics"] == truth["stats"]


def test_inspect_json_sockets_are_printed_as_people_write_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    [row] = inspect_json(capsys, archive_path(PAYMENTS))
    shell = next(s for s in row["sockets"] if s["pid"] == 9)
    first = shell["open_sockets"][0]
    assert first["protocol"] == "TCP"
    assert first["data"] == {"type": "TCP", "state": "ESTABLISHED", "src": "127.0.0.1",
                             "src_port": 46658, "dst": "127.0.0.1", "dst_port": 31337,
                             "send_buf": "3.8 MB", "recv_buf": "128.0 KB",
                             "send_buf_bytes": 3939840, "recv_buf_bytes": 131072}
    [listener] = inspect_json(capsys, archive_path(LISTENER))
    nc = next(s for s in listener["sockets"] if s["pid"] == 7)
    assert nc["open_sockets"][0]["family"] == "IPv6"
    assert (nc["open_sockets"][0]["data"]["src"], nc["open_sockets"][0]["data"]["state"]) == (
        "::", "LISTEN"
    )


def test_inspect_tree_shows_the_facts(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "inspect", "--all", archive_path(SHOP))
    assert code == 0, err
    for fact in ("Engine: Podman", "[17]  /tmp/.cache/kworkerd miner 2", "[19] beacon",
                 "[20]  /tmp/.cache/kworkerd miner 2", "comm kworker-helper",
                 "DB_PASSWORD=", "[REG 4]  /tmp/.cache/.staging (deleted)",
                 "TCP (LISTEN) 0.0.0.0:31337 -> 0.0.0.0:0", "UNIX (LISTEN) /tmp/.cache/ctl.sock",
                 "/etc/passwd (file, 94 B", "Deleted files", "/etc/motd",
                 "Pod: prod/shop-frontend-7d9c6b5f4-x2x9q (container web)"):
        assert fact in out, fact


def test_inspect_pid_selects_a_subtree(capsys: pytest.CaptureFixture[str]) -> None:
    [row] = inspect_json(capsys, "--pid", "17", archive_path(SHOP))
    assert [p["pid"] for p in walk(row["process_tree"])] == [17, 20]
    assert {f["pid"] for f in row["file_descriptors"]} == {17, 20}


def test_inspect_unknown_pid_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "inspect", "--pid", "4242", archive_path(SHOP))
    assert code == 2
    assert out == ""
    assert "no process with pid 4242 (pids: 1, 7, 17, 20, 22)" in err
    assert "Traceback" not in err


def test_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "show", archive_path(PAYMENTS), archive_path(CRIU41))
    assert code == 0, err
    assert "payments-api-5b8f7c9d8-qq7lm" in out and "victim" in out and "43de4c406b22" in out
    code, out, _ = run(capsys, "show", "--format", "json", archive_path(PAYMENTS))
    [row] = json.loads(out)
    assert row["checkpoint_size"]["root_fs_diff_size"] == 888320
    assert row["kubernetes"]["namespace"] == "payments"


def test_list_reads_only_metadata(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ARCHIVES:
        shutil.copy(archive_path(name), tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an archive")
    code, out, err = run(capsys, "list", "--format", "json", str(tmp_path))
    assert code == 0, err
    rows = json.loads(out)
    assert {r["file"] for r in rows} == set(ARCHIVES)
    payments = next(r for r in rows if r["file"] == PAYMENTS)
    assert (payments["namespace"], payments["pod"], payments["container"]) == (
        "payments", "payments-api-5b8f7c9d8-qq7lm", "api"
    )
    assert payments["checkpointed"] == "2026-11-22T07:10:28Z"  # from the kubelet's file name
    assert [r["checkpointed"] for r in rows] == sorted(
        (r["checkpointed"] for r in rows), reverse=True
    )
    code, out, err = run(capsys, "list", str(tmp_path))
    assert code == 0 and "payments-api-5b8f7c9d8-qq7lm" in out


def test_list_names_a_cut_zstd_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import zstandard

    # several 128 KiB blocks, so that the first ones (config.dump, spec.dump) decode whole
    whole = zstandard.ZstdCompressor(level=3).compress(Path(archive_path(SHOP)).read_bytes())
    (tmp_path / "head.tar.zst").write_bytes(whole[:300])  # cut inside the first block
    (tmp_path / "half.tar.zst").write_bytes(whole[: len(whole) // 2])  # metadata intact
    code, out, err = run(capsys, "list", "--format", "json", str(tmp_path))
    assert code == 0
    assert [r["file"] for r in json.loads(out)] == ["half.tar.zst"]
    lines = err.splitlines()
    assert lines[0] == (f"csi: warning: {tmp_path}/half.tar.zst: cut short (corrupt zstd data: "
                        "the file ends inside a frame, before its last block (byte "
                        f"{len(whole) // 2})); its metadata is listed, but its contents are "
                        "incomplete")
    assert lines[1] == (f"csi: warning: {tmp_path}/head.tar.zst: not a readable checkpoint "
                        "archive (corrupt zstd data: the file ends inside a frame, before its "
                        "last block (byte 300))")


def test_list_stops_at_a_forged_giant_tar_header(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # a pax header claiming 300 MiB, then 300 MiB (sparse): never read into memory whole
    forged = tmp_path / "checkpoint-forged.tar"
    info = tarfile.TarInfo("././@PaxHeader")
    info.type, info.size = tarfile.XHDTYPE, 300 << 20
    with open(forged, "wb") as f:
        f.write(info.tobuf(tarfile.USTAR_FORMAT))
        f.truncate(tarfile.BLOCKSIZE + (300 << 20) + 2 * tarfile.BLOCKSIZE)
    code, _out, err = run(capsys, "list", str(tmp_path))
    assert code == 0
    assert (f"csi: warning: {forged}: not a readable checkpoint archive (no config.dump and "
            "spec.dump in the first 160 MiB (a forged tar header?))") in err.splitlines()


def test_list_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "list", str(tmp_path / "nope"))
    assert code == 0
    assert "cannot list" in err and "no checkpoint archives found" in err


def test_diff_of_two_checkpoints(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "diff", archive_path(SHOP), archive_path(PAYMENTS))
    assert code == 0
    assert "different containers" in err
    result = json.loads(out)
    assert [p["command"] for p in result["processes"]["added"]] == [".x", "sh", "kworker-helper"]
    assert {f["path"] for f in result["rootfs"]["added"]} == {"/tmp/.cache/.x"}
    assert "/tmp/.cache/kworkerd" in {f["path"] for f in result["rootfs"]["removed"]}
    assert result["deleted_files"] == {"added": [], "removed": ["/etc/motd"]}


def test_diff_of_the_same_checkpoint_is_empty(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "diff", archive_path(SHOP), archive_path(SHOP))
    assert (code, err) == (0, "")
    result = json.loads(out)
    assert result["processes"] == {"added": [], "removed": [], "changed": []}
    assert result["rootfs"] == {"added": [], "removed": [], "modified": []}


def test_installed_command_runs_as_a_program(tmp_path: Path) -> None:
    """The console script itself, as a user runs it (exit status through sys.exit)."""
    csi = Path(sys.executable).parent / "csi"
    done = subprocess.run([str(csi), "show", str(tmp_path / "missing.tar")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "missing.tar: cannot open: No such file or directory" in done.stderr
