"""Verifying a report where it is stored: the folder, its index row and the report must agree.

A signed report is intact wherever it lies, so moving one report's files into
another's folder (or swapping two folders) leaves both signatures valid. In
the store, verification also checks that the folder's name, the index row and
the report's own ``id`` are one and the same, and that the report file is the
one whose sha256 the index recorded when it was stored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from forensics.report.store import IndexRow, ReportStore
from forensics.report.verify import Verification, verify_report


def stored_folder(store: ReportStore, path: Path) -> Path | None:
    """The report folder ``path`` (a folder or a file in one) if it lies in ``store``."""
    folder = path if path.is_dir() else path.parent
    root = store.root
    try:  # by its path as given, or by where it leads (a symlink into or out of the store)
        if (Path(os.path.abspath(folder)).parent == Path(os.path.abspath(root))
                or folder.resolve().parent == root.resolve()):
            return folder
    except OSError:
        return None
    return None


def verify_stored(store: ReportStore, folder: Path, row: IndexRow | None,
                  **options: Any) -> Verification:
    """Verify the report in ``folder`` of ``store``, whose index row is ``row`` (if any)."""
    result = verify_report(folder / "report.json", **options)
    check_index(result, folder.name, row)
    return result


def check_index(result: Verification, folder: str, row: IndexRow | None) -> None:
    problems = []
    if row is None:
        problems.append(f"report folder {folder}: not in the report index (`csi report reindex` "
                        "verifies it and adds it)")
    elif row.id != folder:
        problems.append(f"report folder {folder}: the index row read is for {row.id}")
    if result.report_id != folder:
        problems.append(f"report folder {folder}: holds report {result.report_id}, not "
                        f"{folder}: report folders were swapped or copied over each other")
    if row is not None and result.report_sha256 != row.report_sha256:
        problems.append(f"report {folder}: report.json has sha256 {result.report_sha256}, the "
                        f"index recorded {row.report_sha256} when it was stored: the file was "
                        "replaced")
    result.add("store index", problems, f"folder, index row and report all name {folder}; "
               f"report.json is the one indexed (sha256 {result.report_sha256})")
