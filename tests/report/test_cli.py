"""`csi analyze --save` and `csi report list/show/open/export/verify/key/reindex`."""

from __future__ import annotations

import json
import re
import webbrowser
from pathlib import Path

import pytest

from forensics.cli.main import main
from tests.conftest import CRIU41, DATA, PAYMENTS, archive_path, truth_for

ALERT = str(DATA / "falco" / "reverse-shell-payments-sidekick.json")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def save(capsys: pytest.CaptureFixture[str], archive: str, *extra: str) -> str:
    """`csi analyze --save`; the stored report holds exactly the findings it printed."""
    code, out, err = run(capsys, "analyze", "--save", "--format", "json", *extra,
                         archive_path(archive))
    assert code == 0, err
    match = re.search(r"csi: report ([0-9a-f]{12}) saved in (.*)$", err, re.MULTILINE)
    assert match, err
    stored = json.loads((Path(match.group(2)) / "report.json").read_bytes())
    printed = json.loads(out)
    assert stored["findings"] == printed["findings"]
    assert stored["custody"]["archive"]["sha256"] == printed["archive"]["sha256"]
    return match.group(1)


def test_analyze_save_then_list_show_export_verify(
        capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "bob")
    rid = save(capsys, PAYMENTS, "--alert", ALERT, "--reason", "pager #42")
    other = save(capsys, CRIU41)

    code, out, _ = run(capsys, "report", "list", "--output", "json")
    rows = json.loads(out)
    assert [r["id"] for r in rows] == [other, rid]
    assert rows[1]["trigger"] == "bob: pager #42"
    assert rows[1]["archive_sha256"] == truth_for(PAYMENTS)["sha256"]
    assert (rows[0]["verdict"], rows[0]["namespace"]) == ("high", None)

    code, out, _ = run(capsys, "report", "list", "--severity", "critical", "--since", "1h")
    assert code == 0 and rid in out and other not in out and "CRITICAL" in out
    code, out, _ = run(capsys, "report", "list", "-n", "payments", "--pod", "payments-*")
    assert rid in out and other not in out

    code, out, _ = run(capsys, "report", "show", rid[:6])
    assert code == 0
    assert "Verdict: CRITICAL" in out and "analysed by bob: pager #42" in out
    assert "[9] sh -i" in out and "process.reverse-shell" in out
    assert truth_for(PAYMENTS)["sha256"] in out

    stored = home / "reports" / rid
    for fmt, name in (("json", "report.json"), ("html", "report.html"), ("md", "report.md")):
        target = tmp_path / f"out.{fmt}"
        code, _, err = run(capsys, "report", "export", rid, "--format", fmt, "-f", str(target))
        assert code == 0, err
        assert target.read_bytes() == (stored / name).read_bytes()

    code, out, err = run(capsys, "report", "verify", rid)
    assert code == 0, err
    assert out.splitlines()[-1] == f"report {rid}: verified"
    assert "(this installation's key)" in out

    code, out, err = run(capsys, "report", "verify", str(tmp_path / "out.json"))
    assert code == 3 and "FAILED  renderings: manifest.json: missing beside " in out
    code, out, _ = run(capsys, "report", "verify", "--json-only", str(tmp_path / "out.json"))
    assert code == 0 and "skip  renderings: not checked (--json-only): only report.json" in out
    assert out.splitlines()[-1] == f"report {rid}: verified (report.json only: --json-only)"

    opened: list[str] = []

    def fake_open(url: str) -> bool:
        opened.append(url)
        return True

    monkeypatch.setattr(webbrowser, "open", fake_open)
    code, _, err = run(capsys, "report", "open", "latest")
    assert code == 0 and opened == [(home / "reports" / other / "report.html").as_uri()]


def test_verify_failure_is_exit_3_and_names_the_change(
        capsys: pytest.CaptureFixture[str], home: Path) -> None:
    rid = save(capsys, CRIU41)
    html = home / "reports" / rid / "report.html"
    html.write_bytes(html.read_bytes().replace(b"csi evidence report", b"csi evidence rep0rt"))
    code, out, err = run(capsys, "report", "verify", rid)
    assert code == 3
    assert "FAILED  renderings: report.html: sha256 " in out
    assert err.startswith(f"csi: error: report {rid} FAILED verification: report.html: sha256 ")
    assert len(err.splitlines()) == 1


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    code, _, err = run(capsys, "analyze", "--reason", "x", archive_path(CRIU41))
    assert (code, err) == (2, "csi: error: --reason is recorded in a saved report: add --save\n")
    code, _, err = run(capsys, "analyze", "--save", "--reveal", archive_path(CRIU41))
    assert (code, err) == (2, "csi: error: --save with --reveal: reports never hold secrets "
                              "in clear\n")
    code, _, err = run(capsys, "report", "show", "abcdef")
    assert code == 2 and err.startswith("csi: error: no report 'abcdef'")
    code, _, err = run(capsys, "report", "list", "--since", "yesterday")
    assert code == 2 and err.startswith("csi: error: --since: 'yesterday' is neither")
    code, out, _ = run(capsys, "report", "list")
    assert code == 0 and out.startswith("no reports (store: ")


def test_key_and_reindex(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    rid = save(capsys, CRIU41)
    code, out, _ = run(capsys, "report", "key")
    fingerprint = out.splitlines()[0].removeprefix("fingerprint ")
    report = json.loads((home / "reports" / rid / "report.json").read_bytes())
    assert report["signature"]["key_fingerprint"] == fingerprint
    assert "-----BEGIN PUBLIC KEY-----" in out
    (home / "reports" / "index.sqlite3").unlink()
    code, out, _ = run(capsys, "report", "reindex")
    assert out.startswith("1 report(s) indexed, 0 folder(s) left out")
    code, out, _ = run(capsys, "report", "verify", "--key-fingerprint", fingerprint, rid)
    assert code == 0
