"""The report store: one directory per report, indexed by an SQLite database.

Layout under ``$CSI_HOME/reports`` (see :func:`~forensics.home.csi_home`)::

    index.sqlite3          the index (WAL mode), schema versions in schema_migrations
    <id>/report.json       the signed JSON of record (canonical bytes)
    <id>/report.html       the single-file HTML rendering
    <id>/report.md         the Markdown rendering
    <id>/manifest.json     the sha256 of the three, signed with the same key

A report's directory is written under a temporary name, synced, then
renamed into place; only then is its index row inserted, in a ``BEGIN
IMMEDIATE`` transaction (writers queue on SQLite's lock for up to
``BUSY_TIMEOUT`` seconds instead of failing with "database is locked").
So the index never names a half-written report, and a report whose row was
lost (a crash between the two steps), or an index that was corrupted, comes
back with ``csi report reindex`` (:mod:`forensics.report.reindex`).
Directories are 0700 and files 0600: reports hold evidence.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from forensics.home import csi_home, open_private, private_db, private_dir
from forensics.migrations import Migration, apply_migrations, schema_version
from forensics.report.errors import ReportError, ReportNotFound
from forensics.trigger import ALERT_KINDS
from forensics.units import parse_duration

INDEX_FILE = "index.sqlite3"
REINDEX_HINT = "`csi report reindex` rebuilds the index from the report folders"
BUSY_TIMEOUT = 60.0  # seconds a writer waits for another's transaction
DEFAULT_LIMIT = 50
RANK = {"none": -1, "info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
_ID = re.compile(r"^[0-9a-f]{4,64}$")

# Each migration runs once, in order, inside one write transaction.
MIGRATIONS: tuple[Migration, ...] = (
    (1, "reports index", (
        """CREATE TABLE reports (
            id TEXT PRIMARY KEY,
            created TEXT NOT NULL,
            created_us INTEGER NOT NULL,
            namespace TEXT, pod TEXT, container TEXT, image TEXT, node TEXT, cluster TEXT,
            verdict TEXT NOT NULL,
            verdict_rank INTEGER NOT NULL,
            findings INTEGER NOT NULL,
            counts TEXT NOT NULL,
            top_finding TEXT,
            trigger TEXT NOT NULL,
            archive_path TEXT NOT NULL,
            archive_sha256 TEXT NOT NULL,
            report_sha256 TEXT NOT NULL
        )""",
        "CREATE INDEX reports_created ON reports (created_us DESC)",
        "CREATE INDEX reports_namespace ON reports (namespace, created_us DESC)",
        "CREATE INDEX reports_pod ON reports (pod, created_us DESC)",
        "CREATE INDEX reports_verdict ON reports (verdict_rank, created_us DESC)",
    )),
)
LATEST = MIGRATIONS[-1][0]
COLUMNS = ("id", "created", "created_us", "namespace", "pod", "container", "image", "node",
           "cluster", "verdict", "verdict_rank", "findings", "counts", "top_finding", "trigger",
           "archive_path", "archive_sha256", "report_sha256")


@dataclass(frozen=True)
class IndexRow:
    """What ``csi report list`` shows and filters on, for one report."""

    id: str
    created: str
    created_us: int
    namespace: str | None
    pod: str | None
    container: str | None
    image: str | None
    node: str | None
    cluster: str | None
    verdict: str
    verdict_rank: int
    findings: int
    counts: dict[str, int]
    top_finding: str | None
    trigger: str
    archive_path: str
    archive_sha256: str
    report_sha256: str

    @classmethod
    def from_document(cls, doc: Mapping[str, Any], report_sha256: str) -> IndexRow:
        s, summary, trig = doc["subject"], doc["summary"], doc["trigger"]
        top = summary["top_findings"][0]["summary"] if summary["top_findings"] else None
        return cls(
            id=doc["id"], created=doc["created"], created_us=to_us(parse_time(doc["created"])),
            namespace=s["namespace"], pod=s["pod"], container=s["container"] or
            s["container_name"], image=s["image"], node=s["node"], cluster=s["cluster"],
            verdict=summary["verdict"], verdict_rank=RANK.get(summary["verdict"], -1),
            findings=summary["total_findings"], counts=dict(summary["counts"]),
            top_finding=top, trigger=trigger_text(trig),
            archive_path=doc["custody"]["archive"]["path"],
            archive_sha256=doc["custody"]["archive"]["sha256"], report_sha256=report_sha256,
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["created_us"], out["verdict_rank"]
        return out

    def values(self) -> tuple[Any, ...]:
        return tuple(json.dumps(self.counts, sort_keys=True) if c == "counts" else
                     getattr(self, c) for c in COLUMNS)

    @classmethod
    def from_values(cls, values: Iterable[Any]) -> IndexRow:
        data = dict(zip(COLUMNS, values, strict=True))
        data["counts"] = json.loads(data["counts"])
        return cls(**data)


def trigger_text(trigger: Mapping[str, Any]) -> str:
    alert = trigger.get("alert") or {}
    if trigger.get("kind") in ALERT_KINDS:
        return f"falco: {alert.get('rule', '?')}"
    who = f"{trigger.get('responder') or '?'}"
    return f"{who}: {trigger['reason']}" if trigger.get("reason") else who


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def to_us(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``24h``, ``30m``, ``7d``, ``2w``, ``90s`` ago, or an ISO date/time (UTC if no zone)."""
    try:
        ago = parse_duration(text)  # the one duration grammar (forensics.units)
    except ValueError:
        pass
    else:
        return (now or datetime.now(UTC)) - timedelta(seconds=ago)
    try:
        return parse_time(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration (24h, 30m, 7d, 2w) nor a date "
                         "(2026-11-22, 2026-11-22T07:00:00Z)") from None


class ReportIdTaken(ReportError):
    """Another report already has this ID (48 random bits: vanishingly rare)."""


class ReportStore:
    """Reports on disk and their index; safe for many concurrent processes."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = home if home is not None else csi_home()
        self.root = self.home / "reports"
        self.index_path = self.root / INDEX_FILE

    # ------------------------------------------------------------ connection

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.index_path, timeout=BUSY_TIMEOUT, isolation_level=None)
        except sqlite3.Error as exc:
            raise ReportError(f"{self.index_path}: cannot open the report index",
                              why=str(exc), hint=REINDEX_HINT) from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            self._migrate(conn)
            conn.execute("PRAGMA synchronous = FULL")
            yield conn
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise ReportError(f"{self.index_path}: report index error", why=str(exc),
                              hint=REINDEX_HINT) from None
        finally:
            conn.close()

    @staticmethod
    def _version(conn: sqlite3.Connection) -> int:
        return schema_version(conn)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = self._version(conn)
        if version == LATEST:
            return
        if version > LATEST:
            raise ReportError(f"{self.index_path}: the report index has schema version "
                              f"{version}, this csi knows up to {LATEST}",
                              hint="use a newer csi")
        _retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"))
        conn.execute("BEGIN IMMEDIATE")
        try:
            apply_migrations(conn, MIGRATIONS)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        private_db(self.index_path)

    # ------------------------------------------------------------ writing

    def add(self, report_id: str, files: Mapping[str, bytes], row: IndexRow) -> Path:
        """Write one report's files, then its index row; returns its directory."""
        if not _ID.match(report_id):
            raise ReportError(f"{report_id!r} is not a report ID")
        final = self.root / report_id
        try:
            private_dir(self.root, self.home)
            tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".tmp-{report_id}-"))  # 0700
            for name, data in files.items():
                with os.fdopen(open_private(tmp / name), "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            _fsync_dir(tmp)
            try:
                os.rename(tmp, final)  # fails if the directory exists and is not empty
            except OSError as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                if final.exists():
                    raise ReportIdTaken(f"report {report_id} already exists") from None
                raise exc
            _fsync_dir(self.root)
        except OSError as exc:
            raise ReportError(f"{self.root}: cannot write report {report_id}",
                              why=exc.strerror or str(exc)) from None
        try:
            self.insert([row])
        except sqlite3.IntegrityError:
            shutil.rmtree(final, ignore_errors=True)
            raise ReportIdTaken(f"report {report_id} is already indexed") from None
        return final

    def insert(self, rows: Iterable[IndexRow], *, ignore_existing: bool = False) -> int:
        """Add index rows in one transaction; returns how many were added."""
        try:
            private_dir(self.root, self.home)
        except OSError as exc:
            raise ReportError(f"{self.root}: cannot create the report store",
                              why=exc.strerror or str(exc)) from None
        verb = "INSERT OR IGNORE" if ignore_existing else "INSERT"
        sql = f"{verb} INTO reports ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                before = conn.total_changes
                conn.executemany(sql, (r.values() for r in rows))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return conn.total_changes - before

    def replace_all(self, rows: Iterable[IndexRow]) -> int:
        """Make the index hold exactly ``rows``, in one transaction; returns how many."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM reports")
                before = conn.total_changes
                conn.executemany(f"INSERT INTO reports ({', '.join(COLUMNS)}) VALUES "
                                 f"({', '.join('?' * len(COLUMNS))})", (r.values() for r in rows))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return conn.total_changes - before

    def set_aside_index(self) -> Path | None:
        """Rename an index that cannot be opened out of the way; returns its new name."""
        if not self.index_path.exists() or not _corrupt(self.index_path):
            return None  # (an index of a newer csi is not corrupt: it is refused, not moved)
        aside = self.index_path.with_name(
            f"{INDEX_FILE}.corrupt-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}")
        try:
            for suffix in ("-wal", "-shm", ""):  # the main file last: it is what we test for
                with contextlib.suppress(FileNotFoundError):
                    os.rename(f"{self.index_path}{suffix}", f"{aside}{suffix}")
        except OSError as exc:
            raise ReportError(f"{self.index_path}: cannot move the corrupt index aside",
                              why=exc.strerror or str(exc)) from None
        return aside

    def get(self, report_id: str) -> IndexRow | None:
        """The index row of exactly ``report_id``, or None."""
        if not self.index_path.exists() or not _ID.match(report_id):
            return None
        with self._connect() as conn:
            found = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM reports WHERE id = ?",
                                 (report_id,)).fetchone()
        return IndexRow.from_values(found) if found else None

    # ------------------------------------------------------------ reading

    def query(self, *, namespace: str | None = None, pod: str | None = None,
              since: datetime | None = None, min_severity: str | None = None,
              limit: int | None = DEFAULT_LIMIT) -> tuple[list[IndexRow], int]:
        """Reports matching the filters, newest first (at most ``limit``), and how many match."""
        if not self.index_path.exists():
            return [], 0
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("namespace", namespace), ("pod", pod)):
            if value:
                op = "GLOB" if any(c in value for c in "*?[") else "="
                where.append(f"{column} {op} ?")
                args.append(value)
        if since is not None:
            where.append("created_us >= ?")
            args.append(to_us(since))
        if min_severity:
            where.append("verdict_rank >= ?")
            args.append(RANK[min_severity])
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self._connect() as conn:
            total = conn.execute(f"SELECT COUNT(*) FROM reports{clause}", args).fetchone()[0]
            sql = (f"SELECT {', '.join(COLUMNS)} FROM reports{clause} "
                   "ORDER BY created_us DESC, id DESC")
            if limit:
                sql += f" LIMIT {int(limit)}"
            rows = [IndexRow.from_values(v) for v in conn.execute(sql, args)]
        return rows, int(total)

    def resolve(self, ref: str) -> IndexRow:
        """The report with ID ``ref``, or the only one whose ID starts with it, or ``latest``."""
        ref = ref.strip().lower()
        if not self.index_path.exists():
            raise ReportNotFound(f"no report {ref!r}", why=f"the store {self.root} is empty")
        with self._connect() as conn:
            if ref == "latest":
                found = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM reports ORDER BY "
                                     "created_us DESC, id DESC LIMIT 1").fetchall()
            elif _ID.match(ref):
                found = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM reports WHERE id "
                                     "GLOB ? LIMIT 10", (ref + "*",)).fetchall()
            else:
                found = []
        if not found:
            raise ReportNotFound(f"no report {ref!r} in {self.root}",
                                 hint="`csi report list` shows the IDs")
        if len(found) > 1:
            ids = ", ".join(r[0] for r in found)
            raise ReportNotFound(f"{ref!r} names more than one report ({ids})",
                                 hint="give more of the ID")
        return IndexRow.from_values(found[0])

    def directory(self, report_id: str) -> Path:
        return self.root / report_id


def _corrupt(path: Path) -> bool:
    """Whether SQLite cannot read ``path`` as a sound database."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT)
    except sqlite3.Error:
        return True
    try:
        return [r[0] for r in conn.execute("PRAGMA quick_check")] != ["ok"]
    except sqlite3.DatabaseError:
        return True
    finally:
        conn.close()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _retry_locked(action: Any, seconds: float = BUSY_TIMEOUT) -> None:
    """Run an action that SQLite may refuse while another process holds its lock."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            action()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
