"""Issue 11 item 12: a compressed archive cannot expand without bound, nor outlive a SIGTERM.

The bomb is made the way an attacker would: a zstd frame of RLE blocks (4
bytes per 128 KiB of zeros) holding a tar whose one member is gigabytes of
zeros; 8 GiB fit in 263 KB. Decompression is bounded by ``$CSI_MAX_EXPANDED``
and by the free space of ``$TMPDIR`` (minus a margin); a real ``csi show``
killed with SIGTERM/SIGHUP/SIGINT mid-decompression removes its temporary copy.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from forensics.archive.source import ArchiveSource, zstd_incomplete
from forensics.archive.tempfiles import expansion_limit, max_expanded
from forensics.errors import ArchiveError, UsageError

CSI = str(Path(sys.executable).with_name("csi"))
_RLE_MAX = 128 << 10


def zstd_bomb(path: Path, member_size: int, name: str = "rootfs-diff.tar") -> Path:
    """A valid zstd file (one frame) of a tar holding ``member_size`` zeros, tiny on disk."""
    info = tarfile.TarInfo(name)
    info.size = member_size
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    zeros = member_size + 1024  # the member's data, then the end-of-archive blocks
    with open(path, "wb") as f:
        f.write((0xFD2FB528).to_bytes(4, "little"))
        f.write(bytes([0x00, 7 << 3]))  # no checksum, no content size; window 128 KiB
        f.write((len(header) << 3).to_bytes(3, "little") + header)  # a raw block
        while zeros > 0:
            n = min(_RLE_MAX, zeros)
            zeros -= n
            f.write((n << 3 | 1 << 1 | (zeros == 0)).to_bytes(3, "little") + b"\0")  # RLE
    return path


@pytest.fixture
def tmpdir_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private $TMPDIR, where the decompressed copies go."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read $TMPDIR
    return tmp


def test_zstd_bomb_is_a_valid_small_zstd_of_many_gib(tmp_path: Path) -> None:
    bomb = zstd_bomb(tmp_path / "bomb.tar.zst", 8 << 30)
    assert os.path.getsize(bomb) < 270_000
    assert zstd_incomplete(str(bomb)) is None


def test_zstd_bomb_stops_at_csi_max_expanded(tmp_path: Path, tmpdir_env: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = zstd_bomb(tmp_path / "bomb.tar.zst", 8 << 30)
    monkeypatch.setenv("CSI_MAX_EXPANDED", "16M")
    started = time.monotonic()
    with pytest.raises(ArchiveError) as caught:
        ArchiveSource(str(bomb))
    assert str(caught.value) == (f"{bomb}: expands to more than 16777216 bytes: the limit "
                                 "$CSI_MAX_EXPANDED is 16777216 bytes (nothing was kept; raise "
                                 "$CSI_MAX_EXPANDED if the archive is genuine)")
    assert time.monotonic() - started < 5
    assert os.listdir(tmpdir_env) == []


def test_archive_within_csi_max_expanded_still_opens(tmp_path: Path, tmpdir_env: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = zstd_bomb(tmp_path / "small.tar.zst", 4 << 20)
    monkeypatch.setenv("CSI_MAX_EXPANDED", "5M")
    with ArchiveSource(str(bomb)) as source:
        assert source.members["rootfs-diff.tar"].size == 4 << 20
        assert len(os.listdir(tmpdir_env)) == 1
    assert os.listdir(tmpdir_env) == []


def test_zstd_bomb_csi_show_is_one_line(tmp_path: Path, tmpdir_env: Path) -> None:
    bomb = zstd_bomb(tmp_path / "bomb.tar.zst", 8 << 30)
    env = {**os.environ, "CSI_MAX_EXPANDED": "64M", "CSI_HOME": str(tmp_path / "home")}
    done = subprocess.run([CSI, "show", str(bomb)], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.stderr == (f"csi: error: {bomb}: expands to more than 67108864 bytes: the "
                           "limit $CSI_MAX_EXPANDED is 67108864 bytes (nothing was kept; raise "
                           "$CSI_MAX_EXPANDED if the archive is genuine)\n")
    assert done.returncode == 2
    assert os.listdir(tmpdir_env) == []


def test_zstd_bomb_is_bounded_by_free_space_of_tmpdir(tmp_path: Path) -> None:
    """A real 64 MiB tmpfs as $TMPDIR (in a private mount namespace): the limit is its room."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1) to mount a small tmpfs privately")
    bomb = zstd_bomb(tmp_path / "bomb.tar.zst", 8 << 30)
    small = tmp_path / "small"
    small.mkdir()
    script = ('mount -t tmpfs -o size=64M csi-bomb-test "$TMPDIR" || exit 99\n'
              f'"{CSI}" show "$1"; code=$?\nls -A "$TMPDIR"; exit $code\n')
    env = {**os.environ, "TMPDIR": str(small), "CSI_HOME": str(tmp_path / "home")}
    env.pop("CSI_MAX_EXPANDED", None)
    done = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(bomb)],
                          capture_output=True, text=True, env=env, timeout=60)
    if done.returncode == 99:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    # 64 MiB free, a tenth kept free: 6710886 bytes margin
    room = (64 << 20) - (64 << 20) // 10
    assert done.stderr == (f"csi: error: {bomb}: expands to more than {room} bytes: {small} has "
                           f"{64 << 20} bytes free, of which {(64 << 20) // 10} are kept free "
                           "(nothing was kept; set $TMPDIR to a file system with room)\n")
    assert done.returncode == 2
    assert done.stdout == ""  # ls -A of the tmpfs: empty


def test_expansion_limit_is_the_smaller_of_the_setting_and_the_room(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSI_MAX_EXPANDED", "1000T")
    limit, why, hint = expansion_limit(str(tmp_path))
    st = os.statvfs(tmp_path)
    margin = min(1 << 30, st.f_blocks * st.f_frsize // 10)
    assert abs(limit - (st.f_bavail * st.f_frsize - margin)) < 64 << 20
    assert why.startswith(f"{tmp_path} has ") and why.endswith(f"of which {margin} are kept free")
    assert hint == "nothing was kept; set $TMPDIR to a file system with room"


@pytest.mark.parametrize(("text", "value"), [("", 64 << 30), ("1048576", 1 << 20),
                                             ("2G", 2 << 30), ("3GiB", 3 << 30), ("5k", 5 << 10)])
def test_csi_max_expanded_sizes(text: str, value: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSI_MAX_EXPANDED", text)
    assert max_expanded() == value


@pytest.mark.parametrize("text", ["lots", "-1", "0", "1e9", "9" * 30])
def test_csi_max_expanded_that_is_not_a_size_is_one_line(
        text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSI_MAX_EXPANDED", text)
    with pytest.raises(UsageError) as caught:
        max_expanded()
    assert str(caught.value) == (f"$CSI_MAX_EXPANDED={text[:40]!r} is not a size (give bytes, "
                                 "or a number with K, M, G or T (e.g. 64G))")


@pytest.mark.parametrize(("sig", "line", "code"), [
    (signal.SIGTERM, "csi: stopped by SIGTERM; temporary files removed", 143),
    (signal.SIGHUP, "csi: stopped by SIGHUP; temporary files removed", 129),
    (signal.SIGINT, "csi: aborted", 130),
])
def test_signal_during_decompression_leaves_no_temp_copy(
        sig: signal.Signals, line: str, code: int, tmp_path: Path, tmpdir_env: Path) -> None:
    err, returncode = stop_mid_decompression(tmp_path, tmpdir_env, [sig])
    assert [x for x in err.splitlines() if x] == [line]
    assert returncode == code
    assert os.listdir(tmpdir_env) == []


def test_repeated_sigterm_does_not_cut_the_cleanup_short(tmp_path: Path,
                                                         tmpdir_env: Path) -> None:
    err, returncode = stop_mid_decompression(tmp_path, tmpdir_env, [signal.SIGTERM] * 5)
    assert err.splitlines() == ["csi: stopped by SIGTERM; temporary files removed"]
    assert returncode == 143
    assert os.listdir(tmpdir_env) == []


def stop_mid_decompression(tmp_path: Path, tmpdir_env: Path,
                           signals: list[signal.Signals]) -> tuple[str, int]:
    """(stderr, exit status) of a real csi show of a bomb, sent ``signals`` mid-decompression."""
    bomb = zstd_bomb(tmp_path / "bomb.tar.zst", 8 << 30)
    env = {**os.environ, "CSI_HOME": str(tmp_path / "home")}
    env.pop("CSI_MAX_EXPANDED", None)
    proc = subprocess.Popen([CSI, "show", str(bomb)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 30
        copy = None
        while time.monotonic() < deadline and proc.poll() is None:
            copies = list(tmpdir_env.glob("csi-archive-*/archive.tar"))
            if copies and copies[0].stat().st_size > 32 << 20:
                copy = copies[0]
                break
            time.sleep(0.005)
        assert copy is not None, "the decompression never got under way"
        for sig in signals:
            proc.send_signal(sig)
            time.sleep(0.002)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return err, proc.returncode
