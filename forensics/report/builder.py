"""Building the report document (the JSON of record) from an analysis and its provenance.

The findings and records are the analyzers' own, verbatim; the report adds
what a responder needs around them: the process tree read from the
checkpoint (with the findings that point at each process), a summary, a
timeline and the chain of custody, down to the sha256 of every archive
member. Secrets never appear in clear: environment values, command lines,
findings and the triggering alert go through :mod:`forensics.analysis.redact`
(all environment values are redacted if the secrets analyzer did not run).
"""

from __future__ import annotations

import hashlib
import os
import platform
import secrets as random
import socket
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from forensics import __version__
from forensics.analysis.redact import Redactor as TextRedactor
from forensics.report.canonical import json_safe
from forensics.report.errors import ReportError
from forensics.report.provenance import Provenance, iso, now, trigger_dict
from forensics.report.sizecap import cap_report

if TYPE_CHECKING:
    from forensics.analysis.runner import AnalysisResult
    from forensics.archive.checkpoint import Checkpoint
    from forensics.archive.model import Process

SCHEMA = "csi.report"
SCHEMA_VERSION = 1
SEVERITIES = ("critical", "high", "medium", "low", "info")
RANK = {"none": -1, "info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
TOP_FINDINGS = 5
RECORD_SECTIONS = {"connection": "network", "file": "files", "ioc": "iocs",
                   "secret": "secrets", "alert": "alert_checks"}
SUPERSEDED = {"process"}  # the report's "processes" holds all of it, and more
UNREDACTED_RECORDS = {"file", "connection", "secret", "process"}  # no argv/text, or not kept
HASH_CHUNK = 4 << 20


def new_report_id() -> str:
    """12 random hex digits: short to type, and unique enough (48 bits) for one store."""
    return random.token_hex(6)


def build_report(result: AnalysisResult, provenance: Provenance, *,
                 analysis_started: datetime | None = None,
                 analysis_finished: datetime | None = None,
                 created: datetime | None = None, report_id: str | None = None) -> dict[str, Any]:
    """The unsigned report of ``result`` (whose checkpoint must still be open)."""
    analysis = result.to_dict()
    ckpt = result.checkpoint
    records: dict[str, list[dict[str, Any]]] = analysis["records"]
    if any("value" in s for s in records.get("secret", [])):
        raise ReportError("this analysis shows secrets in clear (--reveal)",
                          hint="reports never hold secrets: analyse again without --reveal")
    created = created or now()
    finished = analysis_finished or created
    findings: list[dict[str, Any]] = analysis["findings"]
    secrets_ran = any(r["name"] == "secrets" and r["status"] == "ran"
                      for r in analysis["analyzers"])
    redactor = Redactor(redact_all_env=not secrets_ran)
    findings = redactor.tree(findings)  # argv and Falco output fields quoted in evidence
    records = {kind: items if kind in UNREDACTED_RECORDS else redactor.tree(items)
               for kind, items in records.items()}
    analysis = {**analysis, "findings": findings, "records": records}
    subject = _subject(analysis, provenance)
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "id": report_id or new_report_id(),
        "created": iso(created),
        "subject": subject,
        "trigger": redactor.tree(trigger_dict(provenance.trigger)),
        "summary": _summary(analysis, records.get("alert", [])),
        "findings": findings,
        "processes": process_entries(ckpt, findings, redactor),
        "analyzers": analysis["analyzers"],
        "warnings": analysis["warnings"],
        "timeline": _timeline(ckpt, subject, provenance, analysis_started, finished, created),
        "custody": _custody(ckpt, provenance),
        "tool": _tool(analysis),
    }
    for kind, section in RECORD_SECTIONS.items():
        doc[section] = records.get(kind, [])
    doc["other_records"] = {kind: items for kind, items in sorted(records.items())
                            if kind not in RECORD_SECTIONS and kind not in SUPERSEDED}
    safe: dict[str, Any] = json_safe(doc)
    return cap_report(safe)  # never an unbounded file (forensics/limits.py)


# ------------------------------------------------------------------ summary


def severity_counts(findings: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(SEVERITIES, 0)
    for f in findings:
        counts[f["severity"]] = counts.get(f["severity"], 0) + 1
    return counts


def _summary(analysis: dict[str, Any], alerts: list[dict[str, Any]]) -> dict[str, Any]:
    findings = analysis["findings"]
    top: list[dict[str, Any]] = []
    seen: dict[str, dict[str, Any]] = {}
    for index, f in enumerate(findings):  # sorted most severe first by the runner
        if f["rule"] in seen:
            seen[f["rule"]]["same_rule"] += 1
            continue
        if len(top) < TOP_FINDINGS:
            entry = {"index": index, "rule": f["rule"], "severity": f["severity"],
                     "summary": f["summary"], "pid": f.get("pid"), "same_rule": 0}
            top.append(entry)
            seen[f["rule"]] = entry
    confirmed = alerts[0].get("confirmed") if alerts else None
    return {"verdict": analysis["verdict"], "counts": severity_counts(findings),
            "total_findings": len(findings), "top_findings": top,
            "alert_confirmed": confirmed if isinstance(confirmed, bool) else None}


def _subject(analysis: dict[str, Any], provenance: Provenance) -> dict[str, Any]:
    c, k = analysis["container"], analysis["kubernetes"]
    alert = provenance.trigger.alert
    node, node_source = provenance.node, "capture" if provenance.node else None
    if node is None and alert is not None and alert.hostname:
        node, node_source = alert.hostname, "Falco alert hostname"
    return {"cluster": provenance.cluster, "node": node, "node_source": node_source,
            "namespace": k["namespace"], "pod": k["pod"], "pod_uid": k["pod_uid"],
            "container": k["container"], "container_name": c["name"],
            "container_id": c["id"], "image": c["image"], "engine": c["engine"],
            "container_created": c["created"] or None}


def _tool(analysis: dict[str, Any]) -> dict[str, Any]:
    return {"name": "csi", "version": __version__, "python": platform.python_version(),
            "host": socket.gethostname(),
            "analyzers": {r["name"]: r["version"] for r in analysis["analyzers"]}}


# ------------------------------------------------------------------ processes


class Redactor(TextRedactor):
    """The report's redaction; every environment value if the secrets analyzer did not run."""

    def __init__(self, *, redact_all_env: bool) -> None:
        super().__init__()
        self.redact_all_env = redact_all_env

    def env(self, item: str) -> dict[str, Any]:
        name, sep, value = item.partition("=")
        if sep and value and self.redact_all_env:
            return {"name": name, "value": self.mask(value), "redacted": True}
        return super().env(item)

    def arg(self, arg: str) -> str:
        return self.argv([arg])[0]


def _findings_by_pid(findings: list[dict[str, Any]]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for index, f in enumerate(findings):
        pids = set()
        if isinstance(f.get("pid"), int):
            pids.add(f["pid"])
        evidence_pids = f.get("evidence", {}).get("pids")
        if isinstance(evidence_pids, list):
            pids.update(p for p in evidence_pids if isinstance(p, int))
        for pid in pids:
            out.setdefault(pid, []).append(index)
    return out


def process_entries(ckpt: Checkpoint, findings: list[dict[str, Any]],
                    redactor: Redactor) -> list[dict[str, Any]]:
    """Every process in pstree order, with the findings that point at it."""
    users = _passwd(ckpt)
    linked = _findings_by_pid(findings)
    out = []
    for p in ckpt.processes:
        indexes = linked.get(p.pid, [])
        worst = max((findings[i]["severity"] for i in indexes), key=RANK.__getitem__,
                    default=None)
        out.append(_process(p, users, redactor) | {"findings": indexes, "severity": worst})
    return out


def _process(p: Process, users: dict[int, str], redactor: Redactor) -> dict[str, Any]:
    creds = p.creds
    uid = creds.uid if creds else None
    return {
        "pid": p.pid, "ppid": p.ppid, "pgid": p.pgid, "sid": p.sid, "comm": p.comm,
        "state": p.state_name,
        "cmdline": redactor.argv(p.cmdline) if p.cmdline is not None else None,
        "exe": p.exe, "exe_deleted": p.exe_deleted, "cwd": p.cwd, "root": p.root,
        "uid": uid, "gid": creds.gid if creds else None,
        "euid": creds.euid if creds else None, "egid": creds.egid if creds else None,
        "user": users.get(uid) if uid is not None else None,
        "threads": [{"tid": t.tid, "name": t.name} for t in p.threads],
        "environment": [redactor.env(e) for e in p.environ] if p.environ is not None else None,
        "fds": [{"fd": f.fd, "type": f.type, "path": f.path, "deleted": f.deleted}
                for f in p.files],
    } | _truncation(p)


def _truncation(p: Process) -> dict[str, int]:
    """Bytes of the argv/environment areas beyond what was read (forensics/limits.py)."""
    out = {}
    if p.cmdline_truncated:
        out["cmdline_truncated"] = p.cmdline_truncated
    if p.environ_truncated:
        out["environment_truncated"] = p.environ_truncated
    return out


def _passwd(ckpt: Checkpoint) -> dict[int, str]:
    """User names: /etc/passwd from the rootfs diff if the container changed it; uid 0 is root."""
    users = {0: "root"}
    member = ckpt.nested_member("/etc/passwd")
    if member is None:
        return users
    text = ckpt.source.pread(member, 0, 1 << 20).decode("utf-8", "replace")
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].isdigit():
            users.setdefault(int(fields[2]), fields[0])
    return users


# ------------------------------------------------------------------ timeline and custody


def _timeline(ckpt: Checkpoint, subject: dict[str, Any], provenance: Provenance,
              started: datetime | None, finished: datetime, created: datetime
              ) -> list[dict[str, Any]]:
    alert = provenance.trigger.alert
    not_captured = "not recorded: the archive was not captured by csi"
    written, written_source = provenance.checkpoint_written, "capture"
    if written is None:
        written, written_source = _archive_written(ckpt), "latest time of the CRIU images"

    def event(name: str, label: str, time: str | datetime | None, source: str | None
              ) -> dict[str, Any]:
        text = iso(time) if isinstance(time, datetime) else time
        return {"event": name, "label": label, "time": text, "source": source}

    events = [event("container-created", "container created", subject["container_created"],
                    "the archive's config.dump")]
    if alert is not None:
        events.append(event("alert", f"Falco alert: {alert.rule}", alert.time,
                            "the Falco alert"))
    events += [
        event("checkpoint-requested", "checkpoint requested", provenance.checkpoint_requested,
              "capture" if provenance.checkpoint_requested else not_captured),
        event("checkpoint-written", "checkpoint written", written,
              written_source if written else "not recorded"),
        event("pushed", "pushed to the registry", provenance.pushed,
              "capture" if provenance.pushed else not_captured),
        event("analysis-started", "analysis started", started,
              "csi analyze" if started else "not recorded"),
        event("analysis-finished", "analysed", finished, "csi analyze"),
        event("reported", "report written", created, "csi"),
    ]
    return events


def _archive_written(ckpt: Checkpoint) -> datetime | None:
    times = [m.mtime for m in ckpt.source.members.values()
             if m.name.startswith("checkpoint/") and m.mtime > 0]
    return datetime.fromtimestamp(max(times), UTC) if times else None


def member_digests(ckpt: Checkpoint) -> list[dict[str, Any]]:
    """Name, size and sha256 of every file in the archive (decompressed), by name."""
    source = ckpt.source
    out = []
    for name in sorted(source.members):
        member = source.members[name]
        if member.kind != "file":
            continue
        digest = hashlib.sha256()
        offset = 0
        while offset < member.size:
            chunk = source.pread(member, offset, HASH_CHUNK)
            if not chunk:
                break
            digest.update(chunk)
            offset += len(chunk)
        out.append({"name": name, "size": member.size, "sha256": digest.hexdigest()})
    return out


def _custody(ckpt: Checkpoint, provenance: Provenance) -> dict[str, Any]:
    archive = ckpt.archive
    at_capture = provenance.archive_sha256_at_capture
    matches = None if at_capture is None else at_capture == archive.sha256
    if archive.sha256_cached:
        method = "taken from csi's hash cache (not recomputed)"
    else:
        method = "recomputed from the archive file before analysis"
    if matches is None:
        note = "no sha256 was recorded at capture: this hash is the first csi took"
    elif matches:
        note = "matches the sha256 recorded at capture"
    else:
        note = f"DIFFERS from the sha256 recorded at capture ({at_capture})"
    return {
        "archive": {"path": os.path.abspath(archive.path), "host": socket.gethostname(),
                    "size": archive.size, "compression": archive.compression,
                    "sha256": archive.sha256, "members": member_digests(ckpt)},
        "capture": provenance.capture_dict(),
        "verification": {"sha256_method": method, "matches_capture": matches, "note": note,
                         "size_matches_capture": None
                         if provenance.archive_size_at_capture is None
                         else provenance.archive_size_at_capture == archive.size},
    }
