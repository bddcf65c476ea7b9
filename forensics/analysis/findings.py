"""What analyzers produce: findings (with evidence) and records (facts for the report)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class Severity(IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(str(s) for s in cls)
            raise ValueError(f"unknown severity {text!r} (one of {names})") from None


@dataclass(frozen=True)
class Finding:
    """Something suspicious, with the evidence that supports it."""

    rule: str  # stable identifier, e.g. "process.exe-in-writable-dir"
    severity: Severity
    summary: str  # one sentence a responder reads
    pid: int | None = None
    path: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    mitre: tuple[str, ...] = ()
    analyzer: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule, "severity": str(self.severity), "summary": self.summary,
            "analyzer": self.analyzer, "evidence": dict(self.evidence),
        }
        if self.pid is not None:
            out["pid"] = self.pid
        if self.path is not None:
            out["path"] = self.path
        if self.mitre:
            out["mitre"] = list(self.mitre)
        return out


@dataclass(frozen=True)
class Record:
    """A fact an analyzer established (a connection, a file, an IOC), for the report."""

    kind: str  # e.g. "connection", "file", "ioc", "secret"
    data: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


@dataclass(frozen=True)
class AnalyzerRun:
    """What happened to one analyzer in a run."""

    name: str
    version: str
    status: str  # ran, skipped, failed
    reason: str = ""
    seconds: float = 0.0
    findings: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "status": self.status,
                "reason": self.reason, "seconds": round(self.seconds, 4),
                "findings": self.findings}
