"""Terminal renderings (rich): the show/list tables and the inspect tree.

They render the same dicts that ``--format json`` prints, so the tree and
the JSON always state the same facts.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.tree import Tree

from forensics.archive.proctree import TERMINAL_DEPTH, elision_text
from forensics.report.phrases import more_bytes
from forensics.units import human_size as human_size  # the one copy, re-exported
from forensics.visible import escape  # rich's escape, control characters made visible


def show_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(show_edge=False, header_style="bold")
    for column in ("Container", "Image", "ID", "Runtime", "Created", "Engine", "CHKPT Size",
                   "Root Fs Diff Size", "Pod", "Namespace"):
        table.add_column(column, overflow="fold")
    for row in rows:
        sizes = row["checkpoint_size"]
        k = row["kubernetes"]
        table.add_row(*(escape(str(v)) for v in (
            row["container_name"], row["image"], row["container_id_short"], row["runtime"],
            row["created"], row["engine"], human_size(sizes.get("total_size", 0)),
            human_size(sizes.get("root_fs_diff_size", 0)), k.get("pod") or "-",
            k.get("namespace") or "-",
        )))
    return table


def list_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(show_edge=False, header_style="bold")
    for column in ("Namespace", "Pod", "Container", "Engine", "Time Checkpointed",
                   "Checkpoint Name"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(str(row.get(k) or "-")) for k in (
            "namespace", "pod", "container", "engine", "checkpointed", "file",
        )))
    return table


def inspect_tree(node: dict[str, Any]) -> Tree:
    """The checkpointctl-style tree of one ``inspect_dict``."""
    tree = Tree(f"[bold]{escape(node['container_name'] or 'Container')}[/]")
    for label, key in (("Image", "image"), ("ID", "id"), ("Runtime", "runtime"),
                       ("Created", "created"), ("Checkpointed", "checkpointed"),
                       ("Engine", "engine")):
        if node.get(key):
            tree.add(f"{label}: {escape(str(node[key]))}")
    k = node["kubernetes"]
    if k.get("pod"):
        tree.add(f"Pod: {escape(k['namespace'] or '')}/{escape(k['pod'])} "
                 f"(container {escape(k.get('container') or '?')})")
    sizes = node["checkpoint_size"]
    size_branch = tree.add(f"Checkpoint size: {human_size(sizes.get('total_size', 0))}")
    if sizes.get("memory_pages_size"):
        size_branch.add(f"Memory pages size: {human_size(sizes['memory_pages_size'])}")
    if sizes.get("root_fs_diff_size"):
        tree.add(f"Root FS diff size: {human_size(sizes['root_fs_diff_size'])}")
    archive = node["archive"]
    cached = ", from csi's hash cache" if archive.get("sha256_cached") else ""
    tree.add(f"Archive: sha256 {archive['sha256']} ({human_size(archive['size'])}, "
             f"{archive['compression']}{cached})")
    if "statistics" in node:
        _add_stats(tree, node["statistics"])
    if "metadata" in node:
        _add_metadata(tree, node["metadata"])
    if "process_tree" in node:
        files = {f["pid"]: f["open_files"] for f in node.get("file_descriptors", [])}
        sockets = {s["pid"]: s["open_sockets"] for s in node.get("sockets", [])}
        branch = tree.add("Process tree")
        for root in [node["process_tree"], *node.get("other_process_trees", [])]:
            _add_processes(branch, root, files, sockets)
    if node.get("mounts"):
        mounts = tree.add("Overview of mounts")
        for mount in node["mounts"]:
            branch = mounts.add(f"Destination: {escape(mount['destination'])}")
            branch.add(f"Type: {escape(mount['type'])}")
            branch.add(f"Source: {escape(mount['source'])}")
    if "rootfs_diff" in node:
        _add_rootfs(tree, node)
    for warning in node.get("warnings", []):
        tree.add(f"[yellow]warning: {escape(warning)}[/]")
    return tree


def format_micros(us: int) -> str:
    """A duration in microseconds as checkpointctl prints it (239 µs, 2.456 ms, 1.5 s)."""
    if us < 1000:
        return f"{us} µs"
    value, unit = (us / 1000, "ms") if us < 1_000_000 else (us / 1_000_000, "s")
    text = f"{value:.5g}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} {unit}"


def _add_stats(tree: Tree, stats: dict[str, int]) -> None:
    branch = tree.add("CRIU dump statistics")
    for key in ("freezing_time", "frozen_time", "memdump_time", "memwrite_time"):
        branch.add(f"{key.replace('_', ' ').capitalize()}: {format_micros(stats.get(key, 0))}")
    for key in ("pages_scanned", "pages_written"):
        branch.add(f"{key.replace('_', ' ').capitalize()}: {stats.get(key, 0)}")


def _add_metadata(tree: Tree, meta: dict[str, Any]) -> None:
    branch = tree.add("Metadata")
    if meta.get("pod_name"):
        branch.add(f"Pod name: {escape(meta['pod_name'])}")
    if meta.get("kubernetes_namespace"):
        branch.add(f"Kubernetes namespace: {escape(meta['kubernetes_namespace'])}")
    if meta.get("annotations"):
        annotations = branch.add("Annotations")
        for key, value in meta["annotations"].items():
            annotations.add(f"{escape(key)}: {escape(value)}")


def _add_processes(
    parent: Tree,
    root: dict[str, Any],
    files: dict[int, list[dict[str, Any]]],
    sockets: dict[int, list[dict[str, Any]]],
) -> None:
    """One root's tree, without recursion; past TERMINAL_DEPTH levels a branch is one line
    that counts it (``inspect_dict`` itself cut what is deeper than MAX_DEPTH)."""
    stack: list[tuple[Tree, dict[str, Any], int]] = [(parent, root, 0)]
    while stack:
        under, ps, depth = stack.pop()
        node = _add_process(under, ps, files, sockets)
        if ps.get("children") and depth + 1 >= TERMINAL_DEPTH:
            node.add(f"[dim]{escape(_elided_below(ps))}[/]")
        elif ps.get("children") or "children_elided" in ps:
            if "children_elided" in ps:
                node.add(f"[dim]{escape(ps['children_elided']['text'])}[/]")
            stack.extend((node, child, depth + 1) for child in reversed(ps.get("children", [])))


def _elided_below(ps: dict[str, Any]) -> str:
    """The elision line for everything below ``ps`` (and below where inspect_dict cut)."""
    count, levels, deepest = 0, 0, ps
    stack = [(child, 1) for child in reversed(ps["children"])]
    first = stack[-1][0]["pid"]
    while stack:
        node, depth = stack.pop()
        count += 1
        if depth > levels:
            levels, deepest = depth, node
        stack.extend((child, depth + 1) for child in reversed(node.get("children", [])))
        cut = node.get("children_elided")
        if cut:
            count += cut["processes"]
            if depth + cut["levels"] > levels:
                levels = depth + cut["levels"]
                deepest = {"pid": cut["deepest_pid"]}
    return elision_text(count, levels, first, deepest["pid"])


def _add_process(
    parent: Tree,
    ps: dict[str, Any],
    files: dict[int, list[dict[str, Any]]],
    sockets: dict[int, list[dict[str, Any]]],
) -> Tree:
    name = (ps.get("cmdline") or ps["command"]) + more_bytes(ps.get("cmdline_truncated"))
    state = "" if ps["task_state"] == "Alive" else f" ({ps['task_state']})"
    label = escape(f"[{ps['pid']}]{state}")
    node = parent.add(f"[bold]{label}[/]  {escape(name)}")
    details = [f"comm {escape(ps['command'])}", f"ppid {ps['ppid']}"]
    if ps.get("uid") is not None:
        details.append(f"uid {ps['uid']} gid {ps['gid']}")
    if ps.get("exe"):
        details.append(f"exe {escape(ps['exe'])}")
    if ps.get("cwd"):
        details.append(f"cwd {escape(ps['cwd'])}")
    node.add(", ".join(details))
    if len(ps.get("threads", [])) > 1:
        threads = node.add("Threads")
        for t in ps["threads"]:
            threads.add(escape(f"[{t['tid']}] {t['name']}"))
    if ps.get("environment_variables"):
        env = node.add("Environment variables")
        for key, value in ps["environment_variables"].items():
            env.add(f"{escape(key)}={escape(value)}")
        if ps.get("environment_truncated"):
            env.add(more_bytes(ps["environment_truncated"]).strip())
    if files.get(ps["pid"]):
        open_files = node.add("Open files")
        for f in files[ps["pid"]]:
            deleted = " (deleted)" if f.get("deleted") else ""
            open_files.add(escape(f"[{f['fd']}]  {f['path']}{deleted}"))
    if sockets.get(ps["pid"]):
        open_sockets = node.add("Open sockets")
        for s in sockets[ps["pid"]]:
            open_sockets.add(escape(socket_line(s)))
    return node


def socket_line(s: dict[str, Any]) -> str:
    d = s["data"]
    if d["type"] == "UNIX":
        return f"[fd {s['fd']}] UNIX ({d['state']}) {d['address'] or '@'}"
    state = f" ({d['state']})" if d.get("state") else ""
    return (f"[fd {s['fd']}] {d['type']}{state} {_hostport(d['src'], d['src_port'])} -> "
            f"{_hostport(d['dst'], d['dst_port'])}")


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _add_rootfs(tree: Tree, node: dict[str, Any]) -> None:
    if node["rootfs_diff"]:
        branch = tree.add("Root FS changes")
        for entry in node["rootfs_diff"]:
            digest = f" sha256 {entry['sha256']}" if entry.get("sha256") else ""
            branch.add(f"{escape(entry['path'])} ({entry['type']}, {entry['size']} B, "
                       f"mode {entry['mode']}){digest}")
    if node["deleted_files"]:
        branch = tree.add("Deleted files")
        for path in node["deleted_files"]:
            branch.add(escape(path))
    files = [e for e in node.get("devshm", []) if e["type"] != "dir"]
    if files:
        branch = tree.add("/dev/shm")
        for entry in files:
            branch.add(f"{escape(entry['path'])} ({entry['size']} B)")
