"""The ``csi`` command (also ``kubectl csi``).

A thin layer: parse options, make one library call, render. Every
:class:`~forensics.errors.CsiError` becomes one line on stderr and its exit
status in :func:`~forensics.cli.guard.guarded`, and nowhere else. The console
scripts start in :mod:`forensics.cli.entry`, which runs the fast commands
(``memparse``) without click.
"""

from __future__ import annotations

import importlib

import click

from forensics import __version__
from forensics.cli.entry import FAST, fast_command, prog_name
from forensics.cli.guard import guarded
from forensics.status import ExitStatus

COMMANDS = {  # command -> "module:object" in forensics.cli, imported only when it runs
    # (and the FAST commands of entry.py: memparse)
    "show": "archive_cmds:show", "inspect": "archive_cmds:inspect",
    "list": "archive_cmds:list_cmd", "diff": "archive_cmds:diff",
    "analyze": "analysis_cmds:analyze",
    "capture": "capture_cmds:capture", "gc": "capture_cmds:gc",
    "report": "report_cmds:report",
    "push": "registry_cmds:push", "pull": "registry_cmds:pull",
    "serve": "serve_cmds:serve", "policy": "serve_cmds:policy",
    "step": "step_cmds:step", "workflow": "workflow_cmds:workflow",
    "completion": "completion_cmds:completion",
}


class LazyGroup(click.Group):
    """A group whose commands are imported on use: `csi inspect` does not pay for
    the receiver's, the registry's and the report store's imports (~20 ms)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*COMMANDS, *FAST])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in FAST:
            return _forwarding(cmd_name)
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, name = target.split(":")
        command = getattr(importlib.import_module(f"forensics.cli.{module}"), name)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="csi")
def cli() -> None:
    """csi: forensic checkpoints of Kubernetes containers.

    Freeze a compromised container with the kubelet Checkpoint API, keep the
    archive as evidence, and explain what it holds.
    """


def _forwarding(name: str) -> click.Command:
    """A fast command as seen by the group: its arguments go to it untouched."""
    module = fast_command(name)

    def forward(args: tuple[str, ...]) -> int:
        return int(module.main(list(args)))

    return click.Command(
        name, callback=forward, help=module.DESCRIPTION, add_help_option=False,
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
        context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run the CLI: the command's exit status; csi errors as one line (see guarded).

    ``prog`` is the name usage lines show (default: ``kubectl csi`` when run as
    the kubectl plugin, else ``csi``)."""
    name = prog or prog_name()

    def invoke() -> int:
        try:
            code = cli.main(args=argv, prog_name=name, standalone_mode=False)
        except click.exceptions.Abort:
            click.echo("csi: aborted", err=True)
            return ExitStatus.INTERRUPTED
        except click.ClickException as exc:
            exc.show()
            return exc.exit_code
        return code if isinstance(code, int) else 0

    return guarded(invoke)


if __name__ == "__main__":  # pragma: no cover - `python -m forensics.cli.main ...`
    from forensics.cli.entry import run

    run()
