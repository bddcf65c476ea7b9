"""The field-2 pagemap copy (for go-criu/checkpointctl) keeps every fact and the original intact."""

from __future__ import annotations

import hashlib
from pathlib import Path

from forensics.archive.checkpoint import Checkpoint
from forensics.archive.criu.compat import copy_with_field2_pagemaps, pagemap_with_field2
from forensics.archive.criu.image import entries
from forensics.archive.criu.messages import PAGEMAP_ENTRY
from forensics.archive.criu.wire import decode
from forensics.archive.memory import parse_pagemap
from tests.conftest import SHOP, archive_path


def test_copy_has_counts_in_field_2_and_same_facts(tmp_path: Path) -> None:
    src = archive_path(SHOP)
    before = hashlib.sha256(Path(src).read_bytes()).hexdigest()
    dst = tmp_path / "field2.tar"
    assert copy_with_field2_pagemaps(src, str(dst)) == 5
    assert hashlib.sha256(Path(src).read_bytes()).hexdigest() == before  # evidence untouched
    with Checkpoint(src) as a, Checkpoint(str(dst)) as b:
        assert a.processes == b.processes
        for pid in (1, 17):
            data = b.source.read(f"checkpoint/pagemap-{pid}.img")
            raw = [decode(PAGEMAP_ENTRY, p) for _, p in entries("pm", data, "pagemap")][1:]
            assert raw and all(e["compat_nr_pages"] == e["nr_pages"] > 0 for e in raw)
            assert parse_pagemap("pm", data) == parse_pagemap(
                "pm", a.source.read(f"checkpoint/pagemap-{pid}.img")
            )


def test_old_layout_is_left_as_is() -> None:
    from tests.conftest import CRIU41

    with Checkpoint(archive_path(CRIU41)) as ckpt:
        data = ckpt.source.read("checkpoint/pagemap-1.img")
    assert pagemap_with_field2("pm", data) == data
