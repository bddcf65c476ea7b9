"""The analyzer contract and the context analyzers read from.

An analyzer is a small class with a ``name``, a ``version`` and a one-line
``description``. ``applies(ctx)`` returns None when it can run, or the reason
it cannot ("no Falco alert given"); ``run(ctx)`` yields :class:`Finding` and
:class:`Record` objects and never prints. Analyzers read the archive only
through the context: the :class:`~forensics.archive.checkpoint.Checkpoint`
records and the shared memory scan.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, ClassVar, Protocol

from forensics.analysis.findings import Finding, Record

if TYPE_CHECKING:
    from forensics.alert import Alert
    from forensics.analysis.memscan import MemoryScan
    from forensics.archive.checkpoint import Checkpoint


@dataclass
class Options:
    """What the user asked for."""

    alert: Alert | None = None  # the Falco alert that led to the capture
    yara_rules: list[str] = field(default_factory=list)  # extra YARA rule files
    reveal: bool = False  # show secrets in clear (reports redact them)


class Context:
    """Everything an analyzer may read: the checkpoint, the options, the memory scan."""

    def __init__(self, checkpoint: Checkpoint, options: Options | None = None) -> None:
        self.checkpoint = checkpoint
        self.options = options or Options()

    @cached_property
    def memory_scan(self) -> MemoryScan:
        """One pass over every process's memory, shared by all analyzers that need it."""
        from forensics.analysis.memscan import MemoryScan

        return MemoryScan.run(self.checkpoint, extra_rules=self.options.yara_rules)

    @cached_property
    def rootfs_paths(self) -> frozenset[str]:
        return frozenset(e.path for e in self.checkpoint.rootfs_diff)

    @cached_property
    def deleted_paths(self) -> frozenset[str]:
        return frozenset(self.checkpoint.deleted_files)


class Analyzer(Protocol):
    name: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str]

    def applies(self, ctx: Context) -> str | None: ...

    def run(self, ctx: Context) -> Iterator[Finding | Record]: ...
