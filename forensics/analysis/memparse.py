"""checkpointctl's memparse, right on CRIU 4.2: sizes, hexdump, search.

Memory is read through the pagemap layer (:class:`ProcessMemory`), into one
reusable buffer, so a search over gigabytes costs a few MiB of RSS. Literal
searches use ``bytes.find``; regular expressions use the ``regex`` module
with a deadline, so a pattern that backtracks catastrophically stops with a
clear error instead of hanging. Matches are reported as checkpointctl
does: the address of the match, and the match with ``context`` bytes either
side, non-printable bytes shown as ``?``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import regex

from forensics.archive.checkpoint import Checkpoint
from forensics.archive.memory import ProcessMemory
from forensics.archive.model import Process
from forensics.errors import UsageError

WINDOW = 16 << 20
_PRINTABLE = bytes(b if 32 <= b < 127 else 0x3F for b in range(256))
_DOTS = bytes(b if 32 <= b < 127 else 0x2E for b in range(256))
HEADER = ("Address           Hexadecimal" + " " * 39 + "ASCII" + " " * 12 + "\n"
          + "-" * 85 + "\n")


@dataclass(frozen=True)
class MemorySize:
    pid: int
    comm: str
    memory: int  # bytes of pages in the checkpoint
    shared: int  # bytes of MAP_SHARED mappings


@dataclass(frozen=True)
class Match:
    pid: int
    address: int
    match: str  # with context, non-printable bytes as '?'


def sizes(ckpt: Checkpoint) -> list[MemorySize]:
    """Memory and shared-memory sizes of every live process, in process-tree order."""
    return [MemorySize(p.pid, p.comm, p.memory_pages_bytes, p.shared_memory_bytes)
            for p in _tree_order(ckpt) if p.has_state]


def _tree_order(ckpt: Checkpoint) -> list[Process]:
    """Parents before children, siblings by pid (checkpointctl's order is map-random)."""
    processes = ckpt.processes
    pids = {p.pid for p in processes}
    children: dict[int, list[Process]] = {}
    for p in sorted(processes, key=lambda p: p.pid):
        children.setdefault(p.ppid if p.ppid in pids else 0, []).append(p)
    out: list[Process] = []
    stack = list(reversed(children.get(0, [])))
    while stack:  # iterative: a hostile pstree cannot exhaust the recursion limit
        p = stack.pop()
        out.append(p)
        stack.extend(reversed(children.get(p.pid, [])))
    return out


def _runs(memory: ProcessMemory) -> Iterator[tuple[int, int, int]]:
    """(vaddr, size, offset) of present memory, adjacent runs merged (virtually and on disk)."""
    current: list[int] | None = None
    for run in memory.entries_in_order:
        contiguous = current and current[0] + current[1] == run.vaddr
        if contiguous and current and current[2] + current[1] == run.offset:
            current[1] += run.size
            continue
        if current:
            yield current[0], current[1], current[2]
        current = [run.vaddr, run.size, run.offset]
    if current:
        yield current[0], current[1], current[2]


def _windows(memory: ProcessMemory, overlap: int) -> Iterator[tuple[int, memoryview]]:
    """(vaddr, bytes) windows over present memory; consecutive windows overlap."""
    buf = bytearray(WINDOW + overlap)
    step = WINDOW
    for vaddr, size, offset in _runs(memory):
        done = 0
        while done < size:
            take = min(step + overlap, size - done)
            n = memory.read_into(offset + done, memoryview(buf)[:take])
            yield vaddr + done, memoryview(buf)[:n]
            if done + take >= size:
                break
            done += step


def search(
    ckpt: Checkpoint, pids: list[int], *, literal: bytes | None = None,
    pattern: str | None = None, context: int = 0, timeout: float = 30.0,
    limit: int = 100_000,
) -> Iterator[Match]:
    """Matches of ``literal`` or regex ``pattern`` in the memory of ``pids``."""
    if context < 0:
        raise UsageError("--context cannot be negative")
    compiled = None
    if pattern is not None:
        try:
            compiled = regex.compile(pattern.encode("utf-8", "surrogateescape"))
        except regex.error as exc:
            raise UsageError(f"invalid regular expression {pattern!r}", why=str(exc)) from None
    elif not literal:
        raise UsageError("the search pattern is empty")
    deadline = time.monotonic() + timeout
    found = 0
    for pid in pids:
        memory = ckpt.memory(pid)
        overlap = (len(literal) if literal else 4096) + 2 * context
        reported: set[int] = set()  # addresses reported in the previous window's overlap
        for base, window in _windows(memory, overlap):
            current: set[int] = set()
            for start, end in _find(window, literal, compiled, deadline, pattern):
                address = base + start
                if address in reported:
                    continue  # found again in the overlap with the previous window
                if start >= WINDOW:
                    current.add(address)
                lo, hi = max(0, start - context), min(len(window), end + context)
                found += 1
                yield Match(pid, address, bytes(window[lo:hi]).translate(_PRINTABLE).decode())
                if found >= limit:
                    return
            reported = current


def _find(window: memoryview, literal: bytes | None, compiled: regex.Pattern[bytes] | None,
          deadline: float, pattern: str | None) -> Iterator[tuple[int, int]]:
    if literal is not None and compiled is None:
        data = window.obj if isinstance(window.obj, bytearray) else bytes(window)
        end = len(window)
        at = data.find(literal, 0, end)
        while at >= 0:
            yield at, at + len(literal)
            at = data.find(literal, at + 1, end)
        return
    assert compiled is not None
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise UsageError(f"the regular expression {pattern!r} took too long",
                         hint="make it more specific")
    try:
        for m in compiled.finditer(window, timeout=remaining):
            yield m.start(), m.end()
    except TimeoutError:
        raise UsageError(f"the regular expression {pattern!r} took too long (it may backtrack "
                         "catastrophically)", hint="make it more specific") from None


def hexdump(memory: ProcessMemory, out: IO[str], *, compact: bool) -> int:
    """checkpointctl's hexdump: %016x address, 16 bytes a row; compact collapses repeats.

    Rows are collapsed when their bytes repeat the previous row's (checkpointctl
    compares only the ASCII column, which can hide differing binary rows).
    Returns the number of rows written.
    """
    out.write(HEADER)
    rows = 0
    for run in memory.entries_in_order:  # one pagemap entry at a time, as checkpointctl
        vaddr, size, offset = run.vaddr, run.size, run.offset
        prev: bytes | None = None
        duplicate = False
        for pos in range(0, size, WINDOW):
            data = memory.read_at_offset(offset + pos, min(WINDOW, size - pos))
            for i in range(0, len(data), 16):
                row = data[i : i + 16]
                if compact and row == prev:
                    if not duplicate:
                        out.write("*\n")
                    duplicate = True
                else:
                    hexes = "".join(f"{b:02x} " for b in row)
                    ascii_ = row.translate(_DOTS).decode()
                    out.write(f"{vaddr + pos + i:016x}  {hexes} |{ascii_}|\n")
                    duplicate = False
                    rows += 1
                prev = row
    return rows


def open_output(path: str) -> IO[str]:
    """The --output file, created new (never over an existing one)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{path}: already exists", hint="choose a new file name") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot create", why=exc.strerror or str(exc)) from None
    return os.fdopen(fd, "w", encoding="ascii", newline="\n")
