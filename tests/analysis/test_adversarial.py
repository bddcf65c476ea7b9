"""Hostile content: binary garbage in argv/envp, a gigantic file in the rootfs diff.

Variants are made from a real fixture at test time: the bytes of the
process's argv/envp area are overwritten inside pages-N.img (located through
the pagemap, as an attacker controlling the process could), or a huge sparse
file is added to rootfs-diff.tar.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from forensics.analysis.base import Options
from forensics.analysis.memscan import MAX_FILE_BYTES
from forensics.analysis.runner import analyze
from forensics.archive.checkpoint import Checkpoint
from forensics.archive.criu import messages as m
from forensics.archive.criu.image import decode_first
from tests.archive_tools import rebuild_tar
from tests.conftest import LISTENER, archive_path

GARBAGE = b"\xff\xfe<script>alert(1)</script>\x00\xc3\x28=\xe2\x82" + bytes(range(1, 256))


def with_garbage_in_memory(tmp_path: Path, pid: int) -> str:
    """The listener archive with pid's argv and envp areas filled with binary garbage."""
    with Checkpoint(archive_path(LISTENER)) as ckpt:
        mm = decode_first("mm", ckpt.source.read(f"checkpoint/mm-{pid}.img"), "mm", m.MM)
        memory = ckpt.memory(pid)
        pages_member = next(n for n in ckpt.source.members if n.startswith("checkpoint/pages-")
                            and ckpt.source.members[n] == memory._pages)
        pages = bytearray(ckpt.source.read(pages_member))
        for start, end in ((mm["mm_arg_start"], mm["mm_arg_end"]),
                           (mm["mm_env_start"], mm["mm_env_end"])):
            run = next(r for r in memory.runs if r.vaddr <= start < r.end)
            offset = run.offset + (start - run.vaddr)
            fill = (GARBAGE * (1 + (end - start) // len(GARBAGE)))[: end - start]
            pages[offset: offset + len(fill)] = fill
    target = tmp_path / "garbage.tar"
    rebuild_tar(archive_path(LISTENER), str(target), replace={pages_member: bytes(pages)})
    return str(target)


def test_binary_garbage_in_argv_and_env_is_escaped(tmp_path: Path) -> None:
    path = with_garbage_in_memory(tmp_path, 7)
    with Checkpoint(path) as ckpt:
        nc = ckpt.process(7)
        assert nc is not None and nc.cmdline is not None and nc.environ is not None
        text = json.dumps({"argv": nc.cmdline, "env": nc.environ})  # always serialisable
        assert "\\\\xff\\\\xfe<script>" in text
        assert all(isinstance(a, str) for a in nc.cmdline)
        result = analyze(ckpt, Options()).to_dict()
    json.dumps(result)
    assert {r["status"] for r in result["analyzers"]} <= {"ran", "skipped"}
    process = next(r for r in result["records"]["process"] if r["pid"] == 7)
    assert process["cmdline"] == list(nc.cmdline)


def test_inspect_and_memparse_cli_on_garbage(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from forensics.cli.main import main

    path = with_garbage_in_memory(tmp_path, 7)
    assert main(["inspect", "--all", path]) == 0
    assert main(["inspect", "--all", "--format", "json", path]) == 0
    assert main(["memparse", "--search", "<script>", "--context", "4", path]) == 0
    out = capsys.readouterr().out
    matches = [line for line in out.splitlines() if line.startswith("7 ")]
    assert len(matches) == 2  # the argv area and the envp area
    assert matches[0].endswith("????<script>aler")  # \xff\xfe and non-printables as ?


def huge_rootfs_variant(tmp_path: Path, size: int) -> str:
    """The listener archive whose rootfs diff holds a sparse file of ``size`` bytes."""
    sparse = tmp_path / "sparse.bin"
    with open(sparse, "wb") as f:
        f.truncate(size)
        f.seek(size - 40)
        f.write(b"stratum+tcp://pool.late.example:3333 end")
    nested = tmp_path / "rootfs-diff.tar"
    with tarfile.open(nested, "w", format=tarfile.GNU_FORMAT) as tar:
        tar.add(sparse, arcname="tmp/huge.bin")
    target = tmp_path / "huge.tar"
    with tarfile.open(archive_path(LISTENER)) as tin, tarfile.open(
        target, "w", format=tarfile.GNU_FORMAT
    ) as tout:
        for info in tin:
            if info.name == "rootfs-diff.tar":
                info.size = nested.stat().st_size
                with open(nested, "rb") as f:
                    tout.addfile(info, f)
            else:
                tout.addfile(info, tin.extractfile(info) if info.isfile() else None)
    sparse.unlink()
    nested.unlink()
    return str(target)


@pytest.mark.slow
def test_gigantic_rootfs_file_is_bounded_work(tmp_path: Path) -> None:
    """A 1 GiB file: hashed by streaming, scanned up to MAX_FILE_BYTES, memory bounded."""
    size = 1 << 30
    path = huge_rootfs_variant(tmp_path, size)
    code = (
        "import json, sys\n"
        "from forensics.archive.checkpoint import Checkpoint\n"
        "from forensics.analysis.runner import analyze\n"
        "with Checkpoint(sys.argv[1]) as c:\n"
        "    r = analyze(c).to_dict()\n"
        # VmHWM, not ru_maxrss: after exec, ru_maxrss still carries the forking parent's
        # (pytest's) peak; VmHWM belongs to this process's own address space
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "print(json.dumps({'rss': int(hwm.split()[1]),\n"
        "  'files': r['records']['file'], 'notes': r['records'].get('scan-note', []),\n"
        "  'iocs': [i['value'] for i in r['records'].get('ioc', [])]}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "CSI_NO_HASH_CACHE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    huge = next(f for f in out["files"] if f["path"] == "/tmp/huge.bin")
    assert huge["size"] == size
    assert len(huge["sha256"]) == 64
    assert {"note": f"/tmp/huge.bin: only the first {MAX_FILE_BYTES} bytes scanned"} in out["notes"]
    assert "stratum+tcp://pool.late.example:3333" not in out["iocs"]  # beyond the bound
    assert out["rss"] / 1024 < 200, out["rss"]  # KiB
