"""The JSON of record is capped (issue 11 item 7c): sections are halved until it fits."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from forensics import limits
from forensics.report.schema import schema_errors
from forensics.report.sizecap import cap_report, size_of
from tests.archive_tools import rebuild_tar
from tests.conftest import SHOP, archive_path
from tests.report.conftest import build


def test_report_of_ten_thousand_deleted_files_is_cut_to_the_cap_with_a_note(
        tmp_path: Path) -> None:
    archive = tmp_path / "many-deleted.tar"
    paths = json.dumps([f"/var/cache/x{i:07d}" for i in range(20_000)]).encode()
    rebuild_tar(archive_path(SHOP), str(archive), replace={"deleted.files": paths})
    document = build(SHOP, str(archive)).document
    files = len(document["files"])
    assert files == limits.MAX_RECORDS_PER_KIND  # rootfs diff's and deleted ones, capped
    rootfs = files - sum(f["change"] == "deleted" for f in document["files"])
    assert (f"analyzer filesystem: {rootfs:,} more file records not kept (only the first "
            "10,000 of a kind are)") in document["warnings"]
    assert size_of(document) < limits.MAX_REPORT_BYTES  # the real cap is not crossed here
    limit = size_of(document) // 4
    capped = cap_report(copy.deepcopy(document), limit)
    assert size_of(capped) <= limit
    kept = len(capped["files"])
    assert kept in {files >> n for n in range(1, 20)}
    assert capped["warnings"][-1] == (f"report cut to fit {limit:,} bytes: files keeps "
                                      f"{kept:,} of {files:,} entries")
    assert capped["files"] == document["files"][:kept]
    assert capped["findings"] == document["findings"]  # never cut
    assert [e for e in schema_errors(capped) if "signature" not in e] == []


def test_report_under_the_cap_is_unchanged() -> None:
    document = build(SHOP).document
    before = copy.deepcopy(document)
    assert cap_report(document) is document
    assert document == before
