"""The journal's schema, its migrations, and its background WAL checkpoints."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path

from forensics.migrations import Migration, apply_migrations

MIGRATIONS: tuple[Migration, ...] = (
    (1, "alerts, captures, rejections", (
        """CREATE TABLE alerts (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            fingerprint TEXT NOT NULL UNIQUE,
            received REAL NOT NULL,
            last_seen REAL NOT NULL,
            repeats INTEGER NOT NULL DEFAULT 0,
            rule TEXT NOT NULL, priority TEXT NOT NULL, source TEXT NOT NULL,
            hostname TEXT NOT NULL, time TEXT NOT NULL,
            body BLOB NOT NULL,
            action TEXT NOT NULL,
            decision TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('received', 'settled')),
            outcome TEXT, reason TEXT, capture_id TEXT, settled REAL
        )""",
        "CREATE INDEX alerts_received ON alerts (seq) WHERE state = 'received'",
        """CREATE TABLE captures (
            id TEXT PRIMARY KEY,
            alert_id TEXT NOT NULL UNIQUE REFERENCES alerts (id),
            rule TEXT NOT NULL,
            target_key TEXT NOT NULL,
            node TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
            request TEXT NOT NULL,
            result TEXT, error TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            created REAL NOT NULL, started REAL, finished REAL
        )""",
        "CREATE INDEX captures_state ON captures (state, created)",
        """CREATE TABLE rejections (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            received REAL NOT NULL, status INTEGER NOT NULL, reason TEXT NOT NULL,
            remote TEXT NOT NULL, excerpt BLOB NOT NULL
        )""",
    )),
)


INSERT_ALERTS = ("INSERT INTO alerts (id, fingerprint, received, last_seen, rule, priority, "
                  "source, hostname, time, body, action, decision, state) VALUES ")
ALERT_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'received')"
ROWS = 200  # rows per statement: 12 parameters each, SQLite allows 32,766
MIN_SQLITE = (3, 33, 0)  # UPDATE … FROM


def migrate(db: sqlite3.Connection) -> None:
    """Apply the migrations not applied yet (the caller holds a write transaction)."""
    apply_migrations(db, MIGRATIONS)


def checkpoint_loop(path: Path, interval: float, stop: threading.Event) -> None:
    """Copy the WAL into the database every ``interval`` seconds until ``stop``.

    A checkpoint fsyncs the database file (tens of milliseconds on some disks);
    run by SQLite's auto-checkpoint it would stall the commit that triggered it,
    and with it every alert of that commit's batch. A PASSIVE checkpoint on a
    connection and thread of its own never blocks the writer.
    """
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error:
        return
    try:
        while not stop.wait(interval):
            with contextlib.suppress(sqlite3.Error):  # busy, I/O: the next round retries
                db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    finally:
        db.close()
