"""Reports of the real fixture checkpoints, built once per test session and stored afresh."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from forensics.alert import Alert, decode_alert
from forensics.analysis.base import Options
from forensics.analysis.runner import analyze
from forensics.archive.checkpoint import Checkpoint
from forensics.report.builder import build_report
from forensics.report.provenance import Provenance
from forensics.report.publish import StoredReport, save_report
from forensics.report.signing import SigningKey, load_signing_key
from forensics.report.store import ReportStore
from tests.conftest import ARCHIVES, DATA, PAYMENTS, SHOP, archive_path, truth_for

ALERTS = {SHOP: "drop-and-execute-shop-frontend.json",
          PAYMENTS: "reverse-shell-payments-sidekick.json"}
STARTED = datetime(2026, 11, 22, 8, 0, 0, tzinfo=UTC)


def alert_for(archive: str) -> Alert | None:
    name = ALERTS.get(archive)
    return decode_alert((DATA / "falco" / name).read_bytes()) if name else None


@dataclass(frozen=True)
class Built:
    """One fixture's analysis (as ``csi analyze --format json`` prints it) and its report."""

    archive: str
    path: str  # the archive file the report was made from
    analysis: dict[str, Any]
    document: dict[str, Any]  # unsigned

    @property
    def truth_sha256(self) -> str:
        return str(truth_for(self.archive)["sha256"])


def build(archive: str, path: str | None = None, *, reason: str | None = "test") -> Built:
    """Analyse (with its Falco alert, if any) and build the report, as `analyze --save` does."""
    path = path or archive_path(archive)
    alert = alert_for(archive)
    with Checkpoint(path, hash_cache=False) as ckpt:
        result = analyze(ckpt, Options(alert=alert))
        document = build_report(result, Provenance.manual(responder="alice", reason=reason,
                                                          alert=alert),
                                analysis_started=STARTED)
        analysis = result.to_dict()
    return Built(archive, path, analysis, document)


@pytest.fixture(scope="session")
def built() -> dict[str, Built]:
    """Every fixture archive, analysed and built once."""
    return {a: build(a) for a in ARCHIVES}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh csi home (report store and signing key) for one test."""
    path = tmp_path / "csi-home"
    monkeypatch.setenv("CSI_HOME", str(path))
    monkeypatch.delenv("CSI_SIGNING_KEY", raising=False)
    monkeypatch.delenv("CSI_SIGNING_KEY_PEM", raising=False)
    return path


@pytest.fixture
def store(home: Path) -> ReportStore:
    return ReportStore(home)


@pytest.fixture
def key(home: Path) -> SigningKey:
    return load_signing_key(home)


def store_copy(built: Built, store: ReportStore, key: SigningKey, tmp_path: Path
               ) -> tuple[StoredReport, Path]:
    """Store a report of ``built`` whose archive is a private copy (safe to tamper with)."""
    copy = tmp_path / built.archive
    shutil.copyfile(built.path, copy)
    fresh = build(built.archive, str(copy))
    return save_report(fresh.document, store=store, key=key), copy
