"""The csi command line: every command is found, and only its own module is imported;
the fast command (memparse) runs without click and behaves the same through the group."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from forensics.cli.entry import FAST
from forensics.cli.main import COMMANDS, cli, main
from tests.conftest import LISTENER, archive_path


def test_every_listed_command_resolves_to_a_command_of_that_name() -> None:
    ctx = click.Context(cli)
    assert cli.list_commands(ctx) == sorted([*COMMANDS, *FAST])
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command)
        assert command.name == name
    assert cli.get_command(ctx, "no-such-command") is None


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    listed = capsys.readouterr().out.split("Commands:")[1].split()
    for name in [*COMMANDS, *FAST]:
        assert name in listed


def test_unknown_command_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "No such command 'frobnicate'" in capsys.readouterr().err


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip().splitlines()[-1]


def test_memparse_runs_without_click_and_builds_no_records() -> None:
    loaded = _run(
        "import sys\nfrom forensics.cli.entry import fast_command\n"
        f"code = fast_command('memparse').main([{archive_path(LISTENER)!r}, '--pid', '1', "
        "'--search', 'nc'])\n"
        "print(code, sorted(m for m in sys.modules if m.startswith(('forensics', 'click'))))")
    assert loaded.startswith("0 ")
    assert "forensics.cli.memparse_cmd" in loaded and "forensics.archive.memory" in loaded
    for absent in ("click", "forensics.cli.main", "forensics.archive.model",
                   "forensics.archive.metadata", "forensics.receiver", "forensics.report"):
        assert f"'{absent}" not in loaded


def test_memparse_through_the_group_and_directly_agree(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    from forensics.cli.memparse_cmd import main as memparse_main

    for args in (["--pid", "1", "--search", "nc", "-c", "3"], ["--pid", "9999"],
                 ["-o", "json"], ["--format", "yaml", "-s", "nc"], ["--pid", "1", "-o", "json"],
                 ["--pid", "x"], ["-s", "a", "-r", "b"], []):
        argv = [archive_path(LISTENER), *args] if args else []
        direct = memparse_main(argv), capsys.readouterr()
        grouped = main(["memparse", *argv]), capsys.readouterr()
        assert direct == grouped


def test_memparse_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from forensics.cli.memparse_cmd import main as memparse_main

    assert memparse_main([archive_path(LISTENER), "--pid", "x"]) == 2
    assert capsys.readouterr().err == ("csi: error: memparse: argument -p/--pid: invalid int "
                                       "value: 'x' (see csi memparse --help)\n")
    assert memparse_main([]) == 2
    assert "the following arguments are required: archive" in capsys.readouterr().err
    assert memparse_main(["--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: csi memparse ")
