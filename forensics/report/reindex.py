"""``csi report reindex``: rebuild the report index from the report folders.

The index is a cache of what the folders hold; when it is lost or corrupted
(every report command then says so, pointing here) it can be rebuilt. Each
folder is verified first (signature by a trusted key, renderings, and the
folder's name matching the report's id; not the archive, which may have
moved): a folder that fails is listed with its first problem and left out
of the index, never fatal to the others. A corrupt index file is moved aside,
not deleted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from forensics.errors import CsiError
from forensics.report.store import IndexRow, ReportStore
from forensics.report.verify import verify_report
from forensics.report.verify_store import check_index

MAX_REPORT_BYTES = 256 << 20
REPORT_ID = re.compile(r"^[0-9a-f]{4,64}$")


@dataclass
class Reindexed:
    indexed: list[str] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)  # (folder, why)
    set_aside: Path | None = None


def reindex(store: ReportStore) -> Reindexed:
    """Verify every report folder and make the index hold exactly those that pass."""
    out = Reindexed(set_aside=store.set_aside_index())
    rows = []
    folders = sorted(store.root.iterdir()) if store.root.is_dir() else []
    for folder in folders:
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        try:
            row = _row(folder)
        except (CsiError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            out.bad.append((folder.name, str(exc) or type(exc).__name__))
            continue
        rows.append(row)
        out.indexed.append(row.id)
    store.replace_all(rows)
    return out


def _row(folder: Path) -> IndexRow:
    if not REPORT_ID.match(folder.name):
        raise ValueError(f"{folder.name!r} is not a report ID")
    path = folder / "report.json"
    if path.stat().st_size > MAX_REPORT_BYTES:
        raise ValueError(f"report.json is larger than {MAX_REPORT_BYTES} bytes")
    result = verify_report(path, check_archive=False)
    check_index(result, folder.name, None)
    problems = [p for p in result.problems if "not in the report index" not in p]
    if problems:
        raise ValueError(problems[0])
    return IndexRow.from_document(json.loads(path.read_bytes()), str(result.report_sha256))
