"""The csi command group: every command is found, and only its own module is imported."""

from __future__ import annotations

import subprocess
import sys

import click

from forensics.cli.main import COMMANDS, cli, main


def test_every_listed_command_resolves_to_a_command_of_that_name() -> None:
    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command)
        assert command.name == name
    assert cli.get_command(ctx, "no-such-command") is None


def test_help_lists_every_command(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--help"]) == 0
    listed = capsys.readouterr().out.split("Commands:")[1].split()
    for name in COMMANDS:
        assert name in listed


def test_unknown_command_is_one_line_and_exit_2(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["frobnicate"]) == 2
    assert "No such command 'frobnicate'" in capsys.readouterr().err


def test_memparse_does_not_import_the_receiver_registry_or_report_store() -> None:
    code = ("import sys; from forensics.cli.main import main\n"
            "try:\n    main(['memparse', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('forensics.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    loaded = out.strip().splitlines()[-1]
    assert "forensics.cli.memparse_cmd" in loaded
    for heavy in ("forensics.receiver", "forensics.capture", "forensics.report.store",
                  "forensics.cli.serve_cmds", "forensics.cli.analysis_cmds"):
        assert heavy not in loaded
