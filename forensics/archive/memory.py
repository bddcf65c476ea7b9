"""The memory layer: a process's virtual addresses -> bytes in ``pages-N.img``.

``pagemap-<pid>.img`` holds a ``pagemap_head{pages_id}`` and then
``pagemap_entry`` records. CRIU 4.2 writes the page count in field 5
(``nr_pages``) and leaves field 2 (``compat_nr_pages``) at 0; older CRIU
writes only field 2. Entries without flags are present (``PE_PRESENT``),
``in_parent`` means ``PE_PARENT``. Only present entries have bytes in the
pages file, back to back in pagemap order. Analyzers read memory only
through :class:`ProcessMemory`.
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from forensics.archive.criu.image import entries
from forensics.archive.criu.messages import (
    PAGEMAP_ENTRY,
    PAGEMAP_HEAD,
    PE_PARENT,
    PE_PRESENT,
)
from forensics.archive.criu.wire import WireError, decode
from forensics.errors import CriuImageError

if TYPE_CHECKING:
    from forensics.archive.source import ArchiveSource, Member

PAGE_SIZE = 4096
MAX_STRING_AREA = 16 << 20  # argv/envp areas larger than this are not read


@dataclass(frozen=True)
class PagemapEntry:
    """One decoded pagemap entry, with the count rule applied."""

    vaddr: int
    nr_pages: int
    flags: int

    @property
    def present(self) -> bool:
        return bool(self.flags & PE_PRESENT)


@dataclass(frozen=True)
class Pagemap:
    pages_id: int
    entries: tuple[PagemapEntry, ...]

    @property
    def present_pages(self) -> int:
        return sum(e.nr_pages for e in self.entries if e.present)


def entry_from_fields(fields: dict[str, Any]) -> PagemapEntry:
    """CRIU's pagemap rule (pagemap.proto): nr_pages (field 5) if present, else field 2."""
    nr_pages = fields["nr_pages"] if "nr_pages" in fields else fields.get("compat_nr_pages", 0)
    if "flags" in fields:
        flags = fields["flags"]
    elif fields.get("in_parent"):
        flags = PE_PARENT
    else:
        flags = PE_PRESENT
    return PagemapEntry(vaddr=fields.get("vaddr", 0), nr_pages=nr_pages, flags=flags)


def parse_pagemap(name: str, data: bytes) -> Pagemap:
    """Decode a ``pagemap-N.img``."""
    pages_id: int | None = None
    out: list[PagemapEntry] = []
    for offset, payload in entries(name, data, "pagemap"):
        try:
            if pages_id is None:
                pages_id = decode(PAGEMAP_HEAD, payload).get("pages_id", 0)
                continue
            out.append(entry_from_fields(decode(PAGEMAP_ENTRY, payload)))
        except WireError as exc:
            raise CriuImageError(name, f"malformed pagemap entry: {exc}", offset=offset) from None
    if pages_id is None:
        raise CriuImageError(name, "pagemap has no head entry")
    return Pagemap(pages_id=pages_id, entries=tuple(out))


@dataclass(frozen=True)
class Run:
    """Present pages: [vaddr, vaddr + size) stored at ``offset`` in the pages file."""

    vaddr: int
    size: int
    offset: int

    @property
    def end(self) -> int:
        return self.vaddr + self.size


class ProcessMemory:
    """Read a checkpointed process's memory by virtual address."""

    def __init__(
        self,
        source: ArchiveSource,
        pages: Member | None,
        pagemap: Pagemap,
        *,
        label: str,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self._source = source
        self._pages = pages
        self.label = label
        self.page_size = page_size
        self.warnings: list[str] = []
        available = pages.size if pages is not None else 0
        pages_name = pages.name if pages is not None else f"pages-{pagemap.pages_id}.img (missing)"
        runs: list[Run] = []
        offset = 0
        for entry in pagemap.entries:
            if not entry.present:
                continue
            size = entry.nr_pages * page_size
            if offset + size > available:
                self.warnings.append(
                    f"{label}: entry at 0x{entry.vaddr:x} ({entry.nr_pages} pages) points past "
                    f"the end of {pages_name} ({available} bytes); the rest of this process's "
                    "memory is unreadable"
                )
                break
            runs.append(Run(entry.vaddr, size, offset))
            offset += size
        self.entries_in_order: tuple[Run, ...] = tuple(runs)  # pagemap order = file order
        runs.sort(key=lambda r: r.vaddr)
        self.runs: tuple[Run, ...] = tuple(runs)
        self._starts = [r.vaddr for r in self.runs]
        self.present_bytes = offset

    def _run_at(self, addr: int) -> Run | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and addr < self.runs[i].end:
            return self.runs[i]
        return None

    def read(self, addr: int, size: int) -> bytes:
        """Read ``size`` bytes at ``addr``; pages not in the checkpoint read as zeros."""
        out = bytearray()
        end = addr + size
        while addr < end:
            run = self._run_at(addr)
            if run is None:
                i = bisect.bisect_right(self._starts, addr)
                gap_end = min(end, self.runs[i].vaddr) if i < len(self.runs) else end
                out += bytes(gap_end - addr)
                addr = gap_end
                continue
            take = min(end, run.end) - addr
            assert self._pages is not None
            out += self._source.pread(self._pages, run.offset + (addr - run.vaddr), take)
            addr += take
        return bytes(out)

    def read_at_offset(self, offset: int, size: int) -> bytes:
        """Bytes at ``offset`` of this process's pages file (see :attr:`runs`)."""
        return self._source.pread(self._pages, offset, size) if self._pages else b""

    def read_into(self, offset: int, buf: memoryview) -> int:
        """Fill ``buf`` from ``offset`` of the pages file, without allocating."""
        return self._source.pread_into(self._pages, offset, buf) if self._pages else 0

    @contextlib.contextmanager
    def mapped(self, offset: int, size: int) -> Iterator[memoryview]:
        """``size`` bytes at ``offset`` of the pages file (see :attr:`runs`), mapped
        rather than read (see :meth:`ArchiveSource.mapped`)."""
        if self._pages is None:
            yield memoryview(b"")
            return
        with self._source.mapped(self._pages, offset, size) as view:
            yield view

    def is_mapped(self, addr: int) -> bool:
        return self._run_at(addr) is not None

    def read_strings(self, start: int, end: int) -> tuple[str, ...] | None:
        """The NUL-separated strings in [start, end) (argv, envp); None if unreadable."""
        if end <= start or end - start > MAX_STRING_AREA:
            return () if end == start else None
        strings, _ = self.read_strings_bounded(start, end, MAX_STRING_AREA, end - start + 1)
        return strings

    def read_strings_bounded(self, start: int, end: int, max_bytes: int, max_strings: int
                             ) -> tuple[tuple[str, ...] | None, int]:
        """At most ``max_strings`` NUL-separated strings from the first ``max_bytes`` of
        [start, end), and how many bytes of the area they leave out (0: all of it).

        The area's size is the attacker's (a process can hold megabytes of NULs as its
        argv): only ``max_bytes`` are ever read. None if the area is unreadable."""
        if end == start:
            return (), 0
        if end < start or not self.is_mapped(start):
            return None, 0
        size = end - start
        take = min(size, max_bytes)
        raw = self.read(start, take)
        parts = raw.split(b"\0", max_strings)
        if len(parts) > max_strings:  # more strings than kept: the rest are counted
            parts = parts[:max_strings]
            omitted = size - sum(len(p) + 1 for p in parts)
        else:
            omitted = size - take  # the last string may be cut short
            if parts and parts[-1] == b"":
                parts.pop()
        strings = tuple(p.decode("utf-8", errors="backslashreplace") for p in parts)
        return strings, max(0, omitted)

    def extents(self) -> list[Run]:
        """Present memory as few runs as possible: entries contiguous both in the address
        space and in the pages file are merged (CRIU splits them at about 1 MiB)."""
        merged: list[Run] = []
        for run in self.entries_in_order:
            last = merged[-1] if merged else None
            if last and last.end == run.vaddr and last.offset + last.size == run.offset:
                merged[-1] = Run(last.vaddr, last.size + run.size, last.offset)
            else:
                merged.append(run)
        return merged

    def iter_chunks(self, chunk: int = 4 << 20) -> Iterator[tuple[int, bytes]]:
        """Yield (vaddr, bytes) over all present memory, ``chunk`` bytes at a time."""
        assert chunk > 0
        for run in self.extents():
            for done in range(0, run.size, chunk):
                take = min(chunk, run.size - done)
                yield run.vaddr + done, self.read_at_offset(run.offset + done, take)
