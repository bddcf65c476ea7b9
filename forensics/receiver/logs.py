"""The receiver's log: one line per record, client trouble counted, never a traceback for it.

Alert fields and request lines are the attacker's text. :class:`OneLineFormatter`
renders every control character of a record (its message, its arguments and
any traceback) visibly (``\\n``, ``\\x1b``), so a container named
``"web\\n2026-… csi serve INFO …"`` cannot forge a second log line nor drive
the terminal of whoever reads the log.

:class:`JsonLineFormatter` (``--log-format json``) writes each record as one JSON
object per line (``time``, ``level``, ``logger``, ``message``, and ``exception``
when there is one): JSON escapes every control character and, ASCII-only, the
line separators too, so the same guarantee holds by construction.

Client trouble (idle or slow connections closed, connections over the limit,
malformed requests, failed TLS handshakes, ``accept()`` out of descriptors)
is counted by :class:`Tally` and written once per interval as one line with
the counts: a flood of 1,000 bad connections costs one log line, not 1,000
tracebacks.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import re
import ssl
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

log = logging.getLogger("csi.receiver")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# accept() or a socket failing for lack of resources: the work of clients, not a bug
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
LOG_FORMATS = ("text", "json")


def visible(text: str) -> str:
    """``text`` with every control character shown as an escape: one line, inert."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(0)) or f"\\x{ord(m.group(0)):02x}"
                        if ord(m.group(0)) < 0x100 else f"\\u{ord(m.group(0)):04x}", text)


class OneLineFormatter(logging.Formatter):
    """A formatter whose every record is exactly one line (see the module doc)."""

    def format(self, record: logging.LogRecord) -> str:
        return visible(super().format(record))


class JsonLineFormatter(logging.Formatter):
    """Every record as one JSON object on one line (ASCII: nothing raw reaches a terminal)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry = {"time": f"{stamp}.{int(record.msecs):03d}Z", "level": record.levelname,
                 "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=True)


def setup_logging(level: str, fmt: str, text_format: str) -> None:
    """Log to standard error at ``level``, one line per record: ``fmt`` ``text``
    (``text_format``, control characters escaped) or ``json`` (one object a line)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter() if fmt == "json" else OneLineFormatter(text_format))
    logging.basicConfig(level=level.upper(), handlers=[handler])


class Tally:
    """Counts of client trouble, logged as one line at most once per ``interval``."""

    def __init__(self, interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval, self.clock = interval, clock
        self._counts: Counter[str] = Counter()
        self._last: dict[str, str] = {}
        self._logged = -interval - 1.0  # the first event is logged at once
        self.total: Counter[str] = Counter()  # since start, for tests and metrics

    def note(self, what: str, detail: str = "") -> None:
        """One more ``what`` (like ``"malformed requests"``); ``detail``: the latest one."""
        self._counts[what] += 1
        self.total[what] += 1
        if detail:
            self._last[what] = detail[:160]
        self.flush()

    def flush(self, force: bool = False) -> None:
        """Log the counts if there are any and the interval has passed (or ``force``)."""
        now = self.clock()
        if not self._counts or (now - self._logged < self.interval and not force):
            return
        parts = []
        for what, count in sorted(self._counts.items()):
            last = self._last.get(what)
            parts.append(f"{count} {what}" + (f" (last: {last})" if last else ""))
        since = "" if self._logged < 0 else f" in the last {now - self._logged:.0f}s"
        log.warning("clients: %s%s", "; ".join(parts), since)
        self._counts.clear()
        self._last.clear()
        self._logged = now


def client_trouble(exc: BaseException | None) -> bool:
    """Whether an exception is a client's doing (a reset, TLS garbage, no descriptors left)."""
    if isinstance(exc, ConnectionError | ssl.SSLError | TimeoutError | asyncio.TimeoutError):
        return True
    return isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS


def loop_exception_handler(tally: Tally) -> Callable[[asyncio.AbstractEventLoop,
                                                       dict[str, Any]], None]:
    """An event loop exception handler: client trouble is counted, the rest logged as usual."""
    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if client_trouble(exc):
            message = str(context.get("message") or "socket error")
            tally.note("socket errors", f"{message}: {type(exc).__name__}: {exc}")
            return
        loop.default_exception_handler(context)

    return handle
