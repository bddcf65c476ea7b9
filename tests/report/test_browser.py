"""A real browser renders the reverse-shell report, and a hostile name runs nothing.

Needs Debian's ``chromium`` (installed by deploy/dev/install-system.sh); the
tests are skipped, saying so, where it is missing. Screenshots are kept in
the test's tmp_path and copied to tests/output/ (git-ignored).
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import pytest

from forensics.report.phrases import title
from forensics.report.publish import save_report
from forensics.report.signing import SigningKey
from forensics.report.store import ReportStore
from tests.conftest import PAYMENTS
from tests.report.conftest import Built, build
from tests.report.hostile import hostile_archive

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OUTPUT = Path(__file__).resolve().parents[1] / "output"
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (Debian package `chromium`; deploy/dev/install-system.sh "
           "installs it): the browser tests of the HTML report did NOT run")


def chromium(tmp_path: Path, *args: str) -> str:
    assert CHROMIUM is not None
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.iterdir()))}"
    profile.mkdir()
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Dom(HTMLParser):
    """The text inside each element with an id, and every tag seen (from --dump-dom)."""

    VOID: ClassVar[frozenset[str]] = frozenset({
        "meta", "link", "br", "img", "input", "hr", "wbr", "source", "col", "area", "base"})

    def __init__(self, html: str) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._open: list[str | None] = []
        self.title = ""
        self._in_title = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"
        if tag in self.VOID:
            return
        ident = dict(attrs).get("id")
        self._open.append(ident)
        if ident:
            self.text[ident] = ""

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False
        if tag not in self.VOID and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        for ident in self._open:
            if ident:
                self.text[ident] += data


def _save(built: Built, home: Path, key: SigningKey) -> Path:
    return save_report(built.document, store=ReportStore(home), key=key).file("report.html")


def test_chromium_renders_the_reverse_shell_report(built: dict[str, Built], home: Path,
                                                   key: SigningKey, tmp_path: Path) -> None:
    page = _save(built[PAYMENTS], home, key)
    dom = Dom(chromium(tmp_path, "--dump-dom", page.as_uri()))
    assert dom.title == title(built[PAYMENTS].document)
    assert dom.text["verdict"] == "CRITICAL"
    shell = next(i for i, f in enumerate(built[PAYMENTS].document["findings"])
                 if f["rule"] == "process.reverse-shell")
    finding = dom.text[f"finding-{shell}"]
    assert "pid 9 (sh -i) has stdin/stdout/stderr on a TCP connection 127.0.0.1:46658 -> " \
           "127.0.0.1:31337; the other end is held by pid 1, 11" in finding
    assert "process.reverse-shell by process" in finding
    pid9 = dom.text["pid-9"]
    assert pid9.startswith("[9] sh -i critical")  # upper case by CSS only
    assert "user root (0) exe /bin/busybox" in pid9
    assert f"#{shell} process.reverse-shell" in pid9
    assert not [t for t, _ in dom.tags if t == "script"]

    shot = tmp_path / "report-payments.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000  # a rendered page, not a blank one
    OUTPUT.mkdir(exist_ok=True)
    shutil.copyfile(shot, OUTPUT / shot.name)


def test_a_hostile_name_in_the_archive_runs_nothing(home: Path, key: SigningKey,
                                                    tmp_path: Path) -> None:
    hostile = build(PAYMENTS, str(hostile_archive(tmp_path)))
    page = _save(hostile, home, key)
    raw = chromium(tmp_path, "--dump-dom", page.as_uri())
    dom = Dom(raw)
    assert dom.title == title(hostile.document)
    assert "pwned" not in dom.title
    assert [t for t, _ in dom.tags if t in ("script", "img", "iframe", "object")] == []
    assert not any(k.startswith("on") for _, attrs in dom.tags for k in attrs)
    assert "/tmp/<script>document.title='pwned'</script>" in dom.text["files"]
    assert "/tmp/<img src=x onerror=alert(1)>" in dom.text["files"]
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in raw
    shot = tmp_path / "report-hostile.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    OUTPUT.mkdir(exist_ok=True)
    shutil.copyfile(shot, OUTPUT / shot.name)
