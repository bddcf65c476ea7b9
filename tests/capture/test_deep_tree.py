"""A container whose processes form a 1,101-deep chain (each the parent of the next, as
``sh -c`` calling itself makes), checkpointed for real with podman + CRIU.

Any unprivileged workload can build such a tree. On 755c054 it made the capture end
with RecursionError (no report, an evidence image nothing referred to) and ``csi
inspect --all`` fail. The checkpoint is made once per session (deploy/dev/make-checkpoint.sh
--mode deep --keep --leave-running, about 10 s); the capture test checkpoints the same
container again, through the whole pipeline.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from forensics.cli.main import main
from tests.doubles.fixtures import MAKE_CHECKPOINT
from tests.doubles.kubelet import PODMAN

FORKS = 1100
PROCESSES = FORKS + 1  # the implant (pid 1) and its chain of children


@dataclass(frozen=True)
class Deep:
    archive: Path  # the checkpoint make-checkpoint.sh wrote (plain tar)
    container: str  # the container, still running (the capture test checkpoints it again)


@pytest.fixture(scope="session")
def deep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deep]:
    """Made once: the chain is built, checkpointed (the container left running: restoring
    1,101 processes would take minutes) and removed at the end of the session."""
    tmp = tmp_path_factory.mktemp("deep-trees")
    archive = tmp / "checkpoint-deep.tar"
    name = f"csi-trees-deep-{uuid.uuid4().hex[:8]}"
    try:
        done = subprocess.run(["bash", str(MAKE_CHECKPOINT), "--name", name, "--mode", "deep",
                               "--depth", str(FORKS), "--keep", "--leave-running",
                               "--compress", "none", "-o", str(archive)],
                              capture_output=True, text=True, timeout=600, check=False)
        if done.returncode == 77:
            lines = done.stderr.strip().splitlines()
            pytest.skip("this machine cannot make CRIU checkpoints: "
                        f"{lines[-1] if lines else 'exit 77'}")
        assert done.returncode == 0, done.stderr[-2000:]
        yield Deep(archive, name)
    finally:
        subprocess.run([*PODMAN, "rm", "-f", "--time", "0", name], capture_output=True,
                       timeout=120, check=False)


@pytest.fixture(autouse=True)
def podman_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSI_PODMAN_FLAGS", " ".join(PODMAN[1:]))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def chain_pids(tree: dict[str, Any], elided: list[dict[str, Any]]) -> list[int]:
    """The pids of a chain, top down: the nested part, then the flat elided part."""
    pids = []
    node: dict[str, Any] | None = tree
    while node is not None:
        pids.append(node["pid"])
        assert len(node.get("children", [])) <= 1
        node = node["children"][0] if node.get("children") else None
    return pids + [p["pid"] for p in elided]


def test_deep_process_chain_inspect_json_lists_every_process(
        deep: Deep, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "inspect", "--all", "--format", "json", str(deep.archive))
    assert code == 0, err
    row = json.loads(out)[0]
    assert "warnings" not in row, row.get("warnings")  # a chain is a well-formed tree
    pids = chain_pids(row["process_tree"], row["process_tree_elided"])
    assert len(pids) == PROCESSES and len(set(pids)) == PROCESSES
    assert pids[0] == 1
    nested, elided = pids[:64], pids[64:]
    bottom = row["process_tree"]
    for _ in range(63):
        bottom = bottom["children"][0]
    assert bottom["pid"] == nested[-1] and "children" not in bottom
    assert bottom["children_elided"] == {
        "processes": PROCESSES - 64, "levels": PROCESSES - 64, "first_pid": elided[0],
        "deepest_pid": elided[-1],
        "text": f"… 1,037 more levels, 1,037 processes (pid {elided[0]} down to pid "
                f"{elided[-1]})"}
    ppids = [p["ppid"] for p in row["process_tree_elided"]]
    assert ppids == pids[63:-1]  # every elided process keeps its parent
    assert {f["pid"] for f in row["file_descriptors"]} == set(pids)


def test_deep_process_chain_inspect_all_tree_shows_the_elision(
        deep: Deep, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "inspect", "--all", "--format", "json", str(deep.archive))
    row = json.loads(out)[0]
    pids = chain_pids(row["process_tree"], row["process_tree_elided"])
    code, out, err = run(capsys, "inspect", "--all", str(deep.archive))
    assert code == 0, err
    shown = [int(m) for m in re.findall(r"\[(\d+)\]  /opt/csi/implant deep 1100", out)]
    assert shown == pids[:24]  # a terminal shows 24 levels ...
    lines = [line for line in out.splitlines() if "more levels" in line]
    assert len(lines) == 1  # ... then counts the rest on one line
    assert lines[0].endswith(f"└── … 1,077 more levels, 1,077 processes (pid {pids[24]} "
                             f"down to pid {pids[-1]})")


def test_deep_process_chain_analyze_and_report_render(
        deep: Deep, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = run(capsys, "analyze", "--format", "json", str(deep.archive))
    assert code == 0, err
    records = json.loads(out)["records"]["process"]
    assert len(records) == PROCESSES and len({r["pid"] for r in records}) == PROCESSES
    home = tmp_path / "home"
    monkeypatch.setenv("CSI_HOME", str(home))
    code, out, err = run(capsys, "analyze", "--save", "--reason", "deep chain",
                         str(deep.archive))
    assert code == 0, err
    folder = next(p for p in (home / "reports").iterdir() if p.is_dir())
    doc = json.loads((folder / "report.json").read_text())
    pids = [p["pid"] for p in doc["processes"]]
    assert len(pids) == PROCESSES and len(set(pids)) == PROCESSES  # the JSON of record
    by_pid = {p["pid"]: p["ppid"] for p in doc["processes"]}
    chain = [1]
    children = {ppid: pid for pid, ppid in by_pid.items()}
    while chain[-1] in children:
        chain.append(children[chain[-1]])
    assert len(chain) == PROCESSES
    cut = f"… 1,037 more levels, 1,037 processes (pid {chain[64]} down to pid {chain[-1]})"
    html = (folder / "report.html").read_text()
    assert html.count(cut) == 1
    assert re.findall(r'<li id="pid-(\d+)"', html) == [str(p) for p in chain]  # all, in order
    md = (folder / "report.md").read_text().splitlines()
    at = md.index(f"{'  ' * 64}- {cut}")
    assert [int(m) for m in re.findall(r"^ *- \\\[(\d+)\\\]", "\n".join(md), re.M)] == chain
    assert md[at + 1].startswith(f"{'  ' * 65}- \\[{chain[64]}\\] `/opt/csi/implant deep 1100`")
    assert md[at + 1].endswith(f" — ppid {chain[63]}")
    code, out, err = run(capsys, "report", "show", folder.name)
    assert code == 0, err
    assert f"… 1,077 more levels, 1,077 processes (pid {chain[24]} down to pid {chain[-1]})" \
        in out


def test_deep_process_chain_capture_files_a_signed_report(
        deep: Deep, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole capture of the running deep container: checkpoint, push, pull, analyze,
    report (on 755c054: RecursionError after the push, an image nothing referred to)."""
    monkeypatch.setenv("CSI_HOME", str(tmp_path / "home"))
    code, out, err = run(capsys, "capture", "container", deep.container, "-o", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["error"] == "" and result["image_ref"].startswith("oci:")
    assert result["report_id"]
    report = tmp_path / "home" / "reports" / result["report_id"] / "report.json"
    doc = json.loads(report.read_text())
    assert len(doc["processes"]) == PROCESSES
    assert doc["custody"]["capture"]["registry_ref"] == result["image_ref"]
