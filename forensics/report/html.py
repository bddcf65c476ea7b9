"""The HTML rendering: one self-contained file, no script, readable printed.

CSS is inline, nothing is fetched (a Content-Security-Policy forbids it and
forbids scripts outright), collapsible parts are ``<details>``, and every
value from the archive is escaped by :mod:`forensics.report.htmlkit`.
"""

from __future__ import annotations

from typing import Any

from forensics.archive.proctree import Elided
from forensics.report import phrases as v
from forensics.report.htmlkit import Safe, esc, join, table, tag, value, void

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'"

CSS = """
:root{--crit:#7f1d1d;--high:#c2410c;--med:#a16207;--low:#0e7490;--info:#6b7280;
--line:#d4d4d8;--soft:#f4f4f5;--ink:#18181b}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI","DejaVu Sans",sans-serif;color:var(--ink);
margin:0 auto;max-width:1200px;padding:1.5rem}
h1{font-size:1.5rem;margin:0}h2{font-size:1.2rem;border-bottom:2px solid var(--ink);
padding-bottom:.2rem;margin-top:2rem}h3{font-size:1rem;margin:1.2rem 0 .4rem}
code,pre,.mono,td.mono{font-family:"DejaVu Sans Mono",ui-monospace,monospace;font-size:12px}
pre{white-space:pre-wrap;word-break:break-all;background:var(--soft);padding:.4rem;margin:.2rem 0}
table{border-collapse:collapse;width:100%;margin:.4rem 0}
th,td{border:1px solid var(--line);padding:.2rem .4rem;text-align:left;vertical-align:top;
word-break:break-word}
th{background:var(--soft)}
table.ev td:first-child,table.ev th:first-child{width:11rem}
.muted{color:var(--info)}
.sev{display:inline-block;padding:0 .4rem;border-radius:3px;color:#fff;font-weight:700;
font-size:11px;text-transform:uppercase;letter-spacing:.03em}
.sev-critical{background:var(--crit)}.sev-high{background:var(--high)}
.sev-medium{background:var(--med)}.sev-low{background:var(--low)}.sev-info{background:var(--info)}
.sev-none{background:#15803d}
.verdict{font-size:1.6rem;padding:.2rem .8rem}
header{display:flex;justify-content:space-between;align-items:center;gap:1rem;
border-bottom:4px solid var(--ink);padding-bottom:.6rem}
.summary{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
.box{border:1px solid var(--line);padding:.6rem .8rem;border-radius:4px}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:.1rem .8rem;margin:0}
dl.kv dt{font-weight:600}dl.kv dd{margin:0;word-break:break-all}
nav ul{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.3rem 1rem}
.finding{border-left:6px solid var(--info);padding:.3rem .6rem;margin:.5rem 0;
background:#fafafa;break-inside:avoid}
.finding.sev-critical{border-color:var(--crit);background:#fef2f2}
.finding.sev-high{border-color:var(--high);background:#fff7ed}
.finding.sev-medium{border-color:var(--med)}.finding.sev-low{border-color:var(--low)}
.finding p{margin:.1rem 0}.meta{color:#3f3f46;font-size:12px}
ul.tree,ul.tree ul{list-style:none;padding-left:1.4rem;margin:0}
ul.tree{padding-left:0}
li.proc{margin:.2rem 0;border-left:2px solid var(--line);padding-left:.5rem}
li.proc.flagged>.line{background:#fef2f2;outline:1px solid #fca5a5}
.line{padding:.1rem .3rem}
tr.flagged td{background:#fef2f2}
.redacted{color:var(--crit);font-style:italic}
.copy{user-select:all}
footer{margin-top:2rem;border-top:1px solid var(--line);padding-top:.5rem;color:var(--info);
font-size:12px}
@media print{nav{display:none}body{padding:0;font-size:10pt;max-width:none}
details::details-content{content-visibility:visible;display:block}
a{color:inherit;text-decoration:none}.summary{grid-template-columns:1fr 1fr}
h2{break-after:avoid}tr{break-inside:avoid}
.sev,.finding,li.proc.flagged>.line,tr.flagged td{-webkit-print-color-adjust:exact;
print-color-adjust:exact}}
"""

SECTIONS = (("summary", "Summary"), ("findings", "Findings"), ("processes", "Process tree"),
            ("network", "Network"), ("files", "Files"), ("iocs", "Indicators"),
            ("secrets", "Secrets"), ("timeline", "Timeline"), ("custody", "Chain of custody"),
            ("analyzers", "Analyzers"))


def render_html(doc: dict[str, Any]) -> str:
    """The whole report as one HTML document (a view of the signed JSON ``doc``)."""
    body = join([
        _header(doc),
        tag("nav", tag("ul", *(tag("li", tag("a", label, href=f"#{key}"))
                               for key, label in SECTIONS)), aria_label="Sections"),
        _summary(doc), _findings(doc), _processes(doc), _network(doc), _files(doc),
        _iocs(doc), _secrets(doc), _timeline(doc), _custody(doc), _analyzers(doc),
        _warnings(doc), _other(doc), _footer(doc),
    ])
    head = join([
        void("meta", charset="utf-8"),
        void("meta", http_equiv="Content-Security-Policy", content=CSP),
        void("meta", name="referrer", content="no-referrer"),
        void("meta", name="viewport", content="width=device-width, initial-scale=1"),
        tag("title", v.title(doc)),
        tag("style", Safe(CSS)),
    ])
    return "<!DOCTYPE html>\n" + tag("html", tag("head", head), tag("body", body),
                                     lang="en") + "\n"


def badge(severity: str | None) -> Safe:
    if not severity:
        return Safe("")
    return tag("span", severity, class_=f"sev sev-{severity}")


def _kv(pairs: list[tuple[str, object]]) -> Safe:
    return tag("dl", *(join([tag("dt", k), tag("dd", val if isinstance(val, Safe) else
                                               value(val))]) for k, val in pairs),
               class_="kv")


def _section(key: str, title: str, *content: object) -> Safe:
    return tag("section", tag("h2", title), *content, id=key)


def _note(doc: dict[str, Any], section: str, empty: str) -> Safe:
    note = v.section_note(doc, section)
    return tag("p", note or empty, class_="muted")


def _pid(pid: Any) -> Safe:
    return tag("a", f"pid {pid}", href=f"#pid-{pid}") if isinstance(pid, int) else esc("")


def _header(doc: dict[str, Any]) -> Safe:
    verdict = doc["summary"]["verdict"]
    return tag("header", tag("div", tag("h1", "csi evidence report"),
                             tag("p", v.who(doc), " — ", doc["subject"].get("image") or "",
                                 class_="meta"),
                             tag("p", "report ", tag("code", doc["id"]), " — ", doc["created"],
                                 class_="meta")),
               tag("div", verdict.upper(), class_=f"sev verdict sev-{verdict}",
                   id="verdict"))


def _summary(doc: dict[str, Any]) -> Safe:
    s = doc["summary"]
    top = tag("ol", *(tag("li", badge(t["severity"]), " ",
                          tag("a", t["summary"], href=f"#finding-{t['index']}"),
                          tag("span", f" (+{t['same_rule']} more {t['rule']})", class_="muted")
                          if t["same_rule"] else "")
                      for t in s["top_findings"])) if s["top_findings"] else tag(
        "p", "no findings", class_="muted")
    captured = _kv([(k, val) for k, val in v.captured_fields(doc)])
    why = tag("ul", *(tag("li", line) for line in v.trigger_lines(doc)))
    verdict = tag("p", tag("strong", "Verdict: "), badge(s["verdict"]), " ", v.counts_text(doc))
    return _section("summary", "Summary", verdict, tag("div", tag(
        "div", tag("h3", "What was captured"), captured, class_="box"), tag(
        "div", tag("h3", "Why"), why, tag("h3", "Top findings"), top, class_="box"),
        class_="summary"))


def _findings(doc: dict[str, Any]) -> Safe:
    parts: list[object] = []
    for severity in v.SEVERITIES:
        group = [(i, f) for i, f in enumerate(doc["findings"]) if f["severity"] == severity]
        if group:
            parts.append(tag("h3", badge(severity), f" {len(group)} {severity}"))
            parts.extend(_finding(i, f) for i, f in group)
    return _section("findings", "Findings", *(parts or [tag("p", "none", class_="muted")]))


def _finding(index: int, f: dict[str, Any]) -> Safe:
    meta = [tag("code", f["rule"]), f" by {f['analyzer']}"]
    if f.get("pid") is not None:
        meta += [" — ", _pid(f["pid"])]
    if f.get("path"):
        meta += [" — ", tag("code", f["path"])]
    if f.get("mitre"):
        meta += [" — MITRE ATT&CK ", ", ".join(f["mitre"])]
    evidence = f.get("evidence") or {}
    rows = [((tag("code", k), value(val)), None) for k, val in evidence.items()]
    return tag("article", tag("p", badge(f["severity"]), " ", tag("strong", f["summary"])),
               tag("p", *meta, class_="meta"),
               table(("evidence", "value"), rows, class_="ev") if rows else "",
               id=f"finding-{index}", class_=f"finding sev-{f['severity']}")


def _processes(doc: dict[str, Any]) -> Safe:
    if not doc["processes"]:
        return _section("processes", "Process tree",
                        tag("p", "no process could be read", class_="muted"))
    html: list[str] = ['<ul class="tree">']
    depth = 0
    first = True
    for d, p in v.process_tree(doc):
        if first:
            first = False
        elif d > depth:
            html.append("<ul>")
        else:
            html.append("</li>" + "</ul></li>" * (depth - d))
        depth = d
        if isinstance(p, Elided):  # a branch past MAX_DEPTH: its processes listed flat
            html.append(_elided(p, doc))
        else:
            html.append(_process(p, doc))
    html.append("</li>" + "</ul></li>" * depth + "</ul>")
    legend = tag("p", "Processes that findings point at are highlighted, with links to them.",
                 class_="muted")
    return _section("processes", "Process tree", legend, Safe("".join(html)))


def _elided(cut: Elided, doc: dict[str, Any]) -> str:
    """The count of a cut branch, then its processes in one flat list (each still has its
    anchor, for the findings' links; its ppid is in its details)."""
    flat = "".join(_process(doc["processes"][i], doc) + "</li>" for i in cut.indices)
    return str(Safe('<li class="proc elided">') + tag("div", cut.text(), class_="meta")
               + Safe(f"<details><summary>{cut.processes:,} processes, flat</summary>"
                      f"<ul>{flat}</ul></details>"))


def _process(p: dict[str, Any], doc: dict[str, Any]) -> str:
    links = [tag("a", f"#{i} {doc['findings'][i]['rule']}", href=f"#finding-{i}")
             for i in p["findings"]]
    exe = [" exe ", tag("code", p.get("exe") or "?")]
    if p.get("exe_deleted"):
        exe.append(tag("span", " (deleted)", class_="redacted"))
    line = tag("div", tag("code", f"[{p['pid']}]"), " ", tag("strong", v.command(p),
                                                           class_="mono"),
               " ", badge(p.get("severity")),
               tag("div", f"user {v.user(p)}", *exe, f" — comm {p['comm']} — {p['state']}",
                   class_="meta"),
               tag("div", "findings: ", join(links, ", "), class_="meta") if links else "",
               class_="line")
    more: list[object] = [_kv([("ppid", p["ppid"]), ("cwd", p.get("cwd")),
                               ("root", p.get("root")),
                               ("uid/gid", f"{p.get('uid')}/{p.get('gid')} (effective "
                                           f"{p.get('euid')}/{p.get('egid')})"),
                               ("threads", ", ".join(f"{t['tid']} {t['name']}"
                                                     for t in p["threads"]))])]
    if p.get("fds"):
        more.append(table(("fd", "type", "path"), (
            ((f["fd"], f["type"], join([f["path"], tag("span", " (deleted)", class_="redacted")
                                        if f["deleted"] else ""])), None) for f in p["fds"])))
    if p.get("environment") is not None:
        more.append(table(("environment", "value"), (
            ((tag("code", e["name"]), tag("span", e["value"], class_="redacted")
              if e["redacted"] else tag("code", e["value"])), None) for e in p["environment"])))
    if p.get("environment_truncated"):
        more.append(tag("div", "environment" + v.more_bytes(p["environment_truncated"]),
                        class_="meta"))
    details = tag("details", tag("summary", "details"), *more)
    flagged = " flagged" if p["findings"] else ""
    return str(Safe(f'<li id="pid-{int(p["pid"])}" class="proc{flagged}">') + line + details)


def _network(doc: dict[str, Any]) -> Safe:
    flagged = v.flagged_network_pids(doc)
    rows = [((_pid(c["pid"]), c["comm"], c["protocol"], c["state"],
              v.hostport(c["local"], c["local_port"]),
              v.hostport(c["remote"], c["remote_port"]) if c["state"] != "LISTEN" else "",
              c.get("remote_class") or "", c["fd"]),
             "flagged" if c["pid"] in flagged else None) for c in doc["network"]]
    content = table(("process", "comm", "proto", "state", "local", "remote", "remote class",
                     "fd"), rows) if rows else _note(doc, "network", "no network connection")
    return _section("network", "Network", content)


def _files(doc: dict[str, Any]) -> Safe:
    flagged = v.flagged_paths(doc)
    rows = [((tag("code", f["path"]), f["change"], f.get("type") or "", f.get("content") or "",
              f.get("size") if f.get("size") is not None else "", f.get("mode") or "",
              tag("code", f.get("sha256") or "")),
             "flagged" if f["path"] in flagged else None) for f in doc["files"]]
    content = table(("path", "change", "type", "content", "size", "mode", "sha256"),
                    rows) if rows else _note(doc, "files", "no file changed")
    return _section("files", "Files changed", content)


def _iocs(doc: dict[str, Any]) -> Safe:
    iocs = doc["iocs"]
    if not iocs:
        return _section("iocs", "Indicators of compromise", _note(doc, "iocs", "none found"))
    rows = [((i["type"], tag("code", i["value"]), i["count"], v.ioc_where(i)), None)
            for i in iocs]
    plain = "\n".join(i["value"] for i in iocs)
    return _section("iocs", "Indicators of compromise",
                    table(("type", "value", "count", "where"), rows),
                    tag("h3", "Copy-ready list (one per line)"), tag("pre", plain,
                                                                     class_="copy"))


def _secrets(doc: dict[str, Any]) -> Safe:
    rows = [((s.get("source"), tag("code", s.get("name") or ""), s.get("type"),
              ", ".join(map(str, s.get("pids") or [])) or ", ".join(s.get("paths") or []),
              tag("span", s.get("redacted"), class_="redacted"),
              tag("code", s.get("fingerprint") or s.get("sha256"))), None)
            for s in doc["secrets"]]
    content = table(("source", "name", "type", "where", "value (redacted)", "fingerprint"),
                    rows) if rows else _note(doc, "secrets", "none found")
    return _section("secrets", "Secrets (redacted)", content)


def _timeline(doc: dict[str, Any]) -> Safe:
    rows = [((tag("code", e["time"]) if e["time"] else tag("span", "not recorded",
                                                            class_="muted"),
              e["label"], e.get("source") or ""), None) for e in doc["timeline"]]
    return _section("timeline", "Timeline", table(("time (UTC)", "event", "source"), rows))


def _custody(doc: dict[str, Any]) -> Safe:
    c = doc["custody"]
    a, cap, ver = c["archive"], c["capture"], c["verification"]
    sig = doc.get("signature", {})
    trigger = "; ".join(v.trigger_lines(doc))
    pairs: list[tuple[str, object]] = [
        ("Archive", tag("code", a["path"])), ("On host", a.get("host")),
        ("Size", f"{a['size']} bytes ({v.human_size(a['size'])}), {a['compression']}"),
        ("sha256 at capture", tag("code", cap["archive_sha256"]) if cap.get("archive_sha256")
         else tag("span", "not recorded (not captured by csi)", class_="muted")),
        ("Size at capture", cap.get("archive_size")),
        ("sha256 before analysis", tag("code", a["sha256"])),
        ("Verification", f"{ver['sha256_method']}; {ver['note']}"),
        ("Registry reference", cap.get("registry_ref")),
        ("Manifest digest", cap.get("manifest_digest")),
        ("Path on the node", cap.get("node_archive_path")),
        ("Captured by", cap.get("captured_by")),
        ("Triggered by", trigger),
        ("csi", f"{doc['tool']['version']} (Python {doc['tool']['python']}, host "
                f"{doc['tool']['host']})"),
        ("Analyzers", ", ".join(f"{n} {ver_}" for n, ver_ in doc["tool"]["analyzers"].items())),
        ("Signature", f"{sig.get('algorithm', 'unsigned')} over {sig.get('canonicalization', '?')}"
                      " canonical JSON"),
        ("Key fingerprint", tag("code", sig.get("key_fingerprint", "—"))),
        ("Verify with", tag("code", f"csi report verify {doc['id']}")),
    ]
    members = table(("member", "size", "sha256"), (
        ((tag("code", m["name"]), m["size"], tag("code", m["sha256"])), None)
        for m in a["members"]))
    return _section("custody", "Chain of custody", _kv(pairs), tag(
        "details", tag("summary", f"sha256 of the {len(a['members'])} archive members"),
        members))


def _analyzers(doc: dict[str, Any]) -> Safe:
    rows = [((a["name"], a["version"], a["status"], a["reason"], a["findings"],
              f"{a['seconds']:.3f} s"), None if a["status"] == "ran" else "flagged")
            for a in doc["analyzers"]]
    return _section("analyzers", "Analyzers",
                    table(("analyzer", "version", "status", "reason", "findings", "time"), rows))


def _warnings(doc: dict[str, Any]) -> Safe:
    if not doc["warnings"]:
        return Safe("")
    return _section("warnings", "Warnings",
                    tag("ul", *(tag("li", w) for w in doc["warnings"])))


def _other(doc: dict[str, Any]) -> Safe:
    parts: list[object] = []
    for check in doc["alert_checks"]:
        parts.append(tag("h3", f"Alert check: {check.get('rule')}"))
        parts.append(_kv([("confirmed", check.get("confirmed")), ("pid", check.get("pid")),
                          *sorted((f"check {k}", val) for k, val in
                                  (check.get("checks") or {}).items())]))
    for kind, items in doc["other_records"].items():
        parts.append(tag("details", tag("summary", f"{kind} records ({len(items)})"),
                         value(items)))
    return _section("records", "Other records", *parts) if parts else Safe("")


def _footer(doc: dict[str, Any]) -> Safe:
    return tag("footer", tag("p", f"Rendered by csi {doc['tool']['version']} from the signed "
                                  f"JSON of record (report.json, schema {doc['schema']} "
                                  f"v{doc['schema_version']}). This page runs no script and "
                                  "loads nothing."))
