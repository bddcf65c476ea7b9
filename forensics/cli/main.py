"""The ``csi`` command (also ``kubectl csi``).

A thin layer: parse options, make one library call, render. Every
:class:`~forensics.errors.CsiError` becomes one line on stderr and its exit
status here, in :func:`main`, and nowhere else.
"""

from __future__ import annotations

import os
import sys

import click

from forensics import __version__
from forensics.cli import (
    analysis_cmds,
    archive_cmds,
    capture_cmds,
    memparse_cmd,
    registry_cmds,
    report_cmds,
    serve_cmds,
    step_cmds,
    workflow_cmds,
)
from forensics.errors import CsiError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="csi")
def cli() -> None:
    """csi: forensic checkpoints of Kubernetes containers.

    Freeze a compromised container with the kubelet Checkpoint API, keep the
    archive as evidence, and explain what it holds.
    """


archive_cmds.register(cli)
analysis_cmds.register(cli)
memparse_cmd.register(cli)
capture_cmds.register(cli)
report_cmds.register(cli)
registry_cmds.register(cli)
serve_cmds.register(cli)
step_cmds.register(cli)
workflow_cmds.register(cli)


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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
