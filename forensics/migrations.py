"""One SQLite migration runner: the report index and the receiver journal both use it.

A migration is ``(version, name, statements)``; each runs once, in order, and
is recorded in ``schema_migrations (version, name, applied)``. The caller holds
the write transaction (``BEGIN IMMEDIATE``), so two processes never apply the
same migration twice and a failure leaves the database as it was.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

Migration = tuple[int, str, tuple[str, ...]]

_TABLE = ("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
          "name TEXT NOT NULL, applied TEXT NOT NULL)")


def schema_version(db: sqlite3.Connection) -> int:
    """The highest migration applied (0 for a new database)."""
    try:
        row = db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return 0
        raise
    return int(row[0] or 0)


def apply_migrations(db: sqlite3.Connection, migrations: Sequence[Migration]) -> int:
    """Apply the migrations not applied yet (inside the caller's write transaction).

    Returns the schema version reached.
    """
    db.execute(_TABLE)
    have = schema_version(db)  # another process may have migrated meanwhile
    for version, name, statements in migrations:
        if version <= have:
            continue
        for statement in statements:
            db.execute(statement)
        db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                   (version, name, datetime.now(UTC).isoformat()))
        have = version
    return have
