"""One YARA pass over every process's memory and every changed file.

csi's extraction patterns (``rules/extract.yar``: URLs, stagers, wallets,
credentials) are compiled together with the default rule set, so memory is
read once, in chunks, whatever the number of analyzers that want it. Those
shipped rules declare prefilters (see :mod:`forensics.analysis.prefilter`):
YARA runs only on the windows of a chunk where one of them can match. The
user's rules (``--yara``) are a second set, scanned in full unless every one
of them declares a prefilter too. Chunks overlap so that a match across a
chunk boundary is found once. Work is bounded: hits per rule and process are
capped, files are scanned up to a size limit, and YARA itself has a timeout
per call.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from typing import Any

import yara

from forensics.analysis.prefilter import Prefilter, PrefilterError
from forensics.archive.checkpoint import Checkpoint
from forensics.errors import CriuImageError, CsiError, UsageError

CHUNK = 8 << 20
OVERLAP = 4096
MAX_HITS_PER_RULE = 2000  # per process (or file) and rule: enough evidence, bounded memory
MAX_FILE_BYTES = 256 << 20  # a changed file is scanned up to this size
YARA_TIMEOUT = 60  # seconds per YARA call
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


@dataclass(frozen=True)
class RuleSet:
    """Compiled YARA rules, and where they can match (None: anywhere, scan in full)."""

    rules: yara.Rules
    prefilter: Prefilter | None

    def match(self, data: memoryview) -> list[tuple[int, list[Any]]]:
        """(offset in ``data``, YARA matches) for each part of ``data`` scanned."""
        windows = self.prefilter.windows(data) if self.prefilter is not None else None
        if windows is None:
            return [(0, self.rules.match(data=data, timeout=YARA_TIMEOUT))]
        return [(start, self.rules.match(data=data[start:end], timeout=YARA_TIMEOUT))
                for start, end in windows]


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
    def run(cls, ckpt: Checkpoint, *, extra_rules: Iterable[str] = (),
            prefilter: bool = True) -> MemoryScan:
        """Scan ``ckpt``; ``prefilter=False`` makes YARA read every byte (the reference
        the prefiltered scan is tested against)."""
        rules = compile_rule_sets(list(extra_rules), prefilter=prefilter)
        scan = cls()
        start = time.perf_counter()
        # YARA and Hyperscan release the GIL while they scan: pieces are mapped (not
        # copied) and scanned on a small pool, a bounded number in flight.
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            for process in ckpt.processes:
                if not process.has_state:
                    continue
                try:
                    memory = ckpt.memory(process.pid)
                except (CriuImageError, CsiError) as exc:
                    scan.errors.append(f"pid {process.pid}: memory unreadable ({exc})")
                    continue
                extents = memory.extents()
                pieces: list[tuple[int, Mapper]] = [
                    (e.vaddr + done, partial(memory.mapped, e.offset + done, take))
                    for e in extents for done, take in _pieces(e.size)]
                scan._scan(pool, rules, pieces, pid=process.pid)
                scan.bytes_scanned += sum(e.size for e in extents)
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
                    pieces = [(done, partial(ckpt.source.mapped, located, done, take))
                              for done, take in _pieces(size)]
                    scan._scan(pool, rules, pieces, path=entry.path)
                    scan.bytes_scanned += size
        scan.seconds = time.perf_counter() - start
        return scan

    def _scan(
        self, pool: ThreadPoolExecutor, rules: list[RuleSet], pieces: list[tuple[int, Mapper]],
        *, pid: int | None = None, path: str | None = None,
    ) -> None:
        counts: dict[tuple[str, str], int] = {}
        seen: set[tuple[str, str, int]] = set()
        in_flight: deque[tuple[int, Future[list[tuple[int, list[Any]]]]]] = deque()

        def collect() -> None:
            base, future = in_flight.popleft()
            try:
                matches = future.result()
            except yara.TimeoutError:
                self.errors.append(f"{_where(pid, path)}: YARA timed out at 0x{base:x}")
                return
            except (yara.Error, CsiError) as exc:
                self.errors.append(f"{_where(pid, path)}: scan failed at 0x{base:x}: {exc}")
                return
            for offset, found in matches:
                self._record(found, base + offset, pid, path, counts, seen)

        for base, mapper in pieces:
            in_flight.append((base, pool.submit(_scan_piece, rules, mapper)))
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


Mapper = Callable[[], AbstractContextManager[memoryview]]
"""Maps one piece of memory or of a file, for as long as its ``with`` block lasts."""


def _pieces(size: int) -> Iterator[tuple[int, int]]:
    """(offset, length) of the pieces scanned over ``size`` bytes: CHUNK apart, each
    OVERLAP bytes longer, so that a match across a boundary is seen whole."""
    for done in range(0, size, CHUNK):
        yield done, min(CHUNK + OVERLAP, size - done)


def _scan_piece(rules: list[RuleSet], mapper: Mapper) -> list[tuple[int, list[Any]]]:
    """(offset in the piece, YARA matches) of every rule set over one mapped piece."""
    with mapper() as data:
        return [part for rule_set in rules for part in rule_set.match(data)]


def shipped_sources() -> dict[str, str]:
    """namespace -> rule file: csi's extraction patterns and its default set."""
    return {
        "extract": str(resources.files("forensics.analysis") / "rules" / "extract.yar"),
        "default": str(resources.files("analyzers") / "rules" / "default.yar"),
    }


def compile_rule_sets(extra: list[str], *, prefilter: bool = True) -> list[RuleSet]:
    """The shipped rules, then the user's (``--yara`` files) if any: two sets, so
    that user rules without prefilters do not make the shipped ones scan in full."""
    sets = [_compile(shipped_sources(), prefilter)]
    if extra:
        user = {f"user{index}" if index else "user": path for index, path in enumerate(extra)}
        sets.append(_compile(user, prefilter))
    return sets


def _compile(sources: dict[str, str], prefilter: bool) -> RuleSet:
    try:
        rules = yara.compile(filepaths=sources)
    except yara.SyntaxError as exc:
        raise UsageError("YARA rules do not compile", why=str(exc),
                         hint="check the file given to --yara") from None
    except yara.Error as exc:
        raise UsageError("cannot load YARA rules", why=str(exc)) from None
    try:
        return RuleSet(rules, Prefilter.for_rules(rules) if prefilter else None)
    except PrefilterError as exc:
        raise UsageError("YARA rules declare a prefilter that does not compile", why=str(exc),
                         hint="csi_prefilter is a Hyperscan regular expression") from None
