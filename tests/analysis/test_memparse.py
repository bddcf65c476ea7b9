"""csi memparse: sizes, hexdump and search, against the truth files and checkpointctl 1.3."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from forensics.analysis import memparse
from forensics.archive.checkpoint import Checkpoint
from forensics.cli.main import main
from forensics.errors import UsageError
from tests.conftest import CRIU41, LISTENER, SHOP, archive_path, truth_for


def test_sizes_match_the_truth(archive: str) -> None:
    truth = {p["pid"]: p["memory_pages_bytes"] for p in truth_for(archive)["processes"]}
    with Checkpoint(archive_path(archive)) as ckpt:
        assert {row.pid: row.memory for row in memparse.sizes(ckpt)} == truth


def test_search_on_criu42_finds_what_checkpointctl_misses() -> None:
    with Checkpoint(archive_path(SHOP)) as ckpt:
        hits = list(memparse.search(ckpt, [17], literal=b"stratum+tcp://", context=0))
        assert [(m.pid, hex(m.address), m.match) for m in hits] == [
            (17, "0x2cc97720", "stratum+tcp://")]
        every = list(memparse.search(ckpt, [1, 7, 17, 20, 22], literal=b"AKIAIOSFODNN7EXAMPLE"))
        assert len(every) == 1024  # one per 4 KiB page of the 2 MiB mapping, in 17 and its child
        assert {m.pid for m in every} == {17, 20}
        assert hex(every[0].address) == "0x7feaea600008"


def test_search_context_and_non_printables() -> None:
    with Checkpoint(archive_path(CRIU41)) as ckpt:
        hits = list(memparse.search(ckpt, [1], literal=b"AKIA", context=5))
    # the same rows checkpointctl 1.3 prints for `memparse --pid 1 --search AKIA --context 5`
    assert [(f"{m.address:016x}", m.match) for m in hits] == [
        ("000000001fdb3abb", "echo AKIAEXAMP"),
        ("000000001fdb4a98", "?????AKIAEXAMP"),
        ("00007ffdaa42bf1b", "echo AKIAEXAMP"),
    ]


def test_regex_search_and_matches_across_processes() -> None:
    with Checkpoint(archive_path(CRIU41)) as ckpt:
        hits = list(memparse.search(ckpt, [1, 8, 12], pattern=r"API_[A-Z]+=[a-z0-9-]+"))
    assert [(m.pid, m.match) for m in hits] == [(1, "API_TOKEN=s3cr3t-demo"),
                                                (8, "API_TOKEN=s3cr3t-demo"),
                                                (12, "API_TOKEN=s3cr3t-demo")]


def test_catastrophic_regex_is_bounded(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["memparse", "--search-regex", "(.*)*x", "--timeout", "0.5",
                 archive_path(LISTENER)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("csi: error: the regular expression '(.*)*x' took too long")


def test_bad_regex_and_bad_pid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["memparse", "--search-regex", "(unclosed", archive_path(LISTENER)]) == 2
    assert "invalid regular expression '(unclosed'" in capsys.readouterr().err
    assert main(["memparse", "--pid", "99", archive_path(LISTENER)]) == 2
    assert "no process with pid 99 and memory (pids: 1, 7, 10)" in capsys.readouterr().err
    with Checkpoint(archive_path(LISTENER)) as ckpt, pytest.raises(UsageError):
        list(memparse.search(ckpt, [1], literal=b""))


def test_hexdump_compact_collapses_only_identical_rows() -> None:
    with Checkpoint(archive_path(CRIU41)) as ckpt:
        memory = ckpt.memory(1)
        full, compact = io.StringIO(), io.StringIO()
        rows_full = memparse.hexdump(memory, full, compact=False)
        rows_compact = memparse.hexdump(memory, compact, compact=True)
    assert rows_full == memory.present_bytes // 16 == 4608
    lines = compact.getvalue().splitlines()
    assert lines[2] == ("0000000000401000  48 83 ec 08 48 c7 c0 00 00 00 00 48 85 c0 74 02  "
                        "|H...H......H..t.|")
    assert lines[5] == "*"
    assert rows_compact < rows_full
    shown = set(full.getvalue().splitlines())
    assert all(line in shown for line in lines if line != "*")


def test_output_file_is_never_overwritten(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "dump.txt"
    assert main(["memparse", "--pid", "1", "-f", str(target), archive_path(LISTENER)]) == 0
    assert target.read_text().startswith("Address           Hexadecimal")
    assert main(["memparse", "--pid", "1", "-f", str(target), archive_path(LISTENER)]) == 2
    assert "already exists" in capsys.readouterr().err


CHECKPOINTCTL = shutil.which("checkpointctl")
needs_checkpointctl = pytest.mark.skipif(
    CHECKPOINTCTL is None,
    reason="checkpointctl 1.3 is not installed (deploy/dev/install-system.sh installs it)")


def ctl(*args: str) -> str:
    assert CHECKPOINTCTL is not None
    done = subprocess.run([CHECKPOINTCTL, *args], capture_output=True, text=True, check=True)
    return done.stdout


@needs_checkpointctl
def test_agrees_with_checkpointctl_on_criu41(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "a.tar.zst"
    shutil.copy(archive_path(CRIU41), archive)
    # full hexdump (-o): byte-identical
    ctl("memparse", "--pid", "1", "-o", str(tmp_path / "ctl.txt"), str(archive))
    assert main(["memparse", "--pid", "1", "-f", str(tmp_path / "csi.txt"), str(archive)]) == 0
    assert (tmp_path / "csi.txt").read_bytes() == (tmp_path / "ctl.txt").read_bytes()
    # search: same addresses and matches
    for pattern in ("AKIA", "PATH", "sleep"):
        rows = [line.split("|") for line in ctl("memparse", "--pid", "1", "--search", pattern,
                                                "--context", "3", str(archive)).splitlines()]
        theirs = [(r[1].strip(), r[2].strip()) for r in rows if len(r) > 3 and r[3].strip()
                  .isdigit()]
        capsys.readouterr()
        assert main(["memparse", "--pid", "1", "--search", pattern, "--context", "3",
                     str(archive)]) == 0
        ours = [tuple(line.split(None, 3)[1:4:2]) for line in
                capsys.readouterr().out.splitlines()[1:]]
        assert ours == theirs and theirs
    # sizes: same numbers
    table = ctl("memparse", str(archive))
    for pid, size in ((1, "72.0 KiB"), (8, "60.0 KiB"), (12, "60.0 KiB")):
        assert any(f"| {pid:>3} |" in line and size in line for line in table.splitlines())


@needs_checkpointctl
def test_checkpointctl_sees_nothing_on_criu42(tmp_path: Path) -> None:
    """Why csi reads field 5: checkpointctl 1.3 finds nothing in CRIU 4.2 memory."""
    archive = tmp_path / "shop.tar"
    shutil.copy(archive_path(SHOP), archive)
    out = ctl("memparse", "--pid", "17", "--search", "stratum", str(archive))
    assert 'No matches for pattern "stratum"' in out
    with Checkpoint(str(archive)) as ckpt:
        assert len(list(memparse.search(ckpt, [17], literal=b"stratum"))) == 1


def _naive_hits(ckpt: Checkpoint, pid: int, needle: bytes, context: int) -> list[tuple[int, str]]:
    """The reference: every extent read whole with pread, searched with bytes.find."""
    memory = ckpt.memory(pid)
    out = []
    for extent in memory.extents():
        data = memory.read_at_offset(extent.offset, extent.size)
        at = data.find(needle)
        while at >= 0:
            hit = data[max(0, at - context): at + len(needle) + context]
            out.append((extent.vaddr + at, hit.translate(memparse._PRINTABLE).decode()))
            at = data.find(needle, at + 1)
    return out


@pytest.mark.parametrize("piece", [4096, 4099, 65536])
def test_literal_search_over_mapped_pieces_finds_each_match_once(
        piece: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # small, unaligned pieces: matches straddle piece boundaries, contexts reach across them
    monkeypatch.setattr(memparse, "PIECE", piece)
    with Checkpoint(archive_path(SHOP)) as ckpt:
        for needle, context in ((b"AKIAIOSFODNN7EXAMPLE", 0), (b"/bin/", 7), (b"\x00\x01", 3)):
            want = _naive_hits(ckpt, 17, needle, context)
            got = [(m.address, m.match) for m in memparse.search(
                ckpt, [17], literal=needle, context=context, limit=10**9)]
            assert got == want
            assert want  # the needles are all there


def test_search_of_an_archive_cut_short_while_open_stops_at_its_end(tmp_path: Path) -> None:
    # the file shrinks after it was indexed (a cut copy, a full disk): the mapping must
    # stop at the end of the file (a page past it would be a SIGBUS), and what is left
    # is still searched
    copy = tmp_path / "copy.tar"
    shutil.copyfile(archive_path(SHOP), copy)
    # (no background hash: a file cut short while a piece of it is mapped and read is
    # a SIGBUS, see ArchiveSource._hash_in_background)
    with Checkpoint(str(copy), hash_eagerly=False) as ckpt:
        every = list(memparse.search(ckpt, [17], literal=b"AKIAIOSFODNN7EXAMPLE"))
        pages = ckpt.memory(17)._pages
        assert pages is not None
        os.truncate(copy, pages.offset + pages.size // 2)
        left = list(memparse.search(ckpt, [17], literal=b"AKIAIOSFODNN7EXAMPLE"))
    assert 0 < len(left) < len(every)
    assert [m.address for m in left] == [m.address for m in every[: len(left)]]


def test_live_pids_agree_with_the_process_records(archive: str) -> None:
    with Checkpoint(archive_path(archive)) as light, Checkpoint(archive_path(archive)) as full:
        assert light.live_pids() == [p.pid for p in full.processes if p.has_state]
        assert full.live_pids() == light.live_pids()  # from the loaded records
        assert "processes" not in light.__dict__  # the light path built no records


@pytest.mark.parametrize("window", [4096, 5000])
def test_regex_search_across_small_windows_finds_each_match_once(
        window: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import regex

    monkeypatch.setattr(memparse, "WINDOW", window)
    pattern = rb"AKIA[0-9A-Z]{16}|/bin/[a-z]+"
    with Checkpoint(archive_path(SHOP)) as ckpt:
        memory = ckpt.memory(17)
        want = []
        for extent in memory.extents():
            data = memory.read_at_offset(extent.offset, extent.size)
            want += [(extent.vaddr + m.start(), data[max(0, m.start() - 4): m.end() + 4]
                      .translate(memparse._PRINTABLE).decode())
                     for m in regex.finditer(pattern, data)]
        got = [(m.address, m.match) for m in memparse.search(
            ckpt, [17], pattern=pattern.decode(), context=4, limit=10**9)]
    assert got == want and len(want) > 500
