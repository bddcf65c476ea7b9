"""Bounds on what a registry can make csi read, and for how long.

A registry is not trusted: it may answer with an endless manifest, a 500
with an endless body, a layer longer than its descriptor, or one byte every
two seconds. Every HTTP exchange therefore runs under a :class:`Transfer`:

- bodies read whole (manifests, token answers, error bodies) stop at a cap,
  and a ``Content-Length`` above the cap is refused before reading;
- a watchdog thread ends the exchange (it shuts the socket down, so even a
  read blocked inside the HTTP library returns) when the overall deadline
  passes (``deadline + size / min_rate``) or when, while a body moves (sent
  or received), fewer than ``min_rate * rate_window`` bytes moved in the
  last ``rate_window`` seconds. (Waiting for an answer is bounded by the
  deadline and the per-read timeout, not by the rate.)

The limits come from the environment (``CSI_REGISTRY_MIN_RATE`` bytes/s,
``CSI_REGISTRY_RATE_WINDOW`` s, ``CSI_REGISTRY_DEADLINE`` s,
``CSI_REGISTRY_MAX_MANIFEST``, ``CSI_REGISTRY_MAX_BLOB`` bytes), else the defaults.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from forensics.storage.errors import RegistryError, RegistryUnavailableError

MANIFEST_MAX = 4 << 20  # as distribution: a larger manifest is refused
ERROR_BODY_MAX = 64 << 10  # only its first line is shown
TOKEN_MAX = 1 << 20
BLOB_MAX = 1 << 40  # 1 TiB: a "size" above this is not a checkpoint
READ_CHUNK = 1 << 20  # read1: what has arrived, up to this


class RegistryTooSlowError(RegistryUnavailableError):
    """A transfer passed its deadline or fell below the minimum rate (not retried)."""


@dataclass(frozen=True)
class TransferLimits:
    """See the module docstring; sizes in bytes, times in seconds."""

    min_rate: float = 10 * 1024.0
    rate_window: float = 30.0
    deadline: float = 300.0
    max_manifest: int = MANIFEST_MAX
    max_error_body: int = ERROR_BODY_MAX
    max_token: int = TOKEN_MAX
    max_blob: int = BLOB_MAX

    @classmethod
    def from_env(cls) -> TransferLimits:
        env = os.environ
        base = cls()
        return cls(min_rate=_number(env, "CSI_REGISTRY_MIN_RATE", base.min_rate),
                   rate_window=_number(env, "CSI_REGISTRY_RATE_WINDOW", base.rate_window),
                   deadline=_number(env, "CSI_REGISTRY_DEADLINE", base.deadline),
                   max_manifest=int(_number(env, "CSI_REGISTRY_MAX_MANIFEST",
                                            base.max_manifest)),
                   max_blob=int(_number(env, "CSI_REGISTRY_MAX_BLOB", base.max_blob)))

    def deadline_for(self, size: int) -> float:
        """Seconds allowed for moving ``size`` bytes: the base plus ``size`` at the minimum rate."""
        return self.deadline + (size / self.min_rate if self.min_rate > 0 else 0.0)


def _number(env: Any, name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1e15:
        raise RegistryError(f"${name}={text!r} is not a positive number",
                            hint=f"unset it for the default ({default:g})")
    return value


def check_size(size: object, what: str, limits: TransferLimits) -> int:
    """A descriptor's ``size``: a non-negative integer no larger than ``max_blob``."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise RegistryError(f"{what}: the descriptor's size {str(size)[:40]!r} is not an integer",
                            hint="the image is malformed or the registry is hostile; "
                            "nothing was downloaded")
    if size < 0:
        raise RegistryError(f"{what}: the descriptor's size {size} is negative",
                            hint="the image is malformed or the registry is hostile; "
                            "nothing was downloaded")
    if size > limits.max_blob:
        raise RegistryError(f"{what}: the descriptor's size {size} is above the limit of "
                            f"{limits.max_blob} bytes", hint="nothing was downloaded; raise "
                            "$CSI_REGISTRY_MAX_BLOB if the size is genuine")
    return size


def read_some(raw: Any, limit: int) -> bytes:
    """What has arrived of the urllib3 response ``raw``, at most ``limit`` bytes, raw.

    ``read1`` returns after one socket read, so the transfer's byte count
    follows the peer closely; without it (urllib3 1.x) small blocking reads.
    """
    read1 = getattr(raw, "read1", None)
    if read1 is not None:
        return bytes(read1(min(limit, READ_CHUNK), decode_content=False))
    return bytes(raw.read(min(limit, 16 << 10), decode_content=False))


_current = threading.local()


def register_socket(sock: Any) -> None:
    """Called by the HTTP connection: put ``sock`` under the current transfer's watch."""
    transfer = getattr(_current, "transfer", None)
    if transfer is not None and sock is not None:
        transfer.watch(sock)


class Transfer:
    """One exchange (or a streamed download) under a deadline and a minimum rate.

    ``with transfer.active():`` around the request makes the sockets it uses
    watched; :meth:`count` reports bytes received (and starts the rate
    check); ``body`` is a request body with ``sent`` and ``len()`` (a file
    window) whose progress counts too; :meth:`close` stops the watchdog.
    After the watchdog fired, :meth:`check` raises the error.
    """

    def __init__(self, limits: TransferLimits, what: str, size: int = 0,
                 body: Any = None) -> None:
        self.limits = limits
        self.what = what
        self.started = time.monotonic()
        self.ends = self.started + limits.deadline_for(size)
        self.received = 0
        self.reading = False
        self.reason = ""
        self._body = body if hasattr(body, "sent") else None
        self._sockets: list[Any] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, sock: Any) -> None:
        with self._lock:
            if sock not in self._sockets:
                self._sockets.append(sock)
            if self.reason:
                _shut(sock)
            elif self._thread is None:
                self._thread = threading.Thread(target=self._run, name="csi-transfer",
                                                daemon=True)
                self._thread.start()

    @contextlib.contextmanager
    def active(self) -> Iterator[Transfer]:
        previous = getattr(_current, "transfer", None)
        _current.transfer = self
        try:
            yield self
        finally:
            _current.transfer = previous

    def count(self, n: int) -> None:
        self.reading = True
        self.received += n

    def _moving(self) -> tuple[bool, int]:
        """(is a body moving, bytes moved so far)."""
        body = self._body
        sent = int(body.sent) if body is not None else 0
        sending = body is not None and 0 < sent < len(body)
        return self.reading or sending, self.received + sent

    def _run(self) -> None:
        window = self.limits.rate_window
        need = self.limits.min_rate * window
        mark_time, mark_bytes = self.started, 0
        poll = max(0.05, min(1.0, window / 10))
        while not self._done.wait(poll):
            now = time.monotonic()
            if now >= self.ends:
                self._fire(f"not finished within its deadline of "
                           f"{self.ends - self.started:.0f} s")
                return
            moving, moved = self._moving()
            if not moving or moved < mark_bytes:  # waiting for an answer, or rewound
                mark_time, mark_bytes = now, moved
            elif now - mark_time >= window:
                got = moved - mark_bytes
                if got < need:
                    self._fire(f"{got} bytes in {now - mark_time:.0f} s, below the minimum "
                               f"rate of {self.limits.min_rate:g} bytes/s")
                    return
                mark_time, mark_bytes = now, moved

    def _fire(self, reason: str) -> None:
        with self._lock:
            self.reason = reason
            for sock in self._sockets:
                _shut(sock)

    def error(self) -> RegistryTooSlowError:
        return RegistryTooSlowError(f"{self.what}: the registry is too slow", why=self.reason,
                                    hint="check the registry and the network, or raise "
                                    "$CSI_REGISTRY_DEADLINE or lower $CSI_REGISTRY_MIN_RATE")

    def check(self) -> None:
        if self.reason:
            raise self.error()

    def close(self) -> None:
        self._done.set()


def _shut(sock: Any) -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sock.shutdown(socket.SHUT_RDWR)


def read_capped(raw: Any, limit: int, transfer: Transfer, what: str, *,
                refuse: bool = True) -> bytes:
    """At most ``limit`` bytes of the urllib3 response ``raw``.

    ``refuse``: a body longer than ``limit`` (declared or sent) is an error;
    otherwise it is cut (error bodies, of which only the start is shown).
    """
    declared = raw.headers.get("Content-Length", "")
    if refuse and declared.strip().isdigit() and int(declared) > limit:
        raise RegistryError(f"{what}: the answer is too large",
                            why=f"Content-Length {declared[:20]} is above the limit of {limit} "
                            "bytes", hint="nothing was read; the registry is misbehaving")
    parts: list[bytes] = []
    got = 0
    transfer.reading = True
    while got <= limit:
        data = read_some(raw, limit + 1 - got)
        if not data:
            break
        transfer.count(len(data))
        parts.append(data)
        got += len(data)
    if got > limit:
        if refuse:
            raise RegistryError(f"{what}: the answer is too large",
                                why=f"more than {limit} bytes",
                                hint="the rest was not read; the registry is misbehaving")
        return b"".join(parts)[:limit]
    return b"".join(parts)


def check_digest(digest: object, what: str) -> str:
    """A descriptor's ``digest``: ``sha256:`` and 64 lower-case hex digits (it names files)."""
    text = str(digest)
    hexpart = text.removeprefix("sha256:")
    if not text.startswith("sha256:") or len(hexpart) != 64 or \
            any(c not in "0123456789abcdef" for c in hexpart):
        raise RegistryError(f"{what}: the descriptor's digest {text[:80]!r} is not a sha256 "
                            "digest", hint="the image is malformed or the registry is hostile; "
                            "nothing was downloaded")
    return text


def read_file_capped(path: str | os.PathLike[str], cap: int) -> bytes | None:
    """A local file's bytes, or None when it holds more than ``cap`` (never read whole).

    Read in pieces: ``read(cap + 1)`` would allocate the whole cap up front.
    """
    parts: list[bytes] = []
    got = 0
    with open(path, "rb", buffering=0) as f:
        while got <= cap and (data := f.read(min(READ_CHUNK, cap + 1 - got))):
            parts.append(data)
            got += len(data)
    return None if got > cap else b"".join(parts)
