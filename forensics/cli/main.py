"""The ``csi`` command (also ``kubectl csi``).

A thin layer: parse options, make one library call, render. Every
:class:`~forensics.errors.CsiError` becomes one line on stderr and its exit
status here, in :func:`main`, and nowhere else.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from forensics import __version__
from forensics.errors import CsiError

COMMANDS = {  # command -> "module:object" in forensics.cli, imported only when it runs
    "show": "archive_cmds:show", "inspect": "archive_cmds:inspect",
    "list": "archive_cmds:list_cmd", "diff": "archive_cmds:diff",
    "analyze": "analysis_cmds:analyze", "memparse": "memparse_cmd:memparse",
    "capture": "capture_cmds:capture", "gc": "capture_cmds:gc",
    "report": "report_cmds:report",
    "push": "registry_cmds:push", "pull": "registry_cmds:pull",
    "serve": "serve_cmds:serve", "policy": "serve_cmds:policy",
    "step": "step_cmds:step", "workflow": "workflow_cmds:workflow",
}


class LazyGroup(click.Group):
    """A group whose commands are imported on use: `csi memparse` does not pay for
    the receiver's, the registry's and the report store's imports (~20 ms)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
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


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning csi errors into one line and an exit status."""
    try:
        cli.main(args=argv, prog_name="csi", standalone_mode=False)
    except CsiError as exc:
        click.echo(f"csi: error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("csi: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except BrokenPipeError:
        sys.stderr.close()  # `csi inspect … | head` is fine
        return 0
    except KeyboardInterrupt:
        click.echo("csi: interrupted", err=True)
        return 130
    except Exception as exc:  # a bug in csi: still one line, the traceback only on request
        if os.environ.get("CSI_DEBUG"):
            raise
        click.echo(f"csi: internal error: {type(exc).__name__}: {exc} (this is a bug in csi; "
                   "run again with CSI_DEBUG=1 for the traceback and report it)", err=True)
        return 70
    return 0


def run() -> None:
    """The console scripts' entry point: :func:`main`, then exit.

    Before exiting, every object is moved out of the garbage collector's sight
    (``gc.freeze``): the interpreter's final collection then has nothing to walk,
    which takes ~7 ms off every command. Files and temporary directories are
    closed by the commands themselves, never left to the collector.
    """
    code = main()
    import gc

    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
