"""Running analyzers over a checkpoint: one failing analyzer never aborts the run."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from forensics import __version__
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
            "warnings": ckpt.warnings,
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
    result.findings.sort(key=lambda f: (-f.severity, f.analyzer, f.rule, f.pid or 0, f.path or ""))
    return result


def _run_one(analyzer: Analyzer, ctx: Context, result: AnalysisResult) -> AnalyzerRun:
    start = time.perf_counter()
    findings: list[Finding] = []
    records: list[Record] = []
    try:
        reason = analyzer.applies(ctx)
        if reason is not None:
            return AnalyzerRun(analyzer.name, analyzer.version, "skipped", reason)
        for item in analyzer.run(ctx):
            if isinstance(item, Finding):
                findings.append(_stamped(item, analyzer.name))
            else:
                records.append(item)
    except UsageError:
        raise  # the user's input (a YARA file that does not compile): stop and say so
    except Exception as exc:  # an analyzer's bug must not cost the others their results
        return AnalyzerRun(analyzer.name, analyzer.version, "failed",
                           f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
    result.findings.extend(findings)
    for record in records:
        result.records.setdefault(record.kind, []).append(record.to_dict())
    return AnalyzerRun(analyzer.name, analyzer.version, "ran", "",
                       time.perf_counter() - start, len(findings))


def _stamped(finding: Finding, name: str) -> Finding:
    if finding.analyzer:
        return finding
    from dataclasses import replace

    return replace(finding, analyzer=name)
