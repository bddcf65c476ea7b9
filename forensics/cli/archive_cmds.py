"""checkpointctl's commands under csi: ``show``, ``inspect``, ``list``, ``diff``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from forensics.cli.common import open_checkpoint, stdout, warn
from forensics.cli.output import dump, output_option

if TYPE_CHECKING:
    from forensics.archive.checkpoint import Checkpoint
    from forensics.views.checkpoint_json import Sections

# Heavier modules (CRIU decoding, rich) are imported inside the commands, so
# that `csi` starts fast whatever the command.


def _collect(paths: tuple[str, ...], build: Callable[[Checkpoint], dict[str, Any]]) -> list[
    dict[str, Any]
]:
    out = []
    for path in paths:
        with open_checkpoint(path) as ckpt:
            out.append(build(ckpt))
    return out


# Archive paths are checked when opened (csi's one-line errors), not by click:
# a directory or a missing file is an ArchiveError like any other bad archive.
@click.command()
@click.argument("archives", nargs=-1, required=True, type=click.Path())
@output_option()
def show(archives: tuple[str, ...], fmt: str) -> None:
    """Overview of checkpoint archives: container, image, engine, sizes, pod."""
    from forensics.views import checkpoint_terminal as terminal
    from forensics.views.checkpoint_json import Sections, inspect_dict

    rows = _collect(archives, lambda c: inspect_dict(c, Sections()))
    if fmt != "text":
        dump(rows, fmt)
    else:
        stdout().print(terminal.show_table(rows))
    for row in rows:
        warn(row.get("warnings", []))


@click.command()
@click.argument("archives", nargs=-1, required=True, type=click.Path())
@click.option("--ps-tree", is_flag=True, help="Show the process tree.")
@click.option("--ps-tree-cmd", is_flag=True, help="Process tree with full command lines.")
@click.option("--ps-tree-env", is_flag=True, help="Process tree with environment variables.")
@click.option("--files", is_flag=True, help="Open files of each process.")
@click.option("--sockets", is_flag=True, help="Open sockets and queued TCP data.")
@click.option("--mounts", is_flag=True, help="The container's mounts.")
@click.option("--stats", is_flag=True, help="CRIU dump statistics.")
@click.option("--metadata", is_flag=True, help="Pod, namespace and annotations.")
@click.option("--rootfs", is_flag=True, help="File-system changes, deleted files, /dev/shm.")
@click.option("--all", "everything", is_flag=True, help="Everything above.")
@click.option("--pid", type=int, default=None, help="Only this process and its descendants.")
@output_option()
@click.option("--reveal", is_flag=True,
              help="Show secrets in environments and command lines in clear (redacted by "
                   "default, shown by a keyed fingerprint).")
def inspect(archives: tuple[str, ...], everything: bool, pid: int | None, fmt: str,
            reveal: bool, **flags: bool) -> None:
    """Everything a checkpoint holds, as checkpointctl's tree or JSON (its key names).

    Secrets (passwords, tokens, keys in environments and command lines) are
    redacted unless --reveal is given.
    """
    from forensics.analysis.redact import Redactor
    from forensics.views import checkpoint_terminal as terminal
    from forensics.views.checkpoint_json import Sections

    if everything:
        sections = Sections.everything(pid)
    else:
        if pid is not None and not any(flags.values()):
            flags["ps_tree"] = True  # --pid alone shows that part of the tree
        sections = Sections(pid=pid, **flags)
    redactor = Redactor(reveal=reveal)
    rows = [redactor.processes(row) for row in
            _collect(archives, lambda c: _checked_inspect(c, sections))]
    if fmt != "text":
        dump(rows, fmt)
        for row in rows:
            warn(row.get("warnings", []))
        return
    console = stdout()
    for row in rows:
        path = row["archive"]["path"]
        console.print(f"\nDisplaying container checkpoint tree view from {path}\n", markup=False)
        console.print(terminal.inspect_tree(row))


def _checked_inspect(ckpt: Checkpoint, sections: Sections) -> dict[str, Any]:
    from forensics.views.checkpoint_json import inspect_dict

    if sections.pid is not None and ckpt.process(sections.pid) is None:
        pids = ", ".join(str(p.pid) for p in ckpt.processes) or "none"
        raise click.UsageError(f"{ckpt.path}: no process with pid {sections.pid} (pids: {pids})")
    return inspect_dict(ckpt, sections)


@click.command(name="list")
@click.argument("folders", nargs=-1, type=click.Path(file_okay=False))
@output_option()
def list_cmd(folders: tuple[str, ...], fmt: str) -> None:
    """Checkpoint archives in FOLDERS (default: the kubelet's /var/lib/kubelet/checkpoints)."""
    from forensics.archive.listing import DEFAULT_DIR, scan
    from forensics.views import checkpoint_terminal as terminal

    found, warnings = scan(list(folders) or [DEFAULT_DIR])
    rows = [c.as_dict() for c in found]
    if fmt != "text":
        dump(rows, fmt)
    elif rows:
        stdout().print(terminal.list_table(rows))
    else:
        click.echo("no checkpoint archives found", err=True)
    warn(warnings)


@click.command()
@click.argument("a", type=click.Path())
@click.argument("b", type=click.Path())
@click.option("--reveal", is_flag=True,
              help="Show secrets in environments and command lines in clear.")
@click.option("-o", "--output", "--format", "fmt", type=click.Choice(["json", "yaml"]),
              default="json", show_default=True, help="Output format (--format: an alias).")
def diff(a: str, b: str, reveal: bool, fmt: str) -> None:
    """What changed from checkpoint A to checkpoint B of the same container (JSON or YAML).

    Secrets in command lines and environments are redacted unless --reveal.
    """
    from forensics.analysis.redact import Redactor
    from forensics.archive.diff import diff_checkpoints

    with open_checkpoint(a) as ca, open_checkpoint(b) as cb:
        result = Redactor(reveal=reveal).tree(diff_checkpoints(ca, cb))
        if not result["same_container"]:
            click.echo("csi: warning: the two archives are of different containers", err=True)
        dump(result, fmt)
        warn(ca.warnings + cb.warnings)
