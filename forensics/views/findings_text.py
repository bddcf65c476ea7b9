"""Views of an analysis (the JSON of record from ``AnalysisResult.to_dict``): tree and Markdown."""

from __future__ import annotations

from typing import Any

from rich.tree import Tree

from forensics.visible import escape, visible  # control characters made visible

SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")
SEVERITY_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow",
                  "low": "cyan", "info": "dim"}


def _title(result: dict[str, Any]) -> str:
    k = result["kubernetes"]
    c = result["container"]
    who = f"{k['namespace']}/{k['pod']} ({k['container']})" if k.get("pod") else c["name"]
    return f"{who} — {c['image']} — {c['engine']}"


def _counts(result: dict[str, Any]) -> str:
    counts = {s: 0 for s in SEVERITY_ORDER}
    for f in result["findings"]:
        counts[f["severity"]] += 1
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no findings"


def findings_tree(result: dict[str, Any]) -> Tree:
    verdict = result["verdict"]
    style = SEVERITY_STYLE.get(verdict, "bold")
    tree = Tree(f"[bold]{escape(_title(result))}[/]  verdict: [{style}]{verdict.upper()}[/]")
    tree.add(f"archive {escape(result['archive']['path'])} sha256 {result['archive']['sha256']}")
    tree.add(_counts(result))
    for severity in SEVERITY_ORDER:
        group = [f for f in result["findings"] if f["severity"] == severity]
        if not group:
            continue
        branch = tree.add(f"[{SEVERITY_STYLE[severity]}]{severity.upper()}[/] ({len(group)})")
        for f in group:
            node = branch.add(f"{escape(f['summary'])}  [dim]{escape(f['rule'])}[/]")
            if f.get("mitre"):
                node.add(f"MITRE ATT&CK: {', '.join(f['mitre'])}")
    runs = tree.add("Analyzers")
    for run in result["analyzers"]:
        reason = f": {escape(run['reason'])}" if run["reason"] else ""
        runs.add(f"{run['name']} {run['version']} — {run['status']}{reason}")
    for warning in result.get("warnings", []):
        tree.add(f"[yellow]warning: {escape(warning)}[/]")
    return tree


def _md(text: object) -> str:
    """Escape what Markdown would interpret; archive content is never markup."""
    out = visible(text)
    for ch in "\\`*_{}[]<>()#+!|":
        out = out.replace(ch, "\\" + ch)
    return out.replace("\n", " ")


def findings_markdown(result: dict[str, Any]) -> str:
    lines = [f"# csi analysis: {_md(_title(result))}", "",
             f"**Verdict: {result['verdict'].upper()}** ({_counts(result)})", "",
             f"- Archive: `{result['archive']['path']}`",
             f"- sha256: `{result['archive']['sha256']}`",
             f"- Container id: `{result['container']['id']}`", ""]
    for severity in SEVERITY_ORDER:
        group = [f for f in result["findings"] if f["severity"] == severity]
        if not group:
            continue
        lines += [f"## {severity.capitalize()} ({len(group)})", ""]
        for f in group:
            mitre = f" — MITRE {', '.join(f['mitre'])}" if f.get("mitre") else ""
            lines.append(f"- {_md(f['summary'])} (`{f['rule']}`){mitre}")
        lines.append("")
    lines += ["## Analyzers", "", "| analyzer | version | status | reason |", "|---|---|---|---|"]
    for run in result["analyzers"]:
        lines.append(
            f"| {run['name']} | {run['version']} | {run['status']} | {_md(run['reason'])} |")
    return "\n".join(lines) + "\n"
