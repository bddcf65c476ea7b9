"""Damaged and hostile archives: a clear error or a marked gap, never a traceback.

Every variant is built at test time from a real checkpoint (the small, plain
Podman one with CRIU 4.2: pids 1 ``sh``, 7 ``nc``, 10 ``sleep``). Each case
says which of the two outcomes is right, and why:

* **error**: nothing trustworthy can be shown, so ``csi inspect`` exits 2 with
  exactly one ``csi: error:`` line naming the archive (and the member, where
  there is one), and prints nothing on stdout;
* **warning**: the rest of the archive is fine, so ``csi inspect --all --format
  json`` exits 0, the damaged part is absent or empty, everything else equals
  the truth file, and a warning naming the archive and the member is both in
  the JSON ``warnings`` and on stderr as a ``csi: warning:`` line.

csi never extracts: the hostile-name cases also watch, with an audit hook,
every file csi opens or creates while it runs.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import hashlib
import io
import json
import os
import random
import signal
import stat
import struct
import subprocess
import sys
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import zstandard

from forensics.archive.criu.image import entries
from forensics.archive.criu.messages import IMG_COMMON_MAGIC, MAGICS
from forensics.archive.criu.wire import VARINT, encode_field, iter_fields
from forensics.cli.main import main
from tests.conftest import LISTENER, archive_path, truth_for

FIXTURE = archive_path(LISTENER)
TRUTH = truth_for(LISTENER)
CONTAINER = TRUTH["container"]
ARGV: dict[int, list[str]] = {p["pid"]: p["cmdline"] for p in TRUTH["processes"]}
ENV: dict[int, list[str]] = {p["pid"]: p["env"] for p in TRUTH["processes"]}
MEMORY: dict[int, int] = {p["pid"]: p["memory_pages_bytes"] for p in TRUTH["processes"]}
SHA256_OF_1_GIB_OF_ZEROS = "49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14"
HELLO_SHA256 = hashlib.sha256(b"hello\n").hexdigest()

Entry = tuple[tarfile.TarInfo, bytes | None]


# ---------------------------------------------------------------- building variants


@cache
def _fixture() -> tuple[Entry, ...]:
    out: list[Entry] = []
    with tarfile.open(FIXTURE) as tar:
        for info in tar:
            f = tar.extractfile(info) if info.isfile() else None
            out.append((info, f.read() if f is not None else None))
    return tuple(out)


def member(name: str) -> tarfile.TarInfo:
    return next(info for info, _ in _fixture() if info.name == name)


def member_bytes(name: str) -> bytes:
    data = next(data for info, data in _fixture() if info.name == name)
    assert data is not None
    return data


def write_tar(path: Path, members: Iterable[Entry]) -> str:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for original, data in members:
            info = copy.copy(original)
            if data is None:
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return str(path)


def variant(
    tmp_path: Path,
    *,
    replace: dict[str, bytes] | None = None,
    drop: Callable[[str], bool] = lambda name: False,
    extra: Iterable[Entry] = (),
    name: str = "variant.tar",
) -> str:
    """The fixture with members replaced, dropped, or added at the end."""
    replace = replace or {}
    kept = [(i, replace.get(i.name, d)) for i, d in _fixture() if not drop(i.name)]
    return write_tar(tmp_path / name, [*kept, *extra])


def regular(name: str, data: bytes) -> Entry:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 1_790_000_000
    return info, data


def special(name: str, kind: bytes, *, linkname: str = "", dev: tuple[int, int] = (0, 0)) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = kind, linkname, 0o644, 1_790_000_000
    info.devmajor, info.devminor = dev
    return info, None


def rootfs_with(tmp_path: Path, *extra: Entry, name: str = "rootfs.tar") -> bytes:
    """The fixture's rootfs-diff.tar (just ``tmp/``) with members added."""
    with tarfile.open(fileobj=io.BytesIO(member_bytes("rootfs-diff.tar"))) as tar:
        original = [(i, None) for i in tar]
    return Path(write_tar(tmp_path / name, [*original, *extra])).read_bytes()


def cut(tmp_path: Path, size: int, name: str = "cut.tar") -> str:
    path = tmp_path / name
    path.write_bytes(Path(FIXTURE).read_bytes()[:size])
    return str(path)


def patch_header(data: bytearray, offset: int, *, size: int, kind: bytes | None = None) -> None:
    """Give the tar header at ``offset`` another size (GNU base-256 if needed) and type."""
    if 0 <= size < 8**11:
        field = b"%011o\0" % size
    else:
        field = (b"\xff" if size < 0 else b"\x80") + (size % 256**11).to_bytes(11, "big")
    data[offset + 124 : offset + 136] = field
    if kind is not None:
        data[offset + 156 : offset + 157] = kind
    header = data[offset : offset + 148] + b" " * 8 + data[offset + 156 : offset + 512]
    data[offset + 148 : offset + 156] = b"%06o\0 " % sum(header)


def image_entries(data: bytes) -> list[tuple[int, bytes]]:
    """(offset of the size prefix, payload) of each entry of a CRIU image."""
    return [(off - 4, bytes(payload)) for off, payload in entries("image", data, kind_of(data))]


def kind_of(data: bytes) -> str:
    (first,) = struct.unpack_from("<I", data, 0)
    magic = struct.unpack_from("<I", data, 4)[0] if first == IMG_COMMON_MAGIC else first
    return next(kind for kind, value in MAGICS.items() if value == magic)


# ---------------------------------------------------------------- running csi


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


def csi(capsys: pytest.CaptureFixture[str], *args: str) -> Outcome:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    return Outcome(code, out, err)


def expect_error(capsys: pytest.CaptureFixture[str], path: str, *names: str) -> str:
    """Exit 2, nothing on stdout, one ``csi: error:`` line naming the archive and ``names``."""
    done = csi(capsys, "inspect", "--all", "--format", "json", path)
    assert done.code == 2, done.err
    assert done.out == ""
    lines = done.err.splitlines()
    assert len(lines) == 1, done.err
    assert lines[0].startswith(f"csi: error: {path}: "), lines[0]
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


def expect_warning(
    capsys: pytest.CaptureFixture[str], path: str, member_name: str, *details: str
) -> dict[str, Any]:
    """Exit 0 and valid JSON; every warning names the archive, one names the member."""
    done = csi(capsys, "inspect", "--all", "--format", "json", path)
    assert done.code == 0, done.err
    rows = json.loads(done.out)
    assert isinstance(rows, list) and len(rows) == 1
    row: dict[str, Any] = rows[0]
    warnings: list[str] = row.get("warnings", [])
    assert warnings and all(w.startswith(f"{path}: ") for w in warnings), warnings
    named = [w for w in warnings if member_name in w]
    assert named, warnings
    for detail in details:
        assert any(detail in w for w in named), (detail, named)
    assert done.err.splitlines() == [f"csi: warning: {w}" for w in warnings]
    return row


def processes(row: dict[str, Any]) -> dict[int, dict[str, Any]]:
    def walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield node
        for child in node.get("children", []):
            yield from walk(child)

    tree = row.get("process_tree")
    return {n["pid"]: n for n in walk(tree)} if tree else {}


def env_of(items: list[str]) -> dict[str, str]:
    return {k: v for k, _, v in (item.partition("=") for item in items)}


def assert_process_intact(node: dict[str, Any], pid: int) -> None:
    assert node["argv"] == ARGV[pid]
    assert node["environment_variables"] == env_of(ENV[pid])
    assert node["memory_pages_size"] == MEMORY[pid]


def assert_intact(row: dict[str, Any], *, but: Iterable[int] = (), identity: bool = True) -> None:
    """Everything except the processes in ``but`` equals the truth file."""
    if identity:
        assert row["id"] == CONTAINER["id"]
        assert row["container_name"] == CONTAINER["name"]
        assert row["image"] == CONTAINER["rootfsImageName"]
        assert row["engine"] == TRUTH["engine"]
    procs = processes(row)
    for pid in set(ARGV) - set(but):
        assert_process_intact(procs[pid], pid)


class Hung(BaseException):
    """csi did not finish in time (BaseException: csi's own handlers must not catch it)."""


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    def fire(signum: int, frame: FrameType | None) -> None:
        raise Hung("csi hung on a damaged archive")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(120)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def private_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where csi decompresses to, for checking that nothing is left behind."""
    where = tmp_path / "tmpdir"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    return where


# ---------------------------------------------------------------- watching the file system

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_CREATING_EVENTS = {"os.mkdir", "os.rename", "os.replace", "os.symlink", "os.link", "os.mknod"}
_RECORDERS: list[list[tuple[str, str]]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _RECORDERS:
        return
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        flags = args[2] if isinstance(args[2], int) else 0
        _RECORDERS[-1].append(("write" if flags & _WRITE_FLAGS else "read", os.fsdecode(args[0])))
    elif event in _CREATING_EVENTS and isinstance(args[0], (str, bytes, os.PathLike)):
        _RECORDERS[-1].append(("write", os.fsdecode(args[0])))


sys.addaudithook(_audit)  # inert unless file_activity() is recording


@contextlib.contextmanager
def file_activity() -> Iterator[list[tuple[str, str]]]:
    """(read|write, path) of every file opened or created inside the block."""
    record: list[tuple[str, str]] = []
    _RECORDERS.append(record)
    try:
        yield record
    finally:
        _RECORDERS.remove(record)


def assert_writes_only_to_its_own_places(activity: list[tuple[str, str]]) -> None:
    allowed = (
        os.path.join(tempfile.gettempdir(), "csi-archive-"),
        os.environ["CSI_CACHE_DIR"],
    )
    for what, path in activity:
        if what == "write" and "__pycache__" not in path:
            assert path.startswith(allowed), f"csi wrote {path}"
            assert "evil" not in path


def assert_no_evil_anywhere(tmp_path: Path) -> None:
    assert not any(p.name == "evil" for p in tmp_path.parent.rglob("*"))
    assert not os.path.lexists("/etc/evil")


# ---------------------------------------------------------------- the outer tar


def test_truncated_inside_pages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Warning: what precedes the cut is exactly what was written, so it is shown.

    The cut falls inside ``checkpoint/pages-2.img``; it and every later member
    (``pstree.img`` among them, so no process at all) are reported missing,
    while the container's identity, mounts and statistics are still right.
    """
    pages = member("checkpoint/pages-2.img")
    path = cut(tmp_path, pages.offset_data + pages.size // 2)
    row = expect_warning(
        capsys, path, "checkpoint/pages-2.img",
        f"the tar ends inside this member ({pages.size // 2} of {pages.size} bytes)",
    )
    assert any("checkpoint/pstree.img: missing" in w for w in row["warnings"])
    assert "process_tree" not in row and row["file_descriptors"] == []
    assert_intact(row, but=ARGV)
    assert row["mounts"] and row["statistics"]["pages_written"] == 50


def test_truncated_inside_the_last_header(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Warning: the cut is inside the header of the last member, ``rootfs-diff.tar``.

    tarfile alone would call this a clean end of archive; csi notices the
    partial header block, names the member from it, and every process is intact.
    """
    rootfs = member("rootfs-diff.tar")
    path = cut(tmp_path, rootfs.offset + 300)
    row = expect_warning(
        capsys, path, "rootfs-diff.tar", "the tar ends inside this member's header",
    )
    assert row["rootfs_diff"] == []
    assert_intact(row)


def test_truncated_before_the_checkpoint_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Error: cut inside ``config.dump``, nothing of the checkpoint is left to show.

    The line says the archive is damaged (not "not a checkpoint") and names
    the member where it ends.
    """
    config = member("config.dump")
    path = cut(tmp_path, config.offset_data + 1000)
    line = expect_error(capsys, path, "config.dump", "no readable checkpoint/ directory")
    assert "the tar ends inside this member (1000 of" in line


def test_truncated_inside_a_header_before_the_checkpoint_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Error: cut 200 bytes into the header of ``spec.dump``."""
    path = cut(tmp_path, member("spec.dump").offset + 200)
    expect_error(capsys, path, "spec.dump", "the tar ends inside this member's header")


def test_damaged_header(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Warning: a bad checksum in the header of ``rootfs-diff.tar`` (the last member).

    tarfile would silently take it as the end of the archive.
    """
    data = bytearray(Path(FIXTURE).read_bytes())
    data[member("rootfs-diff.tar").offset + 148] ^= 0x01
    path = tmp_path / "bad-header.tar"
    path.write_bytes(data)
    row = expect_warning(capsys, str(path), "rootfs-diff.tar: its tar header",
                         "is damaged (bad checksum)")
    assert row["rootfs_diff"] == []
    assert_intact(row)


@pytest.mark.parametrize("size", [-1024, -5])
def test_negative_size_in_a_header(
    size: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Warning: a GNU base-256 negative size (which could send tarfile backwards, for ever)."""
    data = bytearray(Path(FIXTURE).read_bytes())
    patch_header(data, member("rootfs-diff.tar").offset, size=size)
    path = tmp_path / "negative.tar"
    path.write_bytes(data)
    row = expect_warning(capsys, str(path), "rootfs-diff.tar", f"negative size ({size})")
    assert row["rootfs_diff"] == []
    assert_intact(row)


@pytest.mark.parametrize("kind", [b"L", b"x"])
def test_huge_extended_header(
    kind: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Warning: a GNU long-name (L) or pax (x) header claiming 1 TiB is refused, not read.

    tarfile would try to read it whole (MemoryError, or the whole archive into
    memory); csi stops there and keeps what came before.
    """
    data = bytearray(Path(FIXTURE).read_bytes())
    patch_header(data, member("rootfs-diff.tar").offset, size=1 << 40, kind=kind)
    path = tmp_path / "huge-header.tar"
    path.write_bytes(data)
    row = expect_warning(capsys, str(path), "rootfs-diff.tar: its tar header",
                         "a header claims 1099511627776 bytes")
    assert row["rootfs_diff"] == []
    assert_intact(row)


def test_no_checkpoint_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Error: without ``checkpoint/`` this is not a container checkpoint at all."""
    path = variant(tmp_path, drop=lambda name: name.startswith("checkpoint"))
    expect_error(capsys, path, "no checkpoint/ directory", "not a container checkpoint")


def test_missing_config_dump(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Warning: the container's name, id and image are unknown; processes are intact."""
    path = variant(tmp_path, drop=lambda name: name == "config.dump")
    row = expect_warning(capsys, path, "config.dump", "config.dump: missing")
    assert row["id"] == row["container_name"] == row["image"] == row["runtime"] == ""
    assert row["engine"] == "Podman"  # from spec.dump
    assert_intact(row, identity=False)


def test_config_dump_not_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Warning: as if missing, with the JSON parser's reason."""
    path = variant(tmp_path, replace={"config.dump": b'{"id": "8f160bf7e1'})
    row = expect_warning(capsys, path, "config.dump", "not valid JSON")
    assert row["id"] == row["container_name"] == ""
    assert_intact(row, identity=False)


def test_spec_dump_is_a_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Warning: no annotations and no mounts; the rest (config.dump, processes) intact."""
    path = variant(tmp_path, replace={"spec.dump": b'["not", "an", "object"]'})
    row = expect_warning(capsys, path, "spec.dump", "JSON list, expected an object")
    assert row["mounts"] == [] and "annotations" not in row["metadata"]
    assert row["id"] == CONTAINER["id"] and row["image"] == CONTAINER["rootfsImageName"]
    assert_intact(row, identity=False)


# ---------------------------------------------------------------- CRIU images


def test_core_with_bad_magic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Warning: pid 7's name, state and credentials are unknown; its memory is still read.

    ``core-7.img`` holds only what the core says (comm, state, creds); the
    command line and environment come from mm/pagemap/pages, which are fine.
    """
    core = bytearray(member_bytes("checkpoint/core-7.img"))
    core[4:8] = b"\xef\xbe\xad\xde"
    path = variant(tmp_path, replace={"checkpoint/core-7.img": bytes(core)})
    expect = "bad magic 0xdeadbeef, expected 0x55053847 (core) at byte 4"
    row = expect_warning(capsys, path, "checkpoint/core-7.img", expect)
    nc = processes(row)[7]
    assert nc["command"] == "" and nc["uid"] is None
    assert_process_intact(nc, 7)
    assert_intact(row)


def test_pstree_truncated_mid_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Warning: the tasks before the damaged entry are read; pid 10 (the third) is lost."""
    pstree = member_bytes("checkpoint/pstree.img")
    path = variant(tmp_path, replace={"checkpoint/pstree.img": pstree[:-3]})
    row = expect_warning(capsys, path, "checkpoint/pstree.img",
                         "only the first 2 tasks are read", "but only")
    assert set(processes(row)) == {1, 7}
    assert_intact(row, but=[10])


def test_absurd_entry_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Warning: ``mm-7.img`` claims a 4 GiB entry; nothing is allocated for it.

    Without mm, pid 7 has no known argv/envp areas or executable; its memory
    (pagemap and pages) is still measured, and the other processes are intact.
    """
    mm = bytearray(member_bytes("checkpoint/mm-7.img"))
    (offset, _), = image_entries(bytes(mm))
    mm[offset : offset + 4] = struct.pack("<I", 0xFFFFFFF0)
    path = variant(tmp_path, replace={"checkpoint/mm-7.img": bytes(mm)})
    row = expect_warning(capsys, path, "checkpoint/mm-7.img",
                         f"entry claims 4294967280 bytes but only {len(mm) - 12} remain")
    nc = processes(row)[7]
    assert "argv" not in nc and "environment_variables" not in nc and nc["exe"] is None
    assert nc["memory_pages_size"] == MEMORY[7]
    assert_intact(row, but=[7])


def test_pagemap_past_the_end_of_pages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Warning: pid 10's last pagemap entry claims 1000 pages more than pages-3.img holds.

    The entries before it are read (their bytes are where the pagemap says);
    from the bad entry on, memory is unreadable: that is where the stack, and
    so argv and envp, are.
    """
    pagemap = member_bytes("checkpoint/pagemap-10.img")
    *_, (offset, payload) = image_entries(pagemap)
    fields = list(iter_fields(payload))
    nr_pages = next(v for n, _, v in fields if n == 5)
    body = b"".join(
        encode_field(n, nr_pages + 1000 if n == 5 else v if w == VARINT else bytes(v))
        for n, w, v in fields
    )
    forged = pagemap[:offset] + struct.pack("<I", len(body)) + body
    path = variant(tmp_path, replace={"checkpoint/pagemap-10.img": forged})
    row = expect_warning(
        capsys, path, "checkpoint/pagemap-10.img",
        f"({nr_pages + 1000} pages) points past the end of checkpoint/pages-3.img (65536 bytes)",
    )
    sleep = processes(row)[10]
    assert "argv" not in sleep and "environment_variables" not in sleep
    assert sleep["memory_pages_size"] == MEMORY[10] - nr_pages * 4096
    assert_intact(row, but=[10])


# ---------------------------------------------------------------- hostile names and types


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_unsafe_names_in_the_outer_tar(
    compression: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Warning: ``../evil`` and ``/etc/evil`` are reported, never used as paths.

    Nothing is written anywhere but csi's own temporary copy and hash cache.
    """
    path = variant(tmp_path, extra=[regular("../evil", b"pwned\n"),
                                    regular("/etc/evil", b"pwned\n")])
    if compression == "gzip":
        Path(path + ".gz").write_bytes(gzip.compress(Path(path).read_bytes()))
        path += ".gz"
    with file_activity() as activity:
        row = expect_warning(capsys, path, "'../evil' has an unsafe name")
    assert any("'/etc/evil' has an unsafe name" in w for w in row["warnings"])
    assert len(row["warnings"]) == 2
    assert_intact(row)
    assert_writes_only_to_its_own_places(activity)
    if compression == "gzip":  # the watch does see csi's writes: its decompressed copy
        assert any(w == "write" and "/csi-archive-" in p for w, p in activity)
    assert_no_evil_anywhere(tmp_path)


def test_unsafe_names_in_rootfs_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Warning: the same inside ``rootfs-diff.tar``; its safe members are still listed."""
    rootfs = rootfs_with(tmp_path, regular("../evil", b"pwned\n"),
                         regular("/etc/evil", b"pwned\n"), regular("tmp/hello", b"hello\n"))
    path = variant(tmp_path, replace={"rootfs-diff.tar": rootfs})
    with file_activity() as activity:
        row = expect_warning(capsys, path, "rootfs-diff.tar: member '../evil' has an unsafe name")
    assert any("rootfs-diff.tar: member '/etc/evil'" in w for w in row["warnings"])
    assert [e["path"] for e in row["rootfs_diff"]] == ["/tmp", "/tmp/hello"]
    assert row["rootfs_diff"][1]["sha256"] == HELLO_SHA256
    assert_intact(row)
    assert_writes_only_to_its_own_places(activity)
    assert_no_evil_anywhere(tmp_path)


def test_links_and_devices_in_rootfs_diff(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No warning: links, devices and fifos are listed with their type, never followed or
    opened, and only regular files get a sha256."""
    rootfs = rootfs_with(
        tmp_path,
        special("tmp/link", tarfile.SYMTYPE, linkname="/etc/shadow"),
        special("tmp/mem", tarfile.CHRTYPE, dev=(1, 1)),
        special("tmp/sda", tarfile.BLKTYPE, dev=(8, 0)),
        special("tmp/pipe", tarfile.FIFOTYPE),
        regular("tmp/hello", b"hello\n"),
        special("tmp/hard", tarfile.LNKTYPE, linkname="tmp/hello"),
    )
    path = variant(tmp_path, replace={"rootfs-diff.tar": rootfs})
    with file_activity() as activity:
        done = csi(capsys, "inspect", "--all", "--format", "json", path)
    assert done.code == 0 and done.err == ""
    row = json.loads(done.out)[0]
    assert "warnings" not in row
    listed = {e["path"]: e for e in row["rootfs_diff"]}
    expected = {
        "/tmp/link": ("symlink", stat.S_IFLNK, "/etc/shadow"),
        "/tmp/mem": ("chardev", stat.S_IFCHR, None),
        "/tmp/sda": ("blockdev", stat.S_IFBLK, None),
        "/tmp/pipe": ("fifo", stat.S_IFIFO, None),
        "/tmp/hard": ("hardlink", stat.S_IFREG, "tmp/hello"),
    }
    for name, (kind, bits, linkname) in expected.items():
        entry = listed[name]
        assert (entry["type"], entry["size"], int(entry["mode"], 8)) == (kind, 0, bits | 0o644)
        assert "sha256" not in entry
        assert entry.get("linkname") == linkname
    assert listed["/tmp/hello"]["sha256"] == HELLO_SHA256
    assert_intact(row)
    opened = {p for _, p in activity}
    assert not opened & {"/etc/shadow", "/dev/mem", "/dev/sda", "/tmp/pipe"}
    assert_writes_only_to_its_own_places(activity)


def test_rootfs_diff_not_a_tar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Warning: the file-system changes are unknown; everything else is intact."""
    path = variant(tmp_path, replace={"rootfs-diff.tar": random.Random(7).randbytes(4096)})
    row = expect_warning(capsys, path, "rootfs-diff.tar: not a tar archive")
    assert row["rootfs_diff"] == []
    assert_intact(row)


def test_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    """No warning: a comm of raw bytes (prctl allows any), a rootfs file name that is not
    UTF-8 and a forged lone surrogate in config.dump still give valid UTF-8 JSON, even on
    a strict stdout (the installed ``csi``, in a child process)."""
    core = member_bytes("checkpoint/core-1.img")
    assert core.count(b"\x32\x02sh") == 1  # task_core_entry.comm (field 6) = "sh"
    config = json.loads(member_bytes("config.dump"))
    config["name"] = "\udcff"
    rootfs = rootfs_with(tmp_path, regular(b"tmp/\xffevil\xfe".decode("utf-8", "surrogateescape"),
                                           b"hello\n"))
    path = variant(tmp_path, replace={
        "checkpoint/core-1.img": core.replace(b"\x32\x02sh", b"\x32\x02\xff\xfe"),
        "config.dump": json.dumps(config).encode(),  # ensure_ascii: the escape "\udcff"
        "rootfs-diff.tar": rootfs,
    })
    done = subprocess.run(
        [str(Path(sys.executable).with_name("csi")), "inspect", "--all", "--format", "json", path],
        capture_output=True, timeout=60, check=False,
        env={**os.environ, "PYTHONIOENCODING": "utf-8:strict"},
    )
    assert (done.returncode, done.stderr) == (0, b"")
    row = json.loads(done.stdout.decode("utf-8"))[0]  # strict: raises on invalid UTF-8
    assert processes(row)[1]["command"] == "\\xff\\xfe"
    assert row["container_name"] == "\udcff"  # the same escape as in the archive
    assert [e["path"] for e in row["rootfs_diff"]] == ["/tmp", "/tmp/\\xffevil\\xfe"]


# ---------------------------------------------------------------- not archives at all


def test_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Error: an empty file holds nothing."""
    path = tmp_path / "empty.tar"
    path.touch()
    expect_error(capsys, str(path), "not a tar archive: empty file")


def test_random_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Error: not a tar (and no compression magic)."""
    path = tmp_path / "random.tar"
    path.write_bytes(b"\0junk" + random.Random(1).randbytes(20_000))
    expect_error(capsys, str(path), "not a tar archive")


def _gzip_bad_block(data: bytes) -> bytes:
    """A gzip stream whose second half starts with an invalid deflate block type."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as g:
        g.write(data[: len(data) // 2])
        g.flush(zlib.Z_FULL_FLUSH)  # byte-aligned: the next block header starts here
        at = buf.tell()
        g.write(data[len(data) // 2 :])
    out = bytearray(buf.getvalue())
    out[at] = 0xFF  # BFINAL=1, BTYPE=11: reserved
    return bytes(out)


def _gzip_bad_crc(data: bytes) -> bytes:
    out = bytearray(gzip.compress(data, mtime=0))
    out[-8] ^= 0xFF
    return bytes(out)


@pytest.mark.parametrize(
    ("name", "make", "says"),
    [
        ("deflate.tar.gz", _gzip_bad_block, "corrupt gzip data: Error -3 while decompressing"),
        ("crc.tar.gz", _gzip_bad_crc, "corrupt gzip data: CRC check failed"),
        ("cut.tar.gz", lambda d: gzip.compress(d, mtime=0)[:20_000],
         "corrupt gzip data: Compressed file ended before the end-of-stream marker"),
        ("cut.tar.zst", lambda d: zstandard.ZstdCompressor().compress(d)[:15_000],
         "corrupt zstd data: the file ends inside a frame"),
        ("cut-at-end.tar.zst", lambda d: zstandard.ZstdCompressor().compress(d)[:-1],
         "corrupt zstd data: the file ends 1 bytes before the end of its last frame"),
    ],
)
def test_damaged_compression(
    name: str, make: Callable[[bytes], bytes], says: str, tmp_path: Path,
    private_tmpdir: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Error: a damaged compressed stream cannot vouch for any of its content (a flipped
    bit may change bytes before it is detected), and its sha256 is not the evidence's.

    The partial decompressed copy is removed.
    """
    path = tmp_path / name
    path.write_bytes(make(Path(FIXTURE).read_bytes()))
    expect_error(capsys, str(path), says)
    assert list(private_tmpdir.iterdir()) == []


def test_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Error: csi's own line, not click's usage text."""
    expect_error(capsys, str(tmp_path), "not a regular file: it is a directory")


def test_a_fifo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Error, and no hang: opening a fifo for reading would wait for a writer."""
    fifo = tmp_path / "checkpoint.tar"
    os.mkfifo(fifo)
    expect_error(capsys, str(fifo), "not a regular file: it is a device, fifo or socket")


def test_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Error."""
    expect_error(capsys, str(tmp_path / "nowhere.tar"), "cannot open: No such file or directory")


def test_real_process_prints_one_line(tmp_path: Path) -> None:
    """Error, from the installed ``csi`` itself: one line, exit 2, no traceback."""
    path = tmp_path / "empty.tar"
    path.touch()
    done = subprocess.run([str(Path(sys.executable).with_name("csi")), "inspect", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"csi: error: {path}: not a tar archive: empty file\n"


# ---------------------------------------------------------------- bounded memory

_MEASURE = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=300)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"code": done.returncode, "out": done.stdout, "err": done.stderr,
                  "maxrss_kib": peak}))
"""


def _sparse_archive(path: Path, big: int) -> None:
    """The fixture, its rootfs-diff.tar replaced by a tar holding one file of ``big``
    zero bytes: written as a hole, so it costs no disk."""
    def header(name: str, size: int) -> bytes:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o644, 1_790_000_000
        return info.tobuf(tarfile.GNU_FORMAT)

    end = bytes(2 * tarfile.BLOCKSIZE)
    nested_size = tarfile.BLOCKSIZE + big + len(end)
    with open(path, "wb") as f:
        for info, data in _fixture():
            if info.name == "rootfs-diff.tar":
                continue
            f.write(info.tobuf(tarfile.GNU_FORMAT))
            if data:
                f.write(data + bytes(-len(data) % tarfile.BLOCKSIZE))
        f.write(header("rootfs-diff.tar", nested_size) + header("tmp/big.bin", big))
        f.seek(big, os.SEEK_CUR)
        f.write(end + end)


def test_a_1_gib_member_is_hashed_in_bounded_memory(tmp_path: Path) -> None:
    """No warning: a 1 GiB file in rootfs-diff.tar is listed and hashed by streaming,
    in a child process whose peak RSS stays under 150 MiB."""
    path = tmp_path / "big.tar"
    _sparse_archive(path, 1 << 30)
    assert path.stat().st_blocks * 512 < 16 << 20  # sparse indeed
    csi_bin = str(Path(sys.executable).with_name("csi"))
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, csi_bin, "inspect", "--rootfs", "--format", "json",
         str(path)],
        capture_output=True, text=True, timeout=600, check=True,
    )
    result = json.loads(done.stdout)
    assert result["code"] == 0 and result["err"] == "", result["err"]
    row = json.loads(result["out"])[0]
    big = next(e for e in row["rootfs_diff"] if e["path"] == "/tmp/big.bin")
    assert (big["size"], big["sha256"]) == (1 << 30, SHA256_OF_1_GIB_OF_ZEROS)
    assert result["maxrss_kib"] < 150 * 1024, f"peak RSS {result['maxrss_kib']} KiB"
    print(f"\n1 GiB member hashed with a peak RSS of {result['maxrss_kib'] / 1024:.0f} MiB")
