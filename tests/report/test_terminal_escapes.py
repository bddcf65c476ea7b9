"""Terminal escape sequences from the container never reach the responder's terminal.

File names in the rootfs diff are the attacker's (here planted into a real fixture
copy, as tests/report/hostile.py does): on 755c054 ``csi inspect --all``, ``csi analyze``,
``csi report show`` and ``csi list`` printed ``ESC ] 0 ; … BEL`` (retitle the window),
``ESC [ 2 J`` (clear the screen), carriage returns and newlines (overwrite or forge a
line) and U+202E (reverse the text) as they are. Every terminal rendering now writes
them out as text (``\\x1b``, ``\\x07``, ``\\n``, ``\\u202e``); the Markdown report too. The
JSON of record keeps the exact names.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from forensics.cli.main import main
from forensics.visible import visible
from tests.conftest import PAYMENTS, archive_path
from tests.report.hostile import hostile_archive as planted

TITLE = "tmp/\x1b]0;owned\x07.x"
CLEAR = "tmp/\x1b[2J\x1b[Hcleared"
FORGED = "tmp/a\rb\ncsi: note: all clear"
RTLO = "tmp/invoice\u202efdp.sh"
HOSTILE = (TITLE, CLEAR, FORGED, RTLO)
SHOWN = {  # how a terminal shows each name
    TITLE: "tmp/\\x1b]0;owned\\x07.x",
    CLEAR: "tmp/\\x1b[2J\\x1b[Hcleared",
    FORGED: "tmp/a\\rb\\ncsi: note: all clear",
    RTLO: "tmp/invoice\\u202efdp.sh",
}
RAW = ("\x1b", "\x07", "\r", "\u202e")


def hostile_archive(folder: Path, name: str = "hostile.tar") -> Path:
    """The reverse-shell fixture with four hostile file names in its rootfs diff."""
    return planted(folder, HOSTILE, name, tarfile.PAX_FORMAT)


def csi(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, err


def assert_no_raw_controls(text: str) -> None:
    found = sorted({repr(c) for c in text if c in RAW})
    assert not found, f"raw control characters reach the terminal: {found}"


def test_visible_writes_control_characters_out() -> None:
    assert visible("a\x1b[31mb\x07\t\n\r\x7f\x9b\u202e\u200bz") == \
        "a\\x1b[31mb\\x07\\t\\n\\r\\x7f\\x9b\\u202e\\u200bz"
    assert visible("ordinary /tmp/ünïcode ✓ [x]") == "ordinary /tmp/ünïcode ✓ [x]"


def test_escape_sequences_in_file_names_reach_no_terminal_in_inspect(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = hostile_archive(tmp_path)
    out, _ = csi(capsys, "inspect", "--all", str(path))
    assert_no_raw_controls(out)
    for name in HOSTILE:
        assert f"/{SHOWN[name]} (file, 21 B" in out
    assert not any(line.startswith("csi: note") for line in out.splitlines())
    out, _ = csi(capsys, "inspect", "--rootfs", "--format", "json", str(path))
    paths = {e["path"] for e in json.loads(out)[0]["rootfs_diff"]}
    assert {f"/{name}" for name in HOSTILE} <= paths  # the JSON of record is exact


def test_escape_sequences_in_file_names_reach_no_terminal_in_reports(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = hostile_archive(tmp_path)
    monkeypatch.setenv("CSI_HOME", str(tmp_path / "home"))
    out, _ = csi(capsys, "analyze", str(path))
    assert_no_raw_controls(out)
    out, _ = csi(capsys, "analyze", "--format", "md", str(path))
    assert_no_raw_controls(out)
    out, _ = csi(capsys, "analyze", "--save", "--reason", "escapes", str(path))
    folder = next(p for p in (tmp_path / "home" / "reports").iterdir() if p.is_dir())
    out, _ = csi(capsys, "report", "show", folder.name)
    assert_no_raw_controls(out)
    for name in HOSTILE:
        assert f"/{SHOWN[name]}" in out
    md = (folder / "report.md").read_text()
    assert_no_raw_controls(md)
    assert "`/tmp/\\x1b]0;owned\\x07.x`" in md
    assert "`/tmp/a\\rb\\ncsi: note: all clear`" in md
    doc = json.loads((folder / "report.json").read_text())
    assert {f"/{name}" for name in HOSTILE} <= {f["path"] for f in doc["files"]}
    out, _ = csi(capsys, "report", "list")
    assert_no_raw_controls(out)


def test_escape_sequences_in_archive_names_reach_no_terminal_in_list(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    shutil.copy(archive_path(PAYMENTS),
                folder / "checkpoint-\x1b]0;owned\x07_prod-api-2026-11-22T08:00:00Z.tar")
    (folder / "checkpoint-\x1b[2Jbroken.tar").write_bytes(b"not a tar")
    out, err = csi(capsys, "list", str(folder))
    assert_no_raw_controls(out + err)
    assert "checkpoint-\\x1b]0;owned\\x07_prod-api-2026-11-22T08:00:00Z.tar" in out
    assert err.startswith(f"csi: warning: {folder}/checkpoint-\\x1b[2Jbroken.tar: not a "
                          "readable checkpoint archive")
