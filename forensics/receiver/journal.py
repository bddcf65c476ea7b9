"""The receiver's journal: every alert and every capture, in SQLite.

Durability (the fsync policy): the database runs in WAL mode with
``synchronous=NORMAL`` by default. A commit is then a ``write()`` of the WAL
frames without an fsync: it survives a crash of the receiver process
(``kill -9``, an OOM kill, a panic) because the data is already in the
kernel's page cache, but the last commits may be lost on a power failure or a
kernel crash. ``journal_sync: full`` (``CSI_JOURNAL_SYNC=full``) sets
``synchronous=FULL``: the WAL is fsynced at every commit (one per batch of
alerts committed together), which survives power loss.

Tables: ``alerts`` (UNIQUE fingerprint, so a repeated alert is recorded once and
counted in ``repeats``; ``state`` goes ``received`` → ``settled`` with the
outcome), ``captures`` (at most one per alert; ``queued`` → ``running`` →
``done`` | ``failed``), ``rejections`` (bodies refused with 4xx, the last
10,000) and ``schema_migrations``. On start-up the receiver settles the alerts
still ``received`` and requeues the ``queued``/``running`` captures. What ended
longer ago than ``journal_retention`` (30 days by default) is pruned at start-up
and every hour (:meth:`Journal.prune`); the reports themselves live on in the
report store.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forensics.alert import Alert, InvalidAlert, decode_alert
from forensics.errors import CsiError
from forensics.home import private_db
from forensics.orchestration.request import CaptureRequest, CaptureResult, Target
from forensics.receiver.policy import Decision, decision_json
from forensics.receiver.schema import (
    ALERT_ROW,
    INSERT_ALERTS,
    MIN_SQLITE,
    ROWS,
    checkpoint_loop,
    migrate,
)

SYNC_MODES = {"normal": "NORMAL", "full": "FULL"}
CAPTURE_STATES = ("queued", "running", "done", "failed")
KEEP_REJECTIONS = 10_000
log = logging.getLogger("csi.receiver")
RECOVER_FREE = 16 * 1024 * 1024  # bytes free before a journal whose write failed is ready again


class JournalError(CsiError):
    """The journal database cannot be opened or written."""

    permanent = False


@dataclass(frozen=True)
class Accepted:
    """The journal's answer to an alert: its id, and whether it had been seen before."""

    id: str
    duplicate: bool
    decision: Decision
    repeats: int


@dataclass(frozen=True)
class Pending:
    """An alert journaled but not yet settled (after a crash, or still in the queue)."""

    alert: Alert
    decision: Decision


@dataclass(frozen=True)
class Settlement:
    """How an alert ended: its outcome and reason, and the capture it led to, if any."""

    alert_id: str
    outcome: str  # capture, suppressed, notified, ignored, or an Unresolved kind
    reason: str
    capture: CaptureRequest | None = None
    rule: str = ""  # the Falco rule, for the capture row


class Journal:
    """One SQLite connection, shared by the event loop and the executor's threads."""

    def __init__(self, path: Path, sync: str = "normal", *,
                 checkpoint_interval: float | None = 1.0) -> None:
        if sync not in SYNC_MODES:
            raise JournalError(f"journal_sync {sync!r} is not one of {', '.join(SYNC_MODES)}")
        self.path, self.sync = path, sync
        self._lock = threading.RLock()
        self._rejections = 0
        self._failure: str | None = None  # why the last write failed; None once one succeeds
        self._checkpointer: threading.Thread | None = None
        self._closing = threading.Event()
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise JournalError(f"SQLite {sqlite3.sqlite_version} is too old for the journal "
                               f"(need {'.'.join(map(str, MIN_SQLITE))} or newer)")
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                       timeout=30)
            private_db(path)  # alerts are evidence: 0600, whatever the umask
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise JournalError(f"{path}: cannot switch the journal to WAL mode ({mode})")
            self._db.execute(f"PRAGMA synchronous = {SYNC_MODES[sync]}")
            self._db.execute("PRAGMA journal_size_limit = 67108864")  # WAL file back to 64 MiB
            self._migrate()
            if checkpoint_interval:
                self._db.execute("PRAGMA wal_autocheckpoint = 0")
                self._checkpointer = threading.Thread(  # see schema.checkpoint_loop
                    target=checkpoint_loop, args=(path, checkpoint_interval, self._closing),
                    daemon=True, name="csi-journal-checkpoint")
                self._checkpointer.start()
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"{path}: cannot open the receiver journal", why=str(exc),
                               hint="check that CSI_HOME is writable") from None

    def close(self) -> None:
        self._closing.set()
        if self._checkpointer is not None:
            self._checkpointer.join()
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, _errors(self.path, "journal write failed"):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:  # disk full, I/O error: readiness says so
                self._failure = str(exc)
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._failure = None

    def _migrate(self) -> None:
        with self._tx() as db:
            migrate(db)

    # ------------------------------------------------------------ alerts

    def record_alert(self, alert: Alert, body: bytes, decision: Decision,
                     now: float) -> Accepted:
        """Journal one alert (one commit); a repeat only bumps ``repeats``."""
        return self.record_alerts([(alert, body, decision, now)])[0]

    def record_alerts(self, items: list[tuple[Alert, bytes, Decision, float]]
                      ) -> list[Accepted]:
        """Journal alerts in one transaction (group commit); repeats bump ``repeats``.

        A handful of statements per batch, whatever its size: every statement
        is a release and re-acquisition of the GIL by the writer thread, and
        the event loop holds the GIL most of the time under load.
        """
        answers: list[Accepted] = []
        with self._tx() as db:
            known = self._known(db, list({alert.fingerprint for alert, *_ in items}))
            rows: list[tuple[Any, ...]] = []
            repeats: dict[str, tuple[int, float]] = {}
            for alert, body, decision, now in items:
                fingerprint = alert.fingerprint
                if fingerprint in known:
                    alert_id, stored, count = known[fingerprint]
                    known[fingerprint] = (alert_id, stored, count + 1)
                    repeats[fingerprint] = (count + 1, now)
                    answers.append(Accepted(alert_id, True, stored, count + 1))
                    continue
                known[fingerprint] = (alert.id, decision, 0)
                rows.append((alert.id, fingerprint, now, now, alert.rule, alert.priority,
                             alert.source, alert.hostname, alert.time, body, decision.action,
                             decision_json(decision)))
                answers.append(Accepted(alert.id, False, decision, 0))
            for start in range(0, len(rows), ROWS):
                chunk = rows[start:start + ROWS]
                db.execute(INSERT_ALERTS + ", ".join([ALERT_ROW] * len(chunk)),
                           [value for row in chunk for value in row])
            for fingerprint, (count, now) in repeats.items():
                db.execute("UPDATE alerts SET repeats = ?, last_seen = ? WHERE fingerprint = ?",
                           (count, now, fingerprint))
        return answers

    @staticmethod
    def _known(db: sqlite3.Connection, fingerprints: list[str]
               ) -> dict[str, tuple[str, Decision, int]]:
        """Already journaled: fingerprint → (alert id, decision, repeats)."""
        known = {}
        for start in range(0, len(fingerprints), ROWS):
            chunk = fingerprints[start:start + ROWS]
            for fingerprint, alert_id, decision, repeats in db.execute(
                    "SELECT fingerprint, id, decision, repeats FROM alerts WHERE fingerprint "
                    f"IN ({', '.join('?' * len(chunk))})", chunk):
                known[fingerprint] = (alert_id, Decision.from_dict(json.loads(decision)),
                                      repeats)
        return known

    def pending(self) -> list[Pending]:
        """Alerts journaled but not settled, oldest first.

        A body that is no longer a valid alert (journaled by an older csi that
        accepted it) is settled ``unresolved`` with the reason, alone: it never
        stops the receiver from starting nor its neighbours from settling."""
        with self._lock:
            rows = self._db.execute("SELECT id, body, decision FROM alerts WHERE state = "
                                    "'received' ORDER BY seq").fetchall()
        found, invalid = [], []
        for alert_id, body, decision in rows:
            try:
                found.append(Pending(decode_alert(body), Decision.from_dict(json.loads(decision))))
            except (InvalidAlert, ValueError, KeyError, TypeError) as exc:
                log.warning("journal: alert %s is not a valid alert any more, settled "
                            "unresolved: %s", alert_id, exc)
                invalid.append(Settlement(alert_id, "unresolved", f"not a valid alert: {exc}"))
        if invalid:
            self.settle(invalid, time.time())
        return found

    def settle(self, settlements: list[Settlement], now: float) -> None:
        """Record outcomes and create their captures (``queued``), in one transaction."""
        with self._tx() as db:
            captures = [(s.capture.id, s.alert_id, s.rule, s.capture.target.key(),
                         s.capture.target.node, json.dumps(s.capture.to_dict()), now)
                        for s in settlements if s.capture is not None]
            if captures:
                db.executemany("INSERT OR IGNORE INTO captures (id, alert_id, rule, target_key, "
                               "node, state, request, created) VALUES (?, ?, ?, ?, ?, 'queued', "
                               "?, ?)", captures)
            for start in range(0, len(settlements), ROWS):
                chunk = settlements[start:start + ROWS]
                values = [v for s in chunk for v in (
                    s.alert_id, s.outcome, s.reason, s.capture.id if s.capture else None)]
                db.execute(f"WITH v (id, outcome, reason, capture_id) AS (VALUES "
                           f"{', '.join(['(?, ?, ?, ?)'] * len(chunk))}) "
                           "UPDATE alerts SET state = 'settled', outcome = v.outcome, "
                           "reason = v.reason, capture_id = v.capture_id, settled = ? "
                           "FROM v WHERE alerts.id = v.id AND alerts.state = 'received'",
                           [*values, now])

    # ------------------------------------------------------------ captures

    def mark_running(self, capture_id: str, now: float) -> bool:
        """``queued`` → ``running``; False if the capture is not queued."""
        with self._lock:
            cursor = self._db.execute("UPDATE captures SET state = 'running', started = ?, "
                                      "attempts = attempts + 1 WHERE id = ? AND state = "
                                      "'queued'", (now, capture_id))
            return cursor.rowcount == 1

    def finish(self, capture_id: str, result: CaptureResult | None, error: str,
               now: float) -> None:
        """``running`` → ``done`` (a result, no error) or ``failed`` (an error)."""
        state = "failed" if error or result is None else "done"
        with self._lock:
            self._db.execute("UPDATE captures SET state = ?, result = ?, error = ?, "
                             "finished = ? WHERE id = ? AND state = 'running'",
                             (state, json.dumps(result.to_dict()) if result else None,
                              error or None, now, capture_id))

    def requeue_unfinished(self, now: float | None = None) -> list[CaptureRequest]:
        """On start-up: ``running`` captures (interrupted) back to ``queued``; all queued.

        A request whose alert no longer parses (journaled by an older csi that
        accepted it) is marked failed, with why; the others are requeued."""
        with self._tx() as db:
            db.execute("UPDATE captures SET state = 'queued' WHERE state = 'running'")
            rows = db.execute("SELECT id, request FROM captures WHERE state = 'queued' "
                              "ORDER BY created").fetchall()
        found, broken = [], []
        for capture_id, text in rows:
            try:
                found.append(CaptureRequest.from_dict(json.loads(text)))
            except InvalidAlert as exc:
                log.warning("journal: capture %s holds an alert that is not valid any more, "
                            "failed: %s", capture_id, exc)
                broken.append((f"not a valid alert: {exc}", capture_id))
        if broken:
            with self._tx() as db:
                db.executemany("UPDATE captures SET state = 'failed', error = ?, finished = ? "
                               "WHERE id = ?", [(why, time.time() if now is None else now, cid)
                                                for why, cid in broken])
        return found

    def recent_captures(self, since: float) -> list[tuple[str, Target, float, bool]]:
        """(Falco rule, target, created, in flight) of captures created since ``since``
        or still in flight: what the guard rails are rebuilt from."""
        with self._lock:
            rows = self._db.execute("SELECT rule, request, created, state FROM captures WHERE "
                                    "created >= ? OR state IN ('queued', 'running')",
                                    (since,)).fetchall()
        # only the target: the guard rails need no alert parsed
        return [(rule, Target(**json.loads(req)["target"]), created,
                 state in ("queued", "running")) for rule, req, created, state in rows]

    def capture(self, capture_id: str) -> dict[str, Any] | None:
        rows = self._select("SELECT * FROM captures WHERE id = ?", (capture_id,))
        return rows[0] if rows else None

    def captures(self, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        where, args = ("WHERE state = ?", (state,)) if state else ("", ())
        return self._select(f"SELECT * FROM captures {where} ORDER BY created DESC LIMIT ?",
                            (*args, limit))

    def alert(self, alert_id: str) -> dict[str, Any] | None:
        rows = self._select("SELECT * FROM alerts WHERE id = ?", (alert_id,))
        return rows[0] if rows else None

    def capture_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM captures GROUP BY state"
                                    ).fetchall()
        return {state: 0 for state in CAPTURE_STATES} | dict(rows)

    def _select(self, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self._lock:
            cursor = self._db.execute(sql, args)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    # ------------------------------------------------------------ the rest

    def record_rejection(self, status: int, reason: str, remote: str, excerpt: bytes,
                         now: float) -> None:
        """A refused body (4xx): kept for the responder, the last ``KEEP_REJECTIONS``."""
        with self._lock, _errors(self.path, "journal write failed"):  # disk full: no 500
            self._db.execute("INSERT INTO rejections (received, status, reason, remote, "
                             "excerpt) VALUES (?, ?, ?, ?, ?)",
                             (now, status, reason, remote, excerpt))
            self._rejections += 1
            if self._rejections % 1000 == 0:
                self._db.execute("DELETE FROM rejections WHERE seq <= (SELECT MAX(seq) FROM "
                                 "rejections) - ?", (KEEP_REJECTIONS,))

    def prune(self, before: float) -> tuple[int, int]:
        """Forget what ended before ``before``: finished captures, then settled alerts
        no capture refers to. Returns (alerts, captures) deleted. Alerts still to
        settle and captures queued or running are never touched."""
        with self._tx() as db:
            captures = db.execute("DELETE FROM captures WHERE state IN ('done', 'failed') "
                                  "AND finished < ?", (before,)).rowcount
            alerts = db.execute("DELETE FROM alerts WHERE state = 'settled' AND last_seen < ? "
                                "AND id NOT IN (SELECT alert_id FROM captures)",
                                (before,)).rowcount
        return alerts, captures

    def writable(self) -> str | None:
        """None if a write transaction can be taken now, else why not.

        Taking the lock is not enough: on a full disk every commit fails while
        ``BEGIN`` succeeds. After a failed write the journal stays not writable
        until a real commit succeeds (an alert's, or this probe's)."""
        failure = self._failure
        if failure is not None:
            free = _free_bytes(self.path.parent)
            if free is not None and free < RECOVER_FREE:  # a page fits, an alert would not
                return (f"journal {self.path} is not writable: the last write failed "
                        f"({failure}) and {free} bytes are free")
        try:
            with self._lock:
                if failure is None:
                    self._db.execute("BEGIN IMMEDIATE")
                    self._db.execute("ROLLBACK")
                else:
                    with self._tx() as db:  # a commit that writes a page
                        version = db.execute("PRAGMA user_version").fetchone()[0]
                        db.execute(f"PRAGMA user_version = {int(version) + 1}")
        except (sqlite3.Error, JournalError) as exc:
            return f"journal {self.path} is not writable: {exc}"
        return None


def _free_bytes(directory: Path) -> int | None:
    try:
        stat = os.statvfs(directory)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


@contextlib.contextmanager
def _errors(path: Path, what: str) -> Iterator[None]:
    """SQLite errors (disk full, I/O error, locked) as a JournalError with the cause."""
    try:
        yield
    except sqlite3.Error as exc:
        raise JournalError(f"{path}: {what}", why=str(exc)) from None
