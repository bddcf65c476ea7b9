"""Output helpers shared by the CLI commands: consoles, warnings, JSON, opening archives.

Free of click (and of json at import): ``csi memparse`` runs without either.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from forensics.archive.checkpoint import Checkpoint


def stdout() -> Console:
    """Standard output; wide when piped, so files and greps get whole lines."""
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=max(console.width, 240))
    return console


def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


@contextlib.contextmanager
def open_checkpoint(path: str, *, hash_cache: bool = True,
                    hash_eagerly: bool = True) -> Iterator[Checkpoint]:
    """Open an archive, with a progress bar on a terminal while decompressing."""
    from forensics.archive.checkpoint import Checkpoint

    if not sys.stderr.isatty():
        with Checkpoint(path, hash_cache=hash_cache, hash_eagerly=hash_eagerly) as ckpt:
            yield ckpt
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,
    )

    columns = (TextColumn("decompressing"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=stderr(), transient=True) as bar:
        task = bar.add_task("", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        ckpt = Checkpoint(path, progress=progress, hash_cache=hash_cache,
                          hash_eagerly=hash_eagerly)
    with ckpt:
        yield ckpt


def warn(warnings: list[str]) -> None:
    from forensics.visible import visible  # archive text: no escapes to the terminal

    for warning in warnings:
        sys.stderr.write(f"csi: warning: {visible(warning)}\n")
    sys.stderr.flush()


def dump_json(value: Any, stream: IO[str] | None = None) -> None:
    """``value`` as indented JSON to ``stream`` (default: standard output)."""
    import json  # not at the top: memparse's text output must start fast

    out = stream or sys.stdout

    # Streamed in batches: a large document is never held twice (as objects and as text).
    # A lone surrogate (from a forged "\udcff" in config.dump, say) cannot be encoded;
    # written as the same JSON escape it stays valid JSON, valid UTF-8.
    batch: list[str] = []
    held = 0
    for chunk in json.JSONEncoder(indent=2, ensure_ascii=False).iterencode(value):
        batch.append(chunk)
        held += len(chunk)
        if held >= JSON_BATCH:
            out.write("".join(batch).encode("utf-8", "backslashreplace").decode("utf-8"))
            batch, held = [], 0
    batch.append("\n")
    out.write("".join(batch).encode("utf-8", "backslashreplace").decode("utf-8"))


JSON_BATCH = 1 << 20  # characters of JSON written at a time
