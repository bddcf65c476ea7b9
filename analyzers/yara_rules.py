"""yara: YARA rules over every process's memory and every changed file.

The default rule set ships in ``analyzers/rules/default.yar``; ``--yara FILE``
adds the user's own. The scan itself is the shared memory scan (one pass).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from forensics.analysis.base import Context
from forensics.analysis.findings import Finding, Record, Severity
from forensics.analysis.memscan import Hit

MAX_STRINGS = 10


class YaraAnalyzer:
    name = "yara"
    version = "1.0"
    description = ("YARA rules (a default set, plus --yara FILE) over process memory and "
                   "changed files")

    def applies(self, ctx: Context) -> str | None:
        return None

    def run(self, ctx: Context) -> Iterator[Finding | Record]:
        groups: dict[tuple[str, str, int | None, str | None], list[Hit]] = {}
        for hit in ctx.memory_scan.hits:
            if hit.namespace == "extract":
                continue
            groups.setdefault((hit.namespace, hit.rule, hit.pid, hit.path), []).append(hit)
        for (namespace, rule, pid, path), hits in sorted(groups.items(), key=_order):
            meta = dict(hits[0].meta)
            where = f"the memory of pid {pid}" if pid is not None else path
            strings = [_string(h) for h in hits[:MAX_STRINGS]]
            yield Record("yara", {"rule": f"{namespace}.{rule}", "pid": pid, "path": path,
                                  "count": len(hits), "strings": strings})
            yield Finding(
                f"yara.{rule}", _severity(meta.get("severity")),
                f"YARA rule {rule} ({meta.get('description', namespace + ' rule')}) "
                f"matches {where}",
                pid=pid, path=path,
                evidence={"namespace": namespace, "count": len(hits), "strings": strings},
                mitre=tuple(t.strip() for t in str(meta.get("mitre", "")).split(",") if t.strip()),
            )
        for error in ctx.memory_scan.errors + ctx.memory_scan.truncated:
            yield Record("scan-note", {"note": error})


def _order(item: tuple[tuple[str, str, int | None, str | None], list[Hit]]) -> tuple[Any, ...]:
    (namespace, rule, pid, path), _ = item
    return (namespace, rule, pid if pid is not None else -1, path or "")


def _severity(text: object) -> Severity:
    try:
        return Severity.parse(str(text)) if text else Severity.MEDIUM
    except ValueError:
        return Severity.MEDIUM


def _string(hit: Hit) -> dict[str, Any]:
    where = ({"address": f"0x{hit.address:x}"} if hit.address is not None
             else {"offset": hit.offset})
    return {"identifier": hit.identifier, "data": hit.data[:120].decode("latin-1"), **where}
