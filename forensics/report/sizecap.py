"""A cap on the size of the JSON of record: a hostile checkpoint never makes an unbounded report.

What the analyzers keep is already bounded (forensics/limits.py), but their
sum is not: a hundred thousand processes, or ten thousand files of each kind,
still add up. :func:`cap_report` cuts the largest list sections of a built
report (files, IOCs, connections, other records, processes) in half, again
and again, until the document fits ``MAX_REPORT_BYTES``, and says in the
report's warnings what was cut ("kept 5,000 of 10,000"). Findings are never
cut: they are bounded per rule, and the summary and processes point into them.
"""

from __future__ import annotations

import json
from typing import Any

from forensics.limits import MAX_REPORT_BYTES
from forensics.report.errors import ReportError

CUTTABLE = ("files", "iocs", "network", "processes")
ROUNDS = 200


def size_of(value: Any) -> int:
    """The size of ``value`` as compact JSON (within a few bytes of its canonical form)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8",
                                                                                  "replace"))


def cap_report(doc: dict[str, Any], limit: int = MAX_REPORT_BYTES) -> dict[str, Any]:
    """``doc`` itself, cut to fit ``limit`` bytes with a warning per section cut."""
    size = size_of(doc)
    if size <= limit:
        return doc
    original = {name: len(items) for name, items in _sections(doc)}
    for _ in range(ROUNDS):
        if size <= limit:
            break
        sizes = [(size_of(items), items) for _, items in _sections(doc) if items]
        if not sizes:
            break
        _, largest = max(sizes, key=lambda s: s[0])
        del largest[len(largest) // 2:]
        size = size_of(doc)
    if size > limit:
        raise ReportError(f"the report would be {size:,} bytes, more than the "
                          f"{limit:,} csi writes",
                          why="even with every list section cut, its findings and warnings "
                              "are too large")
    cut = [(name, len(items), original[name]) for name, items in _sections(doc)
           if len(items) < original[name]]
    doc["warnings"] = [*doc["warnings"], *(
        f"report cut to fit {limit:,} bytes: {name} keeps {kept:,} of {total:,} entries"
        for name, kept, total in cut)]
    return doc


def _sections(doc: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    out = [(name, doc[name]) for name in CUTTABLE if isinstance(doc.get(name), list)]
    others = doc.get("other_records")
    if isinstance(others, dict):
        out += [(f"other_records.{kind}", items) for kind, items in sorted(others.items())
                if isinstance(items, list)]
    return out
