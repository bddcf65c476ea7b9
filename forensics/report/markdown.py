"""The Markdown rendering, for tickets and chat: the same facts as the HTML, as text.

Archive content is never markup: text is escaped (HTML included, since
Markdown passes HTML through), code spans pick a fence longer than any run
of backticks inside, and table cells escape ``|`` and newlines.
"""

from __future__ import annotations

import json
import re
from typing import Any

from forensics.archive.proctree import Elided
from forensics.report import phrases as v
from forensics.visible import visible

_SPECIAL = re.compile(r"([\\`*_\[\]|~:])")  # ':' too: no autolinks in archive text
_WWW = re.compile(r"(?i)\bwww\.")


def text(value: object) -> str:
    """Plain text that Markdown renders as itself (control characters written out)."""
    out = visible(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    out = _WWW.sub(lambda m: m.group(0)[:3] + "\\.", _SPECIAL.sub(r"\\\1", out))
    return out.replace("\r", " ").replace("\n", " ")


def code(value: object, *, cell: bool = False) -> str:
    """An inline code span that survives any content (backticks, control characters written
    out; pipes in cells)."""
    s = visible(value)
    if cell:  # GFM splits table rows on unescaped pipes, even inside code spans
        s = s.replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or not s.strip() else ""
    return f"{fence}{pad}{s}{pad}{fence}" if s else "—"


def _fenced(body: str, info: str = "") -> list[str]:
    longest = max((len(m) for m in re.findall(r"`{3,}", body)), default=2)
    fence = "`" * (longest + 1)
    return [fence + info, body, fence]


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell or " " for cell in row) + " |" for row in rows]
    return [*out, ""]


def _or_none(value: object) -> str:
    return "—" if value in (None, "") else text(value)


def render_markdown(doc: dict[str, Any]) -> str:
    lines: list[str] = [f"# csi evidence report: {text(v.who(doc))}", "",
                        f"**Verdict: {doc['summary']['verdict'].upper()}** "
                        f"({text(v.counts_text(doc))}) — report {code(doc['id'])}, "
                        f"{text(doc['created'])}", ""]
    lines += _summary(doc) + _findings(doc) + _processes(doc) + _network(doc) + _files(doc)
    lines += _iocs(doc) + _secrets(doc) + _timeline(doc) + _custody(doc) + _analyzers(doc)
    if doc["warnings"]:
        lines += ["## Warnings", "", *(f"- {text(w)}" for w in doc["warnings"]), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _summary(doc: dict[str, Any]) -> list[str]:
    lines = ["## Summary", "", "**What was captured**", ""]
    lines += [f"- {label}: {_or_none(val)}" for label, val in v.captured_fields(doc)]
    lines += ["", "**Why**", "", *(f"- {text(line)}" for line in v.trigger_lines(doc)), "",
              "**Top findings**", ""]
    for t in doc["summary"]["top_findings"]:
        more = f" (+{t['same_rule']} more)" if t["same_rule"] else ""
        lines.append(f"1. **{t['severity'].upper()}** {text(t['summary'])} "
                     f"({code(t['rule'])}){more}")
    if not doc["summary"]["top_findings"]:
        lines.append("No findings.")
    return [*lines, ""]


def _findings(doc: dict[str, Any]) -> list[str]:
    lines = ["## Findings", ""]
    for severity in v.SEVERITIES:
        group = [f for f in doc["findings"] if f["severity"] == severity]
        if not group:
            continue
        lines += [f"### {severity.capitalize()} ({len(group)})", ""]
        for f in group:
            where = [f"pid {f['pid']}"] if f.get("pid") is not None else []
            where += [code(f["path"])] if f.get("path") else []
            mitre = f" — MITRE {', '.join(f['mitre'])}" if f.get("mitre") else ""
            lines.append(f"- {text(f['summary'])} ({code(f['rule'])}"
                         + (f"; {', '.join(where)}" if where else "") + f"){mitre}")
            for key, val in (f.get("evidence") or {}).items():
                shown = val if isinstance(val, str) else json.dumps(val, ensure_ascii=False,
                                                                    sort_keys=True)
                lines.append(f"  - {text(key)}: {code(shown)}")
        lines.append("")
    return lines


def _processes(doc: dict[str, Any]) -> list[str]:
    lines = ["## Process tree", ""]
    for depth, p in v.process_tree(doc):
        if isinstance(p, Elided):  # the count, then the cut branch's processes flat
            lines.append(f"{'  ' * depth}- {text(p.text())}")
            lines += [_process_line(depth + 1, doc["processes"][i], parent=True)
                      for i in p.indices]
            continue
        lines.append(_process_line(depth, p))
    if not doc["processes"]:
        lines.append("No process could be read.")
    return [*lines, ""]


def _process_line(depth: int, p: dict[str, Any], *, parent: bool = False) -> str:
    flag = f" **⚠ {p['severity'].upper()}** (findings {', '.join(map(str, p['findings']))})" \
        if p["findings"] else ""
    deleted = " (deleted)" if p.get("exe_deleted") else ""
    ppid = f" — ppid {p['ppid']}" if parent else ""
    return (f"{'  ' * depth}- \\[{p['pid']}\\] {code(v.command(p))} — user "
            f"{text(v.user(p))}, exe {code(p.get('exe') or '?')}{deleted}{ppid}{flag}")


def _network(doc: dict[str, Any]) -> list[str]:
    lines = ["## Network", ""]
    if not doc["network"]:
        return [*lines, text(v.section_note(doc, "network") or "No network connection."), ""]
    rows = [[str(c["pid"]), text(c["comm"]), text(c["protocol"]), text(c["state"]),
             code(v.hostport(c["local"], c["local_port"]), cell=True),
             code(v.hostport(c["remote"], c["remote_port"]), cell=True)
             if c["state"] != "LISTEN" else "",
             text(c.get("remote_class") or "")] for c in doc["network"]]
    return lines + _table(["pid", "comm", "proto", "state", "local", "remote", "class"], rows)


def _files(doc: dict[str, Any]) -> list[str]:
    lines = ["## Files changed", ""]
    if not doc["files"]:
        return [*lines, text(v.section_note(doc, "files") or "No file changed."), ""]
    rows = [[code(f["path"], cell=True), text(f["change"]),
             text(f.get("content") or f.get("type") or ""),
             str(f.get("size") if f.get("size") is not None else ""),
             code(f.get("sha256") or "", cell=True)] for f in doc["files"]]
    return lines + _table(["path", "change", "content", "size", "sha256"], rows)


def _iocs(doc: dict[str, Any]) -> list[str]:
    lines = ["## Indicators of compromise", ""]
    if not doc["iocs"]:
        return [*lines, text(v.section_note(doc, "iocs") or "None found."), ""]
    rows = [[text(i["type"]), code(i["value"], cell=True), str(i["count"]), text(v.ioc_where(i))]
            for i in doc["iocs"]]
    plain = "\n".join(visible(i["value"]) for i in doc["iocs"])
    return lines + _table(["type", "value", "count", "where"], rows) + [
        "Copy-ready list:", "", *_fenced(plain, "text"), ""]


def _secrets(doc: dict[str, Any]) -> list[str]:
    lines = ["## Secrets (redacted)", ""]
    if not doc["secrets"]:
        return [*lines, text(v.section_note(doc, "secrets") or "None found."), ""]
    rows = [[text(s.get("source")), code(s.get("name") or "", cell=True), text(s.get("type")),
             text(", ".join(map(str, s.get("pids") or [])) or ", ".join(s.get("paths") or [])),
             code(s.get("redacted"), cell=True),
             code(s.get("fingerprint") or s.get("sha256"), cell=True)]
            for s in doc["secrets"]]
    return lines + _table(["source", "name", "type", "where", "redacted", "fingerprint"], rows)


def _timeline(doc: dict[str, Any]) -> list[str]:
    rows = [[code(e["time"], cell=True) if e["time"] else "not recorded", text(e["label"]),
             text(e.get("source") or "")] for e in doc["timeline"]]
    return ["## Timeline", "", *_table(["time (UTC)", "event", "source"], rows)]


def _custody(doc: dict[str, Any]) -> list[str]:
    c = doc["custody"]
    a, cap, ver = c["archive"], c["capture"], c["verification"]
    sig = doc.get("signature", {})
    pairs = [
        ("Archive", code(a["path"]) + f" on {text(a.get('host'))}"),
        ("Size", f"{a['size']} bytes, {text(a['compression'])}"),
        ("sha256 at capture", code(cap["archive_sha256"]) if cap.get("archive_sha256")
         else "not recorded (not captured by csi)"),
        ("sha256 before analysis", code(a["sha256"])),
        ("Verification", text(f"{ver['sha256_method']}; {ver['note']}")),
        ("Registry reference", code(cap["registry_ref"]) if cap.get("registry_ref") else "—"),
        ("Manifest digest", code(cap["manifest_digest"]) if cap.get("manifest_digest")
         else "—"),
        ("Captured by", _or_none(cap.get("captured_by"))),
        ("Triggered by", text("; ".join(v.trigger_lines(doc)))),
        ("csi", text(f"{doc['tool']['version']} on {doc['tool']['host']}")),
        ("Analyzers", text(", ".join(f"{n} {x}" for n, x in doc["tool"]["analyzers"].items()))),
        ("Signature", text(f"{sig.get('algorithm', 'unsigned')}, key "
                           f"{sig.get('key_fingerprint', '—')}")),
        ("Verify with", code(f"csi report verify {doc['id']}")),
    ]
    return ["## Chain of custody", "", *(f"- {k}: {val}" for k, val in pairs), ""]


def _analyzers(doc: dict[str, Any]) -> list[str]:
    rows = [[text(a["name"]), text(a["version"]), text(a["status"]), text(a["reason"]),
             str(a["findings"])] for a in doc["analyzers"]]
    return ["## Analyzers", "", *_table(["analyzer", "version", "status", "reason", "findings"],
                                        rows)]
