"""``csi memparse``: checkpointctl's memparse (sizes, hexdump, search), right on CRIU 4.2."""

from __future__ import annotations

import sys

import click


@click.command()
@click.argument("archive", type=click.Path())  # checked when opened: one csi error line
@click.option("-p", "--pid", type=int, default=None, help="The process to dump or search.")
@click.option("-s", "--search", "literal", default=None, help="Search for this string.")
@click.option("-r", "--search-regex", "pattern", default=None,
              help="Search for this regular expression (bounded in time).")
@click.option("-c", "--context", type=int, default=0, show_default=True,
              help="Bytes of context either side of each match.")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False), default=None,
              help="Write the hexdump (every row) or the matches to this new file.")
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Seconds a regular expression search may take.")
def memparse(archive: str, pid: int | None, literal: str | None, pattern: str | None,
             context: int, output: str | None, timeout: float) -> None:
    """Process memory: sizes; a hexdump of one process (--pid); or a search (all processes
    unless --pid)."""
    from forensics.analysis import memparse as mp
    from forensics.cli.common import open_checkpoint, warn
    from forensics.errors import UsageError

    if literal is not None and pattern is not None:
        raise UsageError("give --search or --search-regex, not both")
    with open_checkpoint(archive, hash_eagerly=False) as ckpt:  # memparse shows no digest
        live = ckpt.live_pids()
        if pid is not None and pid not in live:
            known = ", ".join(map(str, live)) or "none"
            raise UsageError(f"{archive}: no process with pid {pid} and memory (pids: {known})")
        if literal is not None or pattern is not None:
            pids = [pid] if pid is not None else live
            matches = mp.search(ckpt, pids, literal=literal.encode() if literal else None,
                                pattern=pattern, context=context, timeout=timeout)
            out = mp.open_output(output) if output else sys.stdout
            count = 0
            try:
                out.write(f"{'PID':<7} {'Address':<16}  {'Instance':>8}  Match\n")
                for count, m in enumerate(matches, 1):
                    out.write(f"{m.pid:<7} {m.address:016x}  {count:>8}  {m.match}\n")
            finally:
                if out is not sys.stdout:
                    out.close()
            if count == 0:
                what = literal if literal is not None else pattern
                where = f"PID {pid}" if pid is not None else "any process"
                click.echo(f'No matches for pattern "{what}" in the memory of {where}', err=True)
        elif pid is not None:
            memory = ckpt.memory(pid)
            if output:
                click.echo(f"\nWriting memory pages content for process ID {pid} from "
                           f"checkpoint: {archive} to file: {output}...")
                with mp.open_output(output) as f:
                    mp.hexdump(memory, f, compact=False)
            else:
                click.echo(f"\nDisplaying memory pages content for process ID {pid} from "
                           f"checkpoint: {archive}\n")
                mp.hexdump(memory, sys.stdout, compact=True)
        else:
            from forensics.report.terminal import human_size

            click.echo(f"\nDisplaying processes memory sizes from {archive}\n")
            click.echo(f"{'PID':<6} {'Process name':<16} {'Memory size':<13} Shared memory size")
            for row in mp.sizes(ckpt):
                click.echo(f"{row.pid:<6} {row.comm:<16} {human_size(row.memory):<13} "
                           f"{human_size(row.shared)}")
        warn(ckpt.warnings)
