"""Group commit: the journal writes of the accept path, off the event loop.

A commit costs far more than an insert (WAL frames written, locks, syscalls),
so the alerts that arrive while one commit is under way are journaled together
in the next transaction. The accept handler awaits its alert's future, which
resolves only after that transaction's ``COMMIT`` has returned: a 202 still
means "committed". Jobs run in submission order on one thread, so settling a
batch (another job) always follows the inserts of its alerts. SQLite releases
the GIL while it writes, so the event loop keeps parsing requests meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from forensics.receiver.falco import Alert
from forensics.receiver.journal import Accepted, Journal, JournalError
from forensics.receiver.policy import Decision

T = TypeVar("T")
MAX_BATCH = 512
log = logging.getLogger("csi.receiver")


@dataclass(frozen=True)
class _Record:
    alert: Alert
    body: bytes
    decision: Decision
    now: float
    future: asyncio.Future[Accepted]


@dataclass(frozen=True)
class _Call:
    function: Callable[[], Any]
    future: asyncio.Future[Any]


class JournalWriter:
    """One thread that performs the journal writes it is handed, batching inserts."""

    def __init__(self, journal: Journal, loop: asyncio.AbstractEventLoop) -> None:
        self.journal, self.loop = journal, loop
        self._queue: queue.SimpleQueue[_Record | _Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="csi-journal", daemon=True)
        self._thread.start()

    def record(self, alert: Alert, body: bytes, decision: Decision,
               now: float) -> asyncio.Future[Accepted]:
        """Journal an alert; the future resolves once its transaction is committed."""
        future: asyncio.Future[Accepted] = self.loop.create_future()
        self._queue.put(_Record(alert, body, decision, now, future))
        return future

    def call(self, function: Callable[[], T]) -> asyncio.Future[T]:
        """Run ``function`` on the writer thread, after everything submitted before it."""
        future: asyncio.Future[T] = self.loop.create_future()
        self._queue.put(_Call(function, future))
        return future

    def stop(self) -> None:
        """Finish the queued jobs, then end the thread."""
        self._queue.put(None)
        self._thread.join()

    def _work(self) -> None:
        while True:
            jobs = [self._queue.get()]
            while len(jobs) < MAX_BATCH:
                try:
                    jobs.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            records: list[_Record] = []
            for job in jobs:
                if isinstance(job, _Record):
                    records.append(job)
                    continue
                self._commit(records)
                records = []
                if job is None:
                    return
                self._run(job)
            self._commit(records)

    def _commit(self, records: list[_Record]) -> None:
        if not records:
            return
        try:
            results: list[Any] = self.journal.record_alerts(
                [(r.alert, r.body, r.decision, r.now) for r in records])
        except JournalError as exc:  # the disk, not a row: the whole batch failed
            results = [exc] * len(records)
        except Exception as exc:  # a row the journal cannot take: it fails alone
            results = self._one_by_one(records) if len(records) > 1 else [exc]
        self._resolve([r.future for r in records], results)

    def _one_by_one(self, records: list[_Record]) -> list[Any]:
        """A batch that failed for one of its rows: commit each row alone."""
        results: list[Any] = []
        for r in records:
            try:
                results.append(self.journal.record_alert(r.alert, r.body, r.decision, r.now))
            except Exception as exc:
                log.error("journal: cannot record alert %s: %s: %s", r.alert.id,
                          type(exc).__name__, exc)
                results.append(exc)
        return results

    def _run(self, job: _Call) -> None:
        try:
            result = job.function()
        except Exception as exc:
            result = exc
        self._resolve([job.future], [result])

    def _resolve(self, futures: list[asyncio.Future[Any]], results: list[Any]) -> None:
        def resolve() -> None:
            for future, result in zip(futures, results, strict=True):
                if future.done():  # the client went away
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

        try:
            self.loop.call_soon_threadsafe(resolve)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            log.debug("journal writer: event loop closed before %d result(s)", len(futures))
