"""One migration runner (forensics.migrations) for the report index and the receiver journal."""

from __future__ import annotations

import sqlite3

from forensics.migrations import apply_migrations, schema_version

STEPS = (
    (1, "one", ("CREATE TABLE a (x INTEGER)",)),
    (2, "two", ("CREATE TABLE b (y INTEGER)", "INSERT INTO b VALUES (7)")),
)


def test_each_migration_runs_once_in_order() -> None:
    db = sqlite3.connect(":memory:")
    assert schema_version(db) == 0
    assert apply_migrations(db, STEPS[:1]) == 1
    assert apply_migrations(db, STEPS) == 2
    assert apply_migrations(db, STEPS) == 2  # nothing left to do: b still has one row
    assert db.execute("SELECT y FROM b").fetchall() == [(7,)]
    assert db.execute("SELECT version, name FROM schema_migrations ORDER BY version"
                      ).fetchall() == [(1, "one"), (2, "two")]
    assert schema_version(db) == 2


def test_both_stores_use_it() -> None:
    from forensics.receiver import schema
    from forensics.report import store

    assert schema.apply_migrations is store.apply_migrations is apply_migrations
