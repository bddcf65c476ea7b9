"""The ``csi inspect`` view of a checkpoint, as a JSON-ready dict.

Key names follow checkpointctl's ``inspect --format json`` so scripts written
for it keep working; csi adds what checkpointctl lacks (per-process ppid,
threads, exe/cwd/root, credentials, rootfs-diff hashes, TCP queues, the
archive's own sha256). Which parts appear is chosen by :class:`Sections`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forensics.archive.checkpoint import Checkpoint
from forensics.archive.model import FileEntry, Process, Socket
from forensics.archive.proctree import MAX_DEPTH, Elided, Forest, build_forest


@dataclass(frozen=True)
class Sections:
    """What ``csi inspect`` shows; mirrors checkpointctl's flags."""

    ps_tree: bool = False
    ps_tree_cmd: bool = False
    ps_tree_env: bool = False
    files: bool = False
    sockets: bool = False
    mounts: bool = False
    stats: bool = False
    metadata: bool = False
    rootfs: bool = False
    pid: int | None = None

    @classmethod
    def everything(cls, pid: int | None = None) -> Sections:
        return cls(True, True, True, True, True, True, True, True, True, pid)

    @property
    def needs_processes(self) -> bool:
        return self.ps_tree or self.ps_tree_cmd or self.ps_tree_env or self.files or self.sockets


def inspect_dict(ckpt: Checkpoint, sections: Sections) -> dict[str, Any]:
    """One archive's object in the ``csi inspect --format json`` array."""
    c = ckpt.container
    k = ckpt.kubernetes
    sizes = ckpt.sizes
    out: dict[str, Any] = {
        "container_name": c.name,
        "container_id_short": c.id[:12],
        "image": c.image,
        "id": c.id,
        "runtime": c.runtime,
        "created": c.created,
        "engine": c.engine,
        "checkpoint_size": _nonzero({
            "total_size": sizes.total_size,
            "memory_pages_size": sizes.memory_pages_size,
            "root_fs_diff_size": sizes.root_fs_diff_size,
        }),
        "kubernetes": {
            "pod": k.pod, "namespace": k.namespace, "container": k.container, "pod_uid": k.pod_uid,
        },
        "archive": None,  # filled last: the digest is being computed meanwhile
    }
    if c.checkpointed:
        out["checkpointed"] = c.checkpointed
    if sections.stats and ckpt.stats is not None:
        out["statistics"] = ckpt.stats.as_dict()
    if sections.metadata:
        out["metadata"] = _nonzero({
            "pod_name": k.pod or "", "kubernetes_namespace": k.namespace or "",
            "annotations": dict(sorted(ckpt.annotations.items())),
        })
    if sections.needs_processes:
        _add_processes(out, ckpt, sections)
    if sections.mounts:
        out["mounts"] = [
            {"destination": mt.destination, "type": mt.type, "source": mt.source}
            for mt in ckpt.mounts
        ]
    if sections.rootfs:
        out["rootfs_diff"] = [file_entry_dict(e) for e in ckpt.rootfs_diff]
        out["deleted_files"] = list(ckpt.deleted_files)
        out["devshm"] = [file_entry_dict(e) for e in ckpt.devshm]
    if sections.sockets:
        out["tcp_queues"] = [
            {"ino": q.ino, "inq_bytes": len(q.inq), "outq_bytes": len(q.outq),
             "inq": q.inq.decode("latin-1"), "outq": q.outq.decode("latin-1")}
            for q in ckpt.tcp_queues
        ]
    out["archive"] = {
        "path": ckpt.archive.path, "sha256": ckpt.archive.sha256, "size": ckpt.archive.size,
        "compression": ckpt.archive.compression, "sha256_cached": ckpt.archive.sha256_cached,
    }
    warnings = ckpt.warnings
    if warnings:
        out["warnings"] = warnings
    return out


def _add_processes(out: dict[str, Any], ckpt: Checkpoint, sections: Sections) -> None:
    processes = ckpt.processes
    forest = build_forest([(p.pid, p.ppid) for p in processes])  # linear: built once
    selected = processes
    if sections.pid is not None:
        selected = _subtree(processes, forest, sections.pid)
        forest = build_forest([(p.pid, p.ppid) for p in selected])
    if sections.ps_tree or sections.ps_tree_cmd or sections.ps_tree_env:
        _add_tree(out, selected, forest, sections)
    if sections.files:
        out["file_descriptors"] = [
            {
                "pid": p.pid,
                "open_files": [
                    {"type": f.type, "fd": f"{f.type} {f.fd}", "path": f.path,
                     "deleted": f.deleted}
                    for f in p.files
                ]
                + [{"type": "", "fd": "cwd", "path": p.cwd or ""},
                   {"type": "", "fd": "root", "path": p.root or ""}],
            }
            for p in selected if p.has_state
        ]
    if sections.sockets:
        out["sockets"] = [
            {"pid": p.pid, "open_sockets": [socket_dict(s) for s in p.sockets]}
            for p in selected if p.sockets
        ]


def _add_tree(out: dict[str, Any], selected: list[Process], forest: Forest,
              sections: Sections) -> None:
    """``process_tree`` (checkpointctl's nested tree, built without recursion). Every process
    appears once: a branch deeper than MAX_DEPTH is cut (``children_elided`` says how much)
    and its processes are listed flat, with their ppid, in ``process_tree_elided``; roots
    after the first (a hostile pstree can have several) are in ``other_process_trees``."""
    roots: list[dict[str, Any]] = []
    path: list[dict[str, Any]] = []  # the nodes from the root down to the current one
    elided: list[dict[str, Any]] = []
    for item in forest.walk(MAX_DEPTH):
        if isinstance(item, Elided):
            path[item.depth - 1]["children_elided"] = {
                "processes": item.processes, "levels": item.levels,
                "first_pid": item.first_pid, "deepest_pid": item.deepest_pid,
                "text": item.text()}
            elided += (_ps_node(selected[i], sections) for i in item.indices)
            continue
        depth, i = item
        node = _ps_node(selected[i], sections)
        del path[depth:]
        if path:
            path[-1].setdefault("children", []).append(node)
        else:
            roots.append(node)
        path.append(node)
    if roots:
        out["process_tree"] = roots[0]
    if len(roots) > 1:
        out["other_process_trees"] = roots[1:]
    if elided:
        out["process_tree_elided"] = elided


def _subtree(processes: list[Process], forest: Forest, pid: int) -> list[Process]:
    """``pid`` and its descendants, in tree order (whatever order pstree lists them in)."""
    start = next((i for i, p in enumerate(processes) if p.pid == pid), None)
    if start is None:
        return []
    return [processes[i] for i in forest.subtree(start)]


def _ps_node(p: Process, sections: Sections) -> dict[str, Any]:
    node: dict[str, Any] = {
        "pid": p.pid,
        "ppid": p.ppid,
        "command": p.comm,
        "task_state": p.state_name,
        "threads": [{"tid": t.tid, "name": t.name} for t in p.threads],
        "exe": p.exe,
        "cwd": p.cwd,
        "root": p.root,
        "uid": p.creds.uid if p.creds else None,
        "gid": p.creds.gid if p.creds else None,
        "memory_pages_size": p.memory_pages_bytes,
    }
    if sections.ps_tree_cmd and p.cmdline is not None:
        node["cmdline"] = " ".join(p.cmdline)
        node["argv"] = list(p.cmdline)
        if p.cmdline_truncated:  # bytes csi did not read (forensics/limits.py)
            node["cmdline_truncated"] = p.cmdline_truncated
    if sections.ps_tree_env and p.environ is not None:
        node["environment_variables"] = env_dict(p.environ)
        if p.environ_truncated:
            node["environment_truncated"] = p.environ_truncated
    return node


def env_dict(environ: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in environ:
        key, sep, value = item.partition("=")
        out[key if sep else item] = value
    return out


def socket_dict(s: Socket) -> dict[str, Any]:
    data: dict[str, Any]
    if s.kind == "UNIXSK":
        data = {"type": "UNIX", "address": s.name, "state": s.state, "peer": s.peer}
    else:
        data = {
            "type": s.protocol, "state": s.state, "src": s.src, "src_port": s.src_port,
            "dst": s.dst, "dst_port": s.dst_port,
        }
    data["send_buf"] = count_bytes(s.send_buf)  # checkpointctl's strings ...
    data["recv_buf"] = count_bytes(s.recv_buf)
    data["send_buf_bytes"] = s.send_buf  # ... and the exact numbers
    data["recv_buf_bytes"] = s.recv_buf
    return {
        "protocol": s.protocol or s.type, "fd": s.fd, "family": s.family, "ino": s.ino,
        "data": data,
    }


def count_bytes(n: int) -> str:
    """Socket buffer sizes as checkpointctl (go-criu) prints them: 16.0 KB, 3.8 MB."""
    if n < 1024:
        return f"{n} B"
    value, exp = float(n), -1
    while value >= 1024 and exp < 5:
        value /= 1024
        exp += 1
    return f"{value:.1f} {'KMGTPE'[exp]}B"


def file_entry_dict(e: FileEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"path": e.path, "type": e.type, "size": e.size, "mode": oct(e.mode)}
    if e.sha256 is not None:
        out["sha256"] = e.sha256
    if e.linkname:
        out["linkname"] = e.linkname
    return out


def _nonzero(d: dict[str, Any]) -> dict[str, Any]:
    """checkpointctl omits zero sizes and empty names."""
    return {k: v for k, v in d.items() if v}
