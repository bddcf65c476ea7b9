"""One YARA pass over every process's memory and every changed file.

csi's extraction patterns (``rules/extract.yar``: URLs, stagers, wallets,
credentials) are compiled together with the default rule set and the user's
rules, so memory is read once, in chunks, whatever the number of analyzers
that want it. Chunks overlap so that a match across a chunk boundary is
found once. Work is bounded: hits per rule and process are capped, files are
scanned up to a size limit, and YARA itself has a timeout per chunk.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from typing import Any

import yara

from forensics.archive.checkpoint import Checkpoint
from forensics.errors import CriuImageError, CsiError, UsageError

CHUNK = 8 << 20
OVERLAP = 4096
MAX_HITS_PER_RULE = 2000  # per process (or file) and rule: enough evidence, bounded memory
MAX_FILE_BYTES = 256 << 20  # a changed file is scanned up to this size
YARA_TIMEOUT = 60  # seconds per chunk
WORKERS = max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class Hit:
    """A rule string matched at ``address`` (memory) or ``offset`` (file)."""

    namespace: str  # extract, default, user
    rule: str
    identifier: str
    data: bytes
    pid: int | None = None
    address: int | None = None
    path: str | None = None
    offset: int | None = None
    meta: tuple[tuple[str, Any], ...] = ()


@dataclass
class MemoryScan:
    hits: list[Hit] = field(default_factory=list)
    bytes_scanned: int = 0
    files_scanned: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)

    def by_rule(self, namespace: str, rule: str) -> list[Hit]:
        return [h for h in self.hits if h.namespace == namespace and h.rule == rule]

    def in_namespace(self, namespace: str) -> list[Hit]:
        return [h for h in self.hits if h.namespace == namespace]

    @classmethod
    def run(cls, ckpt: Checkpoint, *, extra_rules: Iterable[str] = ()) -> MemoryScan:
        rules = compile_rules(list(extra_rules))
        scan = cls()
        start = time.perf_counter()
        # YARA releases the GIL while it scans: chunks are read here and scanned on a
        # small pool, with a bounded number in flight (memory stays at a few chunks).
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            for process in ckpt.processes:
                if not process.has_state:
                    continue
                try:
                    memory = ckpt.memory(process.pid)
                except (CriuImageError, CsiError) as exc:
                    scan.errors.append(f"pid {process.pid}: memory unreadable ({exc})")
                    continue
                extents = [(e.vaddr, e.size, e.offset) for e in memory.extents()]
                scan._scan(pool, rules, _windows(memory.read_into, extents), pid=process.pid)
            for entry in ckpt.rootfs_diff + ckpt.devshm:
                if entry.type != "file" or entry.size == 0:
                    continue
                scan.files_scanned += 1
                if entry.size > MAX_FILE_BYTES:
                    scan.truncated.append(
                        f"{entry.path}: only the first {MAX_FILE_BYTES} bytes scanned")
                located = ckpt.nested_member(entry.path)
                if located is not None:
                    size = min(located.size, MAX_FILE_BYTES)
                    reader = partial(ckpt.source.pread_into, located)
                    scan._scan(pool, rules, _windows(reader, [(0, size, 0)]), path=entry.path)
        scan.seconds = time.perf_counter() - start
        return scan

    def _scan(
        self, pool: ThreadPoolExecutor, rules: yara.Rules,
        regions: Iterator[tuple[int, memoryview]], *, pid: int | None = None,
        path: str | None = None,
    ) -> None:
        counts: dict[tuple[str, str], int] = {}
        seen: set[tuple[str, str, int]] = set()
        in_flight: deque[tuple[int, Future[list[Any]]]] = deque()

        def collect() -> None:
            base, future = in_flight.popleft()
            try:
                matches = future.result()
            except yara.TimeoutError:
                self.errors.append(f"{_where(pid, path)}: YARA timed out at 0x{base:x}")
                return
            except yara.Error as exc:
                self.errors.append(f"{_where(pid, path)}: YARA failed at 0x{base:x}: {exc}")
                return
            self._record(matches, base, pid, path, counts, seen)

        for base, data in regions:
            self.bytes_scanned += len(data)
            in_flight.append((base, pool.submit(rules.match, data=data, timeout=YARA_TIMEOUT)))
            if len(in_flight) > 2 * WORKERS:
                collect()
        while in_flight:
            collect()
        for (namespace, rule), count in counts.items():
            if count >= MAX_HITS_PER_RULE:
                self.truncated.append(
                    f"{_where(pid, path)}: more than {MAX_HITS_PER_RULE} hits of {namespace}.{rule}"
                )

    def _record(self, matches: list[Any], base: int, pid: int | None, path: str | None,
                counts: dict[tuple[str, str], int], seen: set[tuple[str, str, int]]) -> None:
        for match in matches:
            key = (match.namespace, match.rule)
            for string in match.strings:
                for instance in string.instances:
                    where = base + instance.offset
                    if (match.rule, string.identifier, where) in seen:
                        continue  # found again in the overlap of the next chunk
                    if counts.get(key, 0) >= MAX_HITS_PER_RULE:
                        continue
                    seen.add((match.rule, string.identifier, where))
                    counts[key] = counts.get(key, 0) + 1
                    self.hits.append(Hit(
                        namespace=match.namespace, rule=match.rule,
                        identifier=string.identifier, data=bytes(instance.matched_data),
                        pid=pid, address=where if pid is not None else None,
                        path=path, offset=where if path is not None else None,
                        meta=tuple(sorted(match.meta.items())),
                    ))


def _where(pid: int | None, path: str | None) -> str:
    return f"pid {pid}" if pid is not None else str(path)


def _windows(
    read_into: Callable[[int, memoryview], int], extents: list[tuple[int, int, int]]
) -> Iterator[tuple[int, memoryview]]:
    """(address, bytes) windows over ``extents`` (address, size, offset), read into a ring
    of reusable buffers; each window starts with the previous window's last OVERLAP bytes
    when they are contiguous, so a match across a boundary is seen whole.

    The ring is larger than the number of windows the scanner keeps in flight, so a
    buffer is refilled only after its scan has been collected.
    """
    ring = [bytearray(OVERLAP + CHUNK) for _ in range(2 * WORKERS + 2)]
    turn = 0
    for address, size, offset in extents:
        tail = prev_len = 0
        prev: bytearray | None = None
        for done in range(0, size, CHUNK):
            buf = ring[turn % len(ring)]
            turn += 1
            if prev is not None and tail:
                buf[:tail] = prev[prev_len - tail : prev_len]
            n = read_into(offset + done, memoryview(buf)[tail : tail + min(CHUNK, size - done)])
            if n <= 0:
                break
            yield address + done - tail, memoryview(buf)[: tail + n]
            prev, prev_len = buf, tail + n
            tail = min(OVERLAP, prev_len)


def rule_sources(extra: list[str]) -> dict[str, str]:
    """namespace -> rule file path: extraction patterns, the default set, the user's."""
    sources = {
        "extract": str(resources.files("forensics.analysis") / "rules" / "extract.yar"),
        "default": str(resources.files("analyzers") / "rules" / "default.yar"),
    }
    for index, path in enumerate(extra):
        sources[f"user{index}" if index else "user"] = path
    return sources


def compile_rules(extra: list[str]) -> yara.Rules:
    sources = rule_sources(extra)
    try:
        return yara.compile(filepaths=sources)
    except yara.SyntaxError as exc:
        raise UsageError("YARA rules do not compile", why=str(exc),
                         hint="check the file given to --yara") from None
    except yara.Error as exc:
        raise UsageError("cannot load YARA rules", why=str(exc)) from None
