"""What every rendering of a report says the same way: titles, the trigger, counts, the tree.

The HTML, Markdown and terminal views are views of the signed JSON and of
nothing else; the sentences they share are made here so they never differ.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from forensics.archive.proctree import MAX_DEPTH, Elided, build_forest
from forensics.trigger import ALERT_KINDS
from forensics.units import human_size as human_size  # the one copy, re-exported

SEVERITIES = ("critical", "high", "medium", "low", "info")
# which analyzer fills which section, to say why a section is empty
SECTION_ANALYZER = {"network": "network", "files": "filesystem", "iocs": "ioc",
                    "secrets": "secrets", "alert_checks": "alert"}


def who(doc: dict[str, Any]) -> str:
    """``namespace/pod (container)``, or the container's name outside Kubernetes."""
    s = doc["subject"]
    if s.get("pod"):
        return f"{s.get('namespace') or '?'}/{s['pod']} ({s.get('container') or '?'})"
    return s.get("container_name") or s.get("container_id", "")[:12] or "unknown container"


def title(doc: dict[str, Any]) -> str:
    return f"{doc['summary']['verdict'].upper()} — {who(doc)} — csi report {doc['id']}"


def counts_text(doc: dict[str, Any]) -> str:
    counts = doc["summary"]["counts"]
    parts = [f"{counts[s]} {s}" for s in SEVERITIES if counts.get(s)]
    return ", ".join(parts) if parts else "no findings"


def trigger_lines(doc: dict[str, Any]) -> list[str]:
    """Why the container was captured, in a few plain sentences."""
    t = doc["trigger"]
    alert = t.get("alert")
    lines = []
    if alert:
        lines.append(f"Falco alert {alert.get('rule', '?')!r} (priority "
                     f"{alert.get('priority', '?')}, {alert.get('time', 'time unknown')}"
                     + (f", on {alert['hostname']}" if alert.get("hostname") else "") + ")")
    if t["kind"] in ALERT_KINDS:
        lines.append("captured automatically" + (f" by policy {t['policy']!r}"
                                                 if t.get("policy") else ""))
    else:
        lines.append(f"analysed by {t.get('responder') or 'an unknown responder'}"
                     + (f": {t['reason']}" if t.get("reason") else " (no reason given)"))
    confirmed = doc["summary"].get("alert_confirmed")
    if alert and confirmed is not None:
        lines.append("the checkpoint confirms the alert" if confirmed else
                     "the checkpoint does NOT confirm the alert")
    return lines


def captured_fields(doc: dict[str, Any]) -> list[tuple[str, str | None]]:
    s = doc["subject"]
    node = s.get("node")
    if node and s.get("node_source") and s["node_source"] != "capture":
        node = f"{node} (from the {s['node_source']})"
    return [("Cluster", s.get("cluster")), ("Node", node), ("Namespace", s.get("namespace")),
            ("Pod", s.get("pod")), ("Container", s.get("container") or s.get("container_name")),
            ("Image", s.get("image")), ("Container ID", s.get("container_id")),
            ("Engine", s.get("engine"))]


def section_note(doc: dict[str, Any], section: str) -> str | None:
    """Why a section is empty when its analyzer did not run; None if it ran."""
    name = SECTION_ANALYZER.get(section)
    run = next((a for a in doc["analyzers"] if a["name"] == name), None)
    if name is None or (run is not None and run["status"] == "ran"):
        return None
    if run is None:
        return f"the {name} analyzer was not run"
    return f"the {name} analyzer {run['status']}: {run['reason']}"


def process_tree(doc: dict[str, Any], max_depth: int = MAX_DEPTH,
                 ) -> Iterator[tuple[int, dict[str, Any] | Elided]]:
    """(depth, process) in tree order: parents before children, children by pid. Built by
    the one defensive tree builder (every process appears, whatever pstree said) and walked
    without recursion; a branch deeper than ``max_depth`` comes as one (depth, :class:`Elided`)
    whose ``text()`` says how much is cut; the JSON of record keeps those processes."""
    procs = doc["processes"]
    forest = build_forest([(p["pid"], p["ppid"]) for p in procs])
    for item in forest.walk(max_depth):
        if isinstance(item, Elided):
            yield item.depth, item
        else:
            yield item[0], procs[item[1]]


def command(p: dict[str, Any]) -> str:
    text = " ".join(p["cmdline"]) if p.get("cmdline") else f"[{p['comm']}]"
    return text + more_bytes(p.get("cmdline_truncated"))


def more_bytes(n: Any) -> str:
    """`` … 5,832,704 more bytes`` after a value csi read only the start of; else ''."""
    return f" … {n:,} more bytes" if isinstance(n, int) and n > 0 else ""


def user(p: dict[str, Any]) -> str:
    if p.get("uid") is None:
        return "?"
    return f"{p['user']} ({p['uid']})" if p.get("user") else f"uid {p['uid']}"


def flagged_paths(doc: dict[str, Any]) -> dict[str, str]:
    """Paths that findings point at, with the worst severity."""
    out: dict[str, str] = {}
    for f in doc["findings"]:
        path = f.get("path")
        if path and (path not in out or _rank(f["severity"]) > _rank(out[path])):
            out[path] = f["severity"]
    return out


def flagged_network_pids(doc: dict[str, Any]) -> dict[int, str]:
    """Processes with a network finding (or a reverse shell), with the worst severity."""
    out: dict[int, str] = {}
    for f in doc["findings"]:
        pid = f.get("pid")
        if not isinstance(pid, int):
            continue
        networked = f["rule"].startswith("network.") or f["rule"] == "process.reverse-shell"
        if networked and (pid not in out or _rank(f["severity"]) > _rank(out[pid])):
            out[pid] = f["severity"]
    return out


def _rank(severity: str) -> int:
    return len(SEVERITIES) - SEVERITIES.index(severity) if severity in SEVERITIES else -1


def hostport(host: Any, port: Any) -> str:
    host = str(host or "")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def ioc_where(ioc: dict[str, Any]) -> str:
    pids = sorted({loc["pid"] for loc in ioc.get("locations", []) if "pid" in loc})
    paths = sorted({loc["path"] for loc in ioc.get("locations", []) if loc.get("path")})
    parts = ([f"memory of pid {', '.join(map(str, pids))}"] if pids else []) + paths
    return "; ".join(parts)


