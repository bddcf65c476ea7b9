"""Running analyzers over a checkpoint: one failing analyzer never aborts the run."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from forensics import __version__, limits
from forensics.analysis.base import Analyzer, Context, Options
from forensics.analysis.findings import AnalyzerRun, Finding, Record, Severity
from forensics.analysis.registry import discover, select
from forensics.archive.checkpoint import Checkpoint
from forensics.errors import UsageError


@dataclass
class AnalysisResult:
    """Findings, records and what each analyzer did; ``to_dict`` is the JSON of record."""

    checkpoint: Checkpoint
    runs: list[AnalyzerRun] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # the analysis's own (bounds crossed)

    @property
    def verdict(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    def to_dict(self) -> dict[str, Any]:
        ckpt = self.checkpoint
        k = ckpt.kubernetes
        verdict = self.verdict
        return {
            "csi_version": __version__,
            "archive": {
                "path": ckpt.archive.path, "sha256": ckpt.archive.sha256,
                "size": ckpt.archive.size, "compression": ckpt.archive.compression,
            },
            "container": {
                "name": ckpt.container.name, "id": ckpt.container.id,
                "image": ckpt.container.image, "engine": ckpt.container.engine,
                "created": ckpt.container.created,
            },
            "kubernetes": {"pod": k.pod, "namespace": k.namespace, "container": k.container,
                           "pod_uid": k.pod_uid},
            "verdict": str(verdict) if verdict is not None else "none",
            "analyzers": [r.to_dict() for r in self.runs],
            "findings": [f.to_dict() for f in self.findings],
            "records": self.records,
            "warnings": ckpt.warnings + self.warnings,
        }


def list_analyzers() -> list[tuple[str, str, str]]:
    """(name, version, description) of every registered analyzer."""
    found, broken = discover()
    rows = [(a.name, a.version, a.description) for a in found]
    rows += [(b.name, "?", f"(cannot load: {b.reason})") for b in broken]
    return sorted(rows)


def analyze(ckpt: Checkpoint, options: Options | None = None,
            names: list[str] | None = None) -> AnalysisResult:
    """Run the registered analyzers (or those named) over ``ckpt``."""
    found, broken = discover()
    selected = select(found, names or [])
    ctx = Context(ckpt, options)
    result = AnalysisResult(ckpt)
    for b in broken:
        if not names or b.name in names:
            result.runs.append(AnalyzerRun(b.name, "?", "failed", b.reason))
    for analyzer in selected:
        result.runs.append(_run_one(analyzer, ctx, result))
    result.runs.sort(key=lambda r: r.name)
    result.findings.sort(key=lambda f: (-f.severity, f.analyzer, f.rule,
                                        bool(f.evidence.get("aggregated")), f.pid or 0,
                                        f.path or ""))
    return result


def _run_one(analyzer: Analyzer, ctx: Context, result: AnalysisResult) -> AnalyzerRun:
    start = time.perf_counter()
    kept = Bounded(analyzer.name)
    try:
        reason = analyzer.applies(ctx)
        if reason is not None:
            return AnalyzerRun(analyzer.name, analyzer.version, "skipped", reason)
        for item in analyzer.run(ctx):
            kept.add(item)
    except UsageError:
        raise  # the user's input (a YARA file that does not compile): stop and say so
    except Exception as exc:  # an analyzer's bug must not cost the others their results
        return AnalyzerRun(analyzer.name, analyzer.version, "failed",
                           f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
    findings = kept.findings()
    result.findings.extend(findings)
    for kind, records in kept.records.items():
        result.records.setdefault(kind, []).extend(r.to_dict() for r in records)
    result.warnings.extend(kept.notes())
    return AnalyzerRun(analyzer.name, analyzer.version, "ran", "",
                       time.perf_counter() - start, len(findings))


class Bounded:
    """What one analyzer yields, bounded (forensics/limits.py): ``MAX_FINDINGS_PER_RULE``
    findings of each rule, the first ones except that a more severe one displaces the
    least severe kept (flooding a rule with minor findings hides no severe one), then
    one finding per rule saying how many more there were, with the worst severity among
    them; the first ``MAX_RECORDS_PER_KIND`` records of each kind, the rest counted in a
    warning."""

    def __init__(self, analyzer: str) -> None:
        self.analyzer = analyzer
        self.by_rule: dict[str, list[Finding]] = {}
        self.extra: dict[str, tuple[int, Severity, Finding]] = {}  # count, worst, first
        self.least: dict[str, int] = {}  # rule -> index of its least severe kept finding
        self.records: dict[str, list[Record]] = {}
        self.extra_records: dict[str, int] = {}

    def add(self, item: Finding | Record) -> None:
        if isinstance(item, Finding):
            self._finding(item)
            return
        records = self.records.setdefault(item.kind, [])
        if len(records) < limits.MAX_RECORDS_PER_KIND:
            records.append(item)
        else:
            self.extra_records[item.kind] = self.extra_records.get(item.kind, 0) + 1

    def _finding(self, item: Finding) -> None:
        kept = self.by_rule.setdefault(item.rule, [])
        aggregated = bool(item.evidence.get("aggregated"))
        if len(kept) < limits.MAX_FINDINGS_PER_RULE and not aggregated:
            kept.append(_stamped(item, self.analyzer))
            return
        omitted = item
        if not aggregated and kept:  # each swap raises a slot's severity: at most 4 per slot
            least = self.least.get(item.rule)
            if least is None:
                least = self.least[item.rule] = min(  # the latest of the least severe
                    range(len(kept)), key=lambda i: (kept[i].severity, -i))
            if item.severity > kept[least].severity:
                omitted, kept[least] = kept[least], _stamped(item, self.analyzer)
                del self.least[item.rule]
        count, worst, first = self.extra.get(item.rule, (0, omitted.severity, omitted))
        self.extra[item.rule] = (count + _weight(omitted), max(worst, omitted.severity), first)

    def findings(self) -> list[Finding]:
        out = [f for kept in self.by_rule.values() for f in kept]
        for rule, (count, worst, first) in self.extra.items():
            out.append(Finding(
                rule, worst, f"… and {count:,} more {rule} findings (only the first "
                f"{limits.MAX_FINDINGS_PER_RULE} of a rule are listed)",
                evidence={"aggregated": True, "omitted": count,
                          "listed": limits.MAX_FINDINGS_PER_RULE},
                mitre=first.mitre, analyzer=first.analyzer or self.analyzer))
        return out

    def notes(self) -> list[str]:
        return [f"analyzer {self.analyzer}: {count:,} more {kind} records not kept (only the "
                f"first {limits.MAX_RECORDS_PER_KIND:,} of a kind are)"
                for kind, count in self.extra_records.items()]


def _weight(finding: Finding) -> int:
    """How many findings one stands for: an analyzer's own "… and N more" stands for N."""
    omitted = finding.evidence.get("omitted")
    if finding.evidence.get("aggregated") and isinstance(omitted, int) and omitted > 0:
        return omitted
    return 1


def _stamped(finding: Finding, name: str) -> Finding:
    if finding.analyzer:
        return finding
    from dataclasses import replace

    return replace(finding, analyzer=name)
