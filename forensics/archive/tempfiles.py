"""Temporary decompressed copies: how large they may grow, and removing them on signals.

A compressed archive is the attacker's too: 263 KB of zstd can expand to
gigabytes. A decompression may write at most :func:`expansion_limit` bytes:
``$CSI_MAX_EXPANDED`` (default 64 GiB; a number of bytes, or with a K, M, G
or T suffix, binary), and never more than the free space of its directory
minus a margin (1 GiB, or a tenth of a smaller file system).

While a temporary copy exists, :func:`removed_on_signals` makes SIGTERM and
SIGHUP raise :class:`Terminated` in the main thread (SIGINT already raises
KeyboardInterrupt), so ``finally`` blocks and context managers remove the
copy; the CLI then exits with one line and status 128 + the signal number.
Once one arrived, further ones are ignored (the process is on its way out).
Handlers someone else installed (the receiver's event loop) are left alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from forensics.errors import Terminated, UsageError

MAX_EXPANDED = 64 << 30
MARGIN = 1 << 30
_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def max_expanded() -> int:
    """``$CSI_MAX_EXPANDED`` in bytes, else the default."""
    text = os.environ.get("CSI_MAX_EXPANDED", "").strip()
    if not text:
        return MAX_EXPANDED
    number, suffix = text.upper().removesuffix("IB").removesuffix("B"), ""
    if number[-1:] in _SUFFIXES:
        number, suffix = number[:-1], number[-1]
    if not number.isdigit() or len(number) > 18 or int(number) == 0:
        raise UsageError(f"$CSI_MAX_EXPANDED={text[:40]!r} is not a size",
                         hint="give bytes, or a number with K, M, G or T (e.g. 64G)")
    return int(number) * _SUFFIXES[suffix]


def expansion_limit(directory: str) -> tuple[int, str, str]:
    """(bytes a decompression into ``directory`` may write, why that many, what to do)."""
    configured = max_expanded()
    try:
        st = os.statvfs(directory)
    except OSError:
        st = None
    if st is not None:
        total = st.f_blocks * st.f_frsize
        free = st.f_bavail * st.f_frsize
        margin = min(MARGIN, total // 10)
        room = max(0, free - margin)
        if room < configured:
            return room, f"{directory} has {free} bytes free, of which {margin} are kept free", \
                "nothing was kept; set $TMPDIR to a file system with room"
    return configured, f"the limit $CSI_MAX_EXPANDED is {configured} bytes", \
        "nothing was kept; raise $CSI_MAX_EXPANDED if the archive is genuine"


_lock = threading.Lock()
_users = 0
_saved: dict[int, object] = {}  # signal -> the handler it had
_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _raise(signum: int, frame: FrameType | None) -> None:
    for sig in _saved:  # further signals must not cut the cleanup or the exit line short
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signum)


@contextlib.contextmanager
def removed_on_signals() -> Iterator[None]:
    """While inside, SIGTERM/SIGHUP raise :class:`Terminated` (if their handler was the default).

    Nested and concurrent uses share one installation; the last one out
    restores the previous handlers. Outside the main thread it does nothing.
    """
    global _users
    installed = False
    if threading.current_thread() is threading.main_thread():
        with _lock:
            if _users == 0:
                for sig in _SIGNALS:
                    if signal.getsignal(sig) == signal.SIG_DFL:
                        _saved[sig] = signal.signal(sig, _raise)
            _users += 1
            installed = True
    try:
        yield
    finally:
        if installed:
            with _lock:
                _users -= 1
                if _users == 0:
                    for number, previous in _saved.items():
                        if signal.getsignal(number) is _raise:  # after it fired: ignored
                            signal.signal(number, previous)  # type: ignore[arg-type]
                    _saved.clear()
