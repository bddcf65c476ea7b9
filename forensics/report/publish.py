"""Publishing a report: sign, validate, render, store. The one call analysis and capture make.

``report_analysis(result, provenance)`` builds the document from an
analysis (its checkpoint still open), signs it, renders HTML and Markdown,
signs a manifest of the three files, and stores them with their index row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forensics.report.builder import build_report, new_report_id
from forensics.report.canonical import canonical_bytes, sha256_hex
from forensics.report.errors import ReportError
from forensics.report.provenance import Provenance
from forensics.report.schema import validate_report
from forensics.report.signing import SigningKey, load_signing_key, sign
from forensics.report.store import IndexRow, ReportIdTaken, ReportStore

if TYPE_CHECKING:
    from forensics.analysis.runner import AnalysisResult

MANIFEST_SCHEMA = "csi.report-manifest"
REPORT_FILES = ("report.json", "report.html", "report.md")
ATTEMPTS = 3


@dataclass(frozen=True)
class StoredReport:
    id: str
    directory: Path
    row: IndexRow

    def file(self, name: str) -> Path:
        return self.directory / name


def render_files(signed: dict[str, Any]) -> dict[str, bytes]:
    """The three files of a signed report: the JSON of record and its two renderings."""
    from forensics.report.html import render_html
    from forensics.report.markdown import render_markdown

    return {"report.json": canonical_bytes(signed),
            "report.html": render_html(signed).encode("utf-8"),
            "report.md": render_markdown(signed).encode("utf-8")}


def manifest(report_id: str, files: dict[str, bytes]) -> dict[str, Any]:
    return {"schema": MANIFEST_SCHEMA, "schema_version": 1, "report_id": report_id,
            "files": {name: {"sha256": sha256_hex(data), "size": len(data)}
                      for name, data in sorted(files.items())}}


def save_report(document: dict[str, Any], *, store: ReportStore | None = None,
                key: SigningKey | None = None) -> StoredReport:
    """Sign, check against the schema, render and store an (unsigned) report document."""
    store = store or ReportStore()
    key = key or load_signing_key(store.home)
    for _ in range(ATTEMPTS):
        signed = sign(document, key)
        validate_report(signed)
        files = render_files(signed)
        files["manifest.json"] = canonical_bytes(sign(manifest(signed["id"], files), key))
        row = IndexRow.from_document(signed, sha256_hex(files["report.json"]))
        try:
            directory = store.add(signed["id"], files, row)
        except ReportIdTaken:
            document = {**document, "id": new_report_id()}
            continue
        return StoredReport(signed["id"], directory, row)
    raise ReportError(f"could not find a free report ID in {ATTEMPTS} attempts")


def report_analysis(result: AnalysisResult, provenance: Provenance, *,
                    store: ReportStore | None = None, key: SigningKey | None = None,
                    analysis_started: datetime | None = None) -> StoredReport:
    """Build the report of ``result`` (checkpoint still open) and store it."""
    document = build_report(result, provenance, analysis_started=analysis_started)
    return save_report(document, store=store, key=key)
