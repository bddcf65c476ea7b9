"""Progress bars for blob transfers (push, pull, capture) on a terminal, and nothing else.

The registry backends report ``progress(bytes_done, bytes_total)`` as a blob
moves (:data:`forensics.storage.base.Progress`). :func:`transfer_bars`
gives such a hook drawing a rich bar on stderr when stderr is a terminal, and
``None`` otherwise: piped or logged output gets no escape codes, and the
transfer no calls at all.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID


class TransferBars:
    """One bar per transfer; :meth:`start` begins the next (``push``, then ``pull``)."""

    def __init__(self, console: Console) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        self.console = console
        self.bar: RichProgress = Progress(
            TextColumn("{task.description:>10}"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), console=console, transient=True)
        self.label = "transfer"
        self.task: TaskID | None = None

    def start(self, label: str) -> None:
        """End the current bar; the next bytes reported go to a new one named ``label``."""
        if self.task is not None:
            self.bar.remove_task(self.task)
            self.task = None
        self.label = label

    def __call__(self, done: int, total: int) -> None:
        if self.task is None:
            self.task = self.bar.add_task(self.label, total=total or None)
        self.bar.update(self.task, completed=done, total=total or None)


@contextlib.contextmanager
def transfer_bars(label: str = "transfer") -> Iterator[TransferBars | None]:
    """Bars on stderr while the block runs if stderr is a terminal, else ``None``."""
    if not sys.stderr.isatty():
        yield None
        return
    from forensics.cli.common import stderr

    bars = TransferBars(stderr())
    bars.label = label
    with bars.bar:
        yield bars
