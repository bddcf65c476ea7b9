"""The report store: filters, IDs, migrations, recovery, and writers that never lose a report."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from forensics.report.builder import new_report_id
from forensics.report.errors import ReportError, ReportNotFound
from forensics.report.publish import save_report
from forensics.report.reindex import reindex
from forensics.report.signing import SigningKey, load_signing_key
from forensics.report.store import LATEST, IndexRow, ReportStore, parse_since
from tests.conftest import LISTENER, PAYMENTS, SHOP
from tests.report.conftest import Built

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


def row(i: int, *, namespace: str = "prod", pod: str = "web-1", verdict: str = "high",
        age: timedelta = timedelta(0)) -> IndexRow:
    created = NOW - age
    rank = {"none": -1, "info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}[verdict]
    return IndexRow(id=f"{i:012x}", created=created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    created_us=int(created.timestamp() * 1_000_000), namespace=namespace, pod=pod,
                    container="app", image="img", node=None, cluster=None, verdict=verdict,
                    verdict_rank=rank, findings=1, counts={"high": 1}, top_finding="x",
                    trigger="alice", archive_path="/a.tar", archive_sha256="0" * 64,
                    report_sha256="1" * 64)


def test_saved_reports_are_indexed_newest_first(built: dict[str, Built], store: ReportStore,
                                                key: SigningKey) -> None:
    saved = [save_report(built[a].document, store=store, key=key)
             for a in (LISTENER, SHOP, PAYMENTS)]
    rows, total = store.query()
    assert total == 3
    # newest first by the report's creation (the fixtures were built in name order)
    assert [r.id for r in rows] == [s.id for s in saved]
    first = next(r for r in rows if r.id == saved[2].id)
    assert (first.namespace, first.pod, first.container, first.verdict, first.findings) == (
        "payments", "payments-api-5b8f7c9d8-qq7lm", "api", "critical", 27)
    assert first.trigger == "alice: test"
    assert first.archive_sha256 == built[PAYMENTS].truth_sha256
    assert first.node == "worker-1"
    assert sorted(p.name for p in store.root.iterdir() if not p.name.startswith("index")) == \
        sorted(s.id for s in saved)
    assert sorted(p.name for p in saved[0].directory.iterdir()) == [
        "manifest.json", "report.html", "report.json", "report.md"]


def test_filters(store: ReportStore) -> None:
    store.insert([row(1, namespace="prod", pod="web-1", verdict="critical"),
                  row(2, namespace="prod", pod="web-2", verdict="medium", age=timedelta(days=2)),
                  row(3, namespace="dev", pod="api-1", verdict="info", age=timedelta(hours=1)),
                  row(4, namespace="prod", pod="web-1", verdict="high", age=timedelta(hours=30))])

    def ids(**kw: Any) -> list[str]:
        return [r.id[-1] for r in store.query(**kw)[0]]

    assert ids() == ["1", "3", "4", "2"]
    assert ids(namespace="prod") == ["1", "4", "2"]
    assert ids(pod="web-*") == ["1", "4", "2"]
    assert ids(pod="web-1", namespace="dev") == []
    assert ids(min_severity="high") == ["1", "4"]
    assert ids(since=NOW - timedelta(hours=24)) == ["1", "3"]
    assert ids(since=NOW - timedelta(hours=24), min_severity="high") == ["1"]
    assert ids(limit=2) == ["1", "3"]
    assert store.query(limit=2)[1] == 4


def test_parse_since() -> None:
    assert parse_since("24h", NOW) == NOW - timedelta(hours=24)
    assert parse_since("30m", NOW) == NOW - timedelta(minutes=30)
    assert parse_since("2w", NOW) == NOW - timedelta(weeks=2)
    assert parse_since("2026-11-20", NOW) == datetime(2026, 11, 20, tzinfo=UTC)
    assert parse_since("2026-11-20T07:00:00+01:00", NOW) == datetime(2026, 11, 20, 6,
                                                                      tzinfo=UTC)
    with pytest.raises(ValueError, match="neither a duration"):
        parse_since("yesterday", NOW)


def test_resolve_by_id_prefix_or_latest(store: ReportStore) -> None:
    store.insert([replace(row(1), id="abcdef000001"), replace(row(2), id="abcdef000002",
                                                                created_us=row(2).created_us + 1)])
    assert store.resolve("abcdef000001").id == "abcdef000001"
    assert store.resolve("ABCDEF000002").id == "abcdef000002"
    assert store.resolve("latest").id == "abcdef000002"
    with pytest.raises(ReportNotFound, match="names more than one report"):
        store.resolve("abcd")
    with pytest.raises(ReportNotFound, match="no report 'ffff'"):
        store.resolve("ffff")
    with pytest.raises(ReportNotFound, match="no report"):
        store.resolve("'; DROP TABLE reports; --")


def test_empty_store_is_not_created_by_reading(home: Path) -> None:
    store = ReportStore(home)
    assert store.query() == ([], 0)
    assert not home.exists()
    with pytest.raises(ReportNotFound, match="is empty"):
        store.resolve("latest")


def test_migrations_are_recorded_and_a_newer_index_is_refused(store: ReportStore) -> None:
    store.insert([row(1)])
    with sqlite3.connect(store.index_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT version, name FROM schema_migrations").fetchall() == [
            (1, "reports index")]
        conn.execute("INSERT INTO schema_migrations VALUES (?, 'future', 'x')", (LATEST + 1,))
    with pytest.raises(ReportError, match=f"schema version {LATEST + 1}, this csi knows up to"):
        store.query()


def test_reindex_recovers_reports_whose_row_was_lost(built: dict[str, Built],
                                                     store: ReportStore, key: SigningKey) -> None:
    saved = save_report(built[PAYMENTS].document, store=store, key=key)
    store.index_path.unlink()
    for extra in ("-wal", "-shm"):
        Path(str(store.index_path) + extra).unlink(missing_ok=True)
    assert store.query() == ([], 0)
    assert reindex(store).indexed == [saved.id]
    assert reindex(store).indexed == [saved.id]  # a rebuild: the same index again
    assert store.query()[0] == [saved.row]


def test_an_id_collision_gets_a_new_id(built: dict[str, Built], store: ReportStore,
                                       key: SigningKey) -> None:
    first = save_report(built[LISTENER].document, store=store, key=key)
    second = save_report(built[LISTENER].document, store=store, key=key)  # same ID inside
    assert first.id == built[LISTENER].document["id"] != second.id
    assert json.loads(second.file("report.json").read_bytes())["id"] == second.id
    assert store.query()[1] == 2


# ---------------------------------------------------------------- two writers at once

N = 200


def _writer(home: str, document_file: str, start_at: float) -> list[str]:
    store = ReportStore(Path(home))
    key = load_signing_key(store.home)
    document = json.loads(Path(document_file).read_text())
    while time.time() < start_at:
        time.sleep(0.005)
    return [save_report({**document, "id": new_report_id()}, store=store, key=key).id
            for _ in range(N)]


def test_two_processes_writing_at_once_lose_nothing(built: dict[str, Built], home: Path,
                                                    tmp_path: Path) -> None:
    document_file = tmp_path / "document.json"
    document_file.write_text(json.dumps(built[PAYMENTS].document))
    load_signing_key(home)  # both writers sign with the same key
    start_at = time.time() + 2.0  # both start on a fresh store: both migrate at once
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = [pool.apply_async(_writer, (str(home), str(document_file), start_at))
                   for _ in range(2)]
        ids = [i for r in results for i in r.get(timeout=600)]
    assert len(ids) == len(set(ids)) == 2 * N
    store = ReportStore(home)
    rows, total = store.query(limit=None)
    assert total == 2 * N
    assert {r.id for r in rows} == set(ids)
    folders = [p for p in store.root.iterdir() if p.is_dir()]
    assert sorted(p.name for p in folders) == sorted(ids)
    assert all((p / "report.json").is_file() and (p / "manifest.json").is_file()
               for p in folders)
