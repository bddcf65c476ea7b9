"""``csi memparse``: checkpointctl's memparse (sizes, hexdump, search), right on CRIU 4.2.

A FAST command (see :mod:`forensics.cli.entry`): parsed with argparse and run
without click, so that a search of a process's memory starts in ~50 ms.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from forensics.cli.guard import guarded
from forensics.cli.output import FORMATS, TEXT_ALIASES, normal
from forensics.errors import UsageError

DESCRIPTION = ("Process memory: sizes; a hexdump of one process (--pid); or a search (all "
               "processes unless --pid).")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"memparse: {message}", hint="see csi memparse --help")


def parser() -> argparse.ArgumentParser:
    from forensics.cli.entry import prog_name

    p = _Parser(prog=f"{prog_name()} memparse", description=DESCRIPTION)
    p.add_argument("archive", help="The checkpoint archive.")
    p.add_argument("-p", "--pid", type=int, help="The process to dump or search.")
    what = p.add_mutually_exclusive_group()
    what.add_argument("-s", "--search", dest="literal", metavar="STRING",
                      help="Search for this string.")
    what.add_argument("-r", "--search-regex", dest="pattern", metavar="REGEX",
                      help="Search for this regular expression (bounded in time).")
    p.add_argument("-c", "--context", type=int, default=0,
                   help="Bytes of context either side of each match (default: 0).")
    p.add_argument("-o", "--output", "--format", dest="fmt", default="text",
                   choices=[*FORMATS, *TEXT_ALIASES], metavar="{text,json,yaml}",
                   help="Output format of the sizes or the matches (default: text; "
                   "--format is an alias).")
    p.add_argument("-f", "--out-file", dest="out_file", metavar="FILE",
                   help="Write the hexdump (every row) or the matches to this new file.")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="Seconds a regular expression search may take (default: 30).")
    return p


def main(argv: list[str]) -> int:
    """``csi memparse ARGV...``: its exit status (usage errors are one line, status 2)."""

    def command() -> int:
        try:
            args = parser().parse_args(argv)
        except SystemExit as exc:  # --help: argparse printed it
            return int(exc.code or 0)
        memparse(args.archive, args.pid, args.literal, args.pattern, args.context,
                 args.out_file, args.timeout, normal(args.fmt))
        return 0

    return guarded(command)


def memparse(archive: str, pid: int | None, literal: str | None, pattern: str | None,
             context: int, output: str | None, timeout: float, fmt: str = "text") -> None:
    from forensics.analysis import memparse as mp
    from forensics.cli.common import open_checkpoint, warn

    searching = literal is not None or pattern is not None
    if fmt != "text" and pid is not None and not searching:
        raise UsageError(f"memparse: -o {fmt} is for the sizes and the matches; a hexdump "
                         "is text", hint="drop -o, or add --search")

    with open_checkpoint(archive, hash_eagerly=False) as ckpt:  # memparse shows no digest
        live = ckpt.live_pids()
        if pid is not None and pid not in live:
            known = ", ".join(map(str, live)) or "none"
            raise UsageError(f"{archive}: no process with pid {pid} and memory (pids: {known})")
        if searching:
            pids = [pid] if pid is not None else live
            matches = mp.search(ckpt, pids, literal=literal.encode() if literal else None,
                                pattern=pattern, context=context, timeout=timeout)
            if fmt != "text":
                _structured(output, fmt, [
                    {"pid": m.pid, "address": m.address, "instance": n, "match": m.match}
                    for n, m in enumerate(matches, 1)])
                warn(ckpt.warnings)
                return
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
                sys.stdout.flush()
                sys.stderr.write(f'No matches for pattern "{what}" in the memory of {where}\n')
        elif pid is not None:
            memory = ckpt.memory(pid)
            if output:
                print(f"\nWriting memory pages content for process ID {pid} from "
                      f"checkpoint: {archive} to file: {output}...")
                with mp.open_output(output) as f:
                    mp.hexdump(memory, f, compact=False)
            else:
                print(f"\nDisplaying memory pages content for process ID {pid} from "
                      f"checkpoint: {archive}\n")
                mp.hexdump(memory, sys.stdout, compact=True)
        elif fmt != "text":
            _structured(None, fmt, [{"pid": row.pid, "name": row.comm, "memory": row.memory,
                                     "shared": row.shared} for row in mp.sizes(ckpt)])
        else:
            from forensics.units import human_size
            from forensics.visible import visible  # comm is the process's own choice

            print(f"\nDisplaying processes memory sizes from {archive}\n")
            print(f"{'PID':<6} {'Process name':<16} {'Memory size':<13} Shared memory size")
            for row in mp.sizes(ckpt):
                print(f"{row.pid:<6} {visible(row.comm):<16} {human_size(row.memory):<13} "
                      f"{human_size(row.shared)}")
        sys.stdout.flush()
        warn(ckpt.warnings)


def _structured(output: str | None, fmt: str, rows: list[dict[str, object]]) -> None:
    """Rows as JSON or YAML, to standard output or to a new file (``--out-file``)."""
    from forensics.cli.output import dump

    if output is None:
        dump(rows, fmt)
        return
    from forensics.analysis import memparse as mp

    with mp.open_output(output) as f:
        dump(rows, fmt, f)
