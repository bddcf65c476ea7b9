"""Running analyzers: failures are contained, user input errors are one clear line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from forensics.analysis import runner
from forensics.analysis.base import Context, Options
from forensics.analysis.findings import Finding, Record, Severity
from forensics.analysis.registry import Broken, discover
from forensics.archive.checkpoint import Checkpoint
from forensics.cli.main import main
from tests.conftest import LISTENER, PAYMENTS, SHOP, archive_path


class Exploding:
    """A third-party analyzer with a bug."""

    name = "exploding"
    version = "0.1"
    description = "raises"

    def applies(self, ctx: Context) -> str | None:
        return None

    def run(self, ctx: Context) -> Iterator[Finding | Record]:
        yield Finding("exploding.partial", Severity.HIGH, "never reported")
        raise RuntimeError("boom")


def test_a_failing_analyzer_does_not_abort_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    real, _ = discover()
    monkeypatch.setattr(runner, "discover", lambda: (
        [*real, Exploding()], [Broken("unloadable", "cannot load x:Y: ImportError")]))
    with Checkpoint(archive_path(SHOP)) as ckpt:
        result = runner.analyze(ckpt, Options()).to_dict()
    runs = {r["name"]: r for r in result["analyzers"]}
    assert runs["exploding"]["status"] == "failed"
    assert runs["exploding"]["reason"] == "RuntimeError: boom"
    assert runs["unloadable"]["status"] == "failed"
    assert runs["process"]["status"] == "ran"
    assert not [f for f in result["findings"] if f["rule"] == "exploding.partial"]
    assert any(f["rule"] == "process.exe-dropped" for f in result["findings"])


def test_selecting_analyzers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "--analyzer", "network", "--format", "json",
                 archive_path(LISTENER)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in result["analyzers"]] == ["network"]
    assert main(["analyze", "--analyzer", "nope", archive_path(LISTENER)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("csi: error: unknown analyzer nope (known: alert, filesystem")


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "--list"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["alert", "filesystem", "ioc", "network", "process", "secrets", "yara"]


def test_user_yara_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "mine.yar"
    rules.write_text('rule beacon_thread { meta: severity = "critical" '
                     'strings: $a = "ctl.sock" condition: $a }')
    assert main(["analyze", "--yara", str(rules), "--analyzer", "yara", "--format", "json",
                 archive_path(PAYMENTS)]) == 0
    result = json.loads(capsys.readouterr().out)
    mine = [f for f in result["findings"] if f["rule"] == "yara.beacon_thread"]
    # the implant and its forked child hold the socket path; the exec'd shell does not
    assert {f.get("pid") for f in mine if f.get("pid")} == {1, 11}
    assert all(f["severity"] == "critical" for f in mine)


def test_yara_rules_that_do_not_compile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "broken.yar"
    rules.write_text("rule broken { strings: $a = condition: $a }")
    assert main(["analyze", "--yara", str(rules), archive_path(LISTENER)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("csi: error: YARA rules do not compile: ")
    assert "broken.yar" in err and "Traceback" not in err


def test_missing_yara_file_and_bad_alert(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "--yara", str(tmp_path / "no.yar"), archive_path(LISTENER)]) == 2
    assert "no.yar: no such YARA rules file" in capsys.readouterr().err
    bad = tmp_path / "alert.json"
    bad.write_text("Critical: this is Falco's text output")
    assert main(["analyze", "--alert", str(bad), archive_path(LISTENER)]) == 2
    assert "the alert is not JSON" in capsys.readouterr().err


def test_markdown_escapes_archive_content(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "--format", "md", archive_path(SHOP)]) == 0
    md = capsys.readouterr().out
    assert md.startswith("# csi analysis: prod/shop-frontend-7d9c6b5f4-x2x9q \\(web\\)")
    assert "**Verdict: CRITICAL**" in md
    assert "/etc/passwd has a second uid-0 account 'sysadm'" in md
    assert "/tmp/.cache/.staging is deleted" in md


def test_tree_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", archive_path(PAYMENTS)]) == 0
    out = capsys.readouterr().out
    assert "verdict: CRITICAL" in out
    assert "has stdin/stdout/stderr on a TCP connection 127.0.0.1:46658 -> 127.0.0.1:31337" in out
