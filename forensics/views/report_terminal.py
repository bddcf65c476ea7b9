"""Terminal renderings of stored reports (rich): ``csi report show`` and ``csi report list``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from forensics.archive.proctree import TERMINAL_DEPTH, Elided
from forensics.report import phrases as v
from forensics.visible import escape, visible  # control characters made visible

if TYPE_CHECKING:
    from forensics.report.store import IndexRow

STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow",
         "low": "cyan", "info": "dim", "none": "green"}
SHORT = {"critical": "C", "high": "H", "medium": "M", "low": "L", "info": "I"}


def sev(severity: str | None) -> str:
    if not severity:
        return ""
    return f"[{STYLE.get(severity, 'bold')}]{severity.upper()}[/]"


LIST_COLUMNS = ("ID", "Created (UTC)", "Verdict", "Findings", "Namespace/Pod", "Container",
                "Trigger")


def _list_cells(r: IndexRow) -> tuple[str, ...]:
    counts = " ".join(f"{r.counts[s]}{SHORT[s]}" for s in v.SEVERITIES if r.counts.get(s))
    where = f"{r.namespace or '-'}/{r.pod or '-'}" if r.pod else "-"
    return (r.id, r.created[:19].replace("T", " "), r.verdict.upper(), counts or "0", where,
            r.container or "-", r.trigger)


def list_table(rows: list[IndexRow], total: int) -> Table:
    table = Table(show_edge=False, header_style="bold",
                  caption=f"{len(rows)} of {total} reports" if total > len(rows) else None)
    for column in LIST_COLUMNS:
        table.add_column(column, overflow="fold")
    for r in rows:
        cells = [escape(c) for c in _list_cells(r)]
        cells[2] = sev(r.verdict) or r.verdict
        table.add_row(*cells)
    return table


def list_lines(rows: list[IndexRow], total: int) -> Iterator[str]:
    """The same table as plain aligned text: fast for thousands of rows (``--limit 0``)."""
    cells = [LIST_COLUMNS, *(tuple(map(visible, _list_cells(r))) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(LIST_COLUMNS) - 1)]
    for row in cells:
        yield "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]])
    if total > len(rows):
        yield f"{len(rows)} of {total} reports"


def report_view(doc: dict[str, Any]) -> Group:
    """The whole report for a terminal: summary first, then the details."""
    parts: list[RenderableType] = [_summary(doc), _findings(doc), _tree(doc)]
    parts += [t for t in (_network(doc), _files(doc), _iocs(doc)) if t is not None]
    parts += [_timeline(doc), _custody(doc)]
    if doc["warnings"]:
        parts.append(Text("\n".join(f"warning: {visible(w)}" for w in doc["warnings"]),
                          style="yellow"))
    return Group(*parts)


def _summary(doc: dict[str, Any]) -> Panel:
    lines = [f"Verdict: {sev(doc['summary']['verdict'])}  ({escape(v.counts_text(doc))})"]
    captured = [f"{label}: {escape(str(val))}" for label, val in v.captured_fields(doc) if val]
    lines += captured
    lines += [f"Why: {escape(line)}" for line in v.trigger_lines(doc)]
    for t in doc["summary"]["top_findings"]:
        more = f" (+{t['same_rule']} more)" if t["same_rule"] else ""
        lines.append(f"  {sev(t['severity'])} {escape(t['summary'])}{more}")
    return Panel("\n".join(lines), title=f"csi report {doc['id']} — {escape(doc['created'])}",
                 title_align="left")


def _findings(doc: dict[str, Any]) -> Tree:
    tree = Tree("[bold]Findings[/]")
    for severity in v.SEVERITIES:
        group = [(i, f) for i, f in enumerate(doc["findings"]) if f["severity"] == severity]
        if not group:
            continue
        branch = tree.add(f"{sev(severity)} ({len(group)})")
        for i, f in group:
            node = branch.add(f"#{i} {escape(f['summary'])}  [dim]{escape(f['rule'])}[/]")
            for key, val in (f.get("evidence") or {}).items():
                node.add(f"[dim]{escape(key)}:[/] {escape(_short(val))}")
    return tree


def _short(val: Any, limit: int = 160) -> str:
    import json

    text = val if isinstance(val, str) else json.dumps(val, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + "…"


def _tree(doc: dict[str, Any]) -> Tree:
    root = Tree("[bold]Process tree[/]")
    stack: list[Tree] = [root]
    for depth, p in v.process_tree(doc, TERMINAL_DEPTH):
        del stack[depth + 1:]
        if isinstance(p, Elided):
            stack.append(stack[-1].add(f"[dim]{escape(p.text())}[/]"))
            continue
        flag = f" {sev(p['severity'])} findings {', '.join(f'#{i}' for i in p['findings'])}" \
            if p["findings"] else ""
        deleted = " [red](deleted)[/]" if p.get("exe_deleted") else ""
        label = (f"[bold]\\[{p['pid']}][/] {escape(v.command(p))} [dim]user "
                 f"{escape(v.user(p))}, exe {escape(p.get('exe') or '?')}[/]{deleted}{flag}")
        stack.append(stack[-1].add(label))
    return root


def _table(title: str, headers: tuple[str, ...], rows: Iterator[tuple[str, ...]]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", show_edge=False,
                  header_style="bold")
    for h in headers:
        table.add_column(h, overflow="fold")
    for row in rows:
        table.add_row(*(escape(c) for c in row))
    return table


def _network(doc: dict[str, Any]) -> Table | None:
    if not doc["network"]:
        return None
    return _table("Network", ("pid", "comm", "proto", "state", "local", "remote", "class"), (
        (str(c["pid"]), c["comm"], c["protocol"], c["state"],
         v.hostport(c["local"], c["local_port"]),
         v.hostport(c["remote"], c["remote_port"]) if c["state"] != "LISTEN" else "",
         c.get("remote_class") or "") for c in doc["network"]))


def _files(doc: dict[str, Any]) -> Table | None:
    if not doc["files"]:
        return None
    return _table("Files changed", ("path", "change", "content", "size", "sha256"), (
        (f["path"], f["change"], f.get("content") or f.get("type") or "",
         str(f.get("size") if f.get("size") is not None else ""), f.get("sha256") or "")
        for f in doc["files"]))


def _iocs(doc: dict[str, Any]) -> Table | None:
    if not doc["iocs"]:
        return None
    return _table("Indicators", ("type", "value", "count", "where"), (
        (i["type"], str(i["value"]), str(i["count"]), v.ioc_where(i)) for i in doc["iocs"]))


def _timeline(doc: dict[str, Any]) -> Table:
    return _table("Timeline", ("time (UTC)", "event", "source"), (
        (e["time"] or "not recorded", e["label"], e.get("source") or "")
        for e in doc["timeline"]))


def _custody(doc: dict[str, Any]) -> Panel:
    c = doc["custody"]
    a, cap = c["archive"], c["capture"]
    sig = doc.get("signature", {})
    lines = [f"archive {a['path']} ({a['size']} bytes, {a['compression']})",
             f"sha256 before analysis {a['sha256']}",
             f"sha256 at capture {cap.get('archive_sha256') or 'not recorded'}",
             f"registry {cap.get('registry_ref') or '-'} {cap.get('manifest_digest') or ''}",
             f"{c['verification']['sha256_method']}; {c['verification']['note']}",
             f"csi {doc['tool']['version']}; analyzers "
             + ", ".join(f"{n} {x}" for n, x in doc["tool"]["analyzers"].items()),
             f"signed {sig.get('algorithm', '-')} by {sig.get('key_fingerprint', '-')}"]
    return Panel(escape("\n".join(lines)), title="Chain of custody", title_align="left")
