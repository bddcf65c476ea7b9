"""What changed between two checkpoints of the same container (``csi diff``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from forensics.archive.checkpoint import Checkpoint
from forensics.archive.model import FileEntry, Process


def _proc_key(p: Process) -> tuple[int, str]:
    return (p.pid, p.comm)


def _proc_summary(p: Process) -> dict[str, Any]:
    return {"pid": p.pid, "ppid": p.ppid, "command": p.comm,
            "cmdline": " ".join(p.cmdline) if p.cmdline is not None else None}


def diff_checkpoints(a: Checkpoint, b: Checkpoint) -> dict[str, Any]:
    """A JSON-ready description of what differs from ``a`` to ``b``."""
    out: dict[str, Any] = {
        "a": {"path": a.path, "sha256": a.archive.sha256, "container_id": a.container.id},
        "b": {"path": b.path, "sha256": b.archive.sha256, "container_id": b.container.id},
        "same_container": a.container.id == b.container.id,
    }
    procs_a = {_proc_key(p): p for p in a.processes}
    procs_b = {_proc_key(p): p for p in b.processes}
    out["processes"] = {
        "added": [_proc_summary(procs_b[k]) for k in sorted(procs_b.keys() - procs_a.keys())],
        "removed": [_proc_summary(procs_a[k]) for k in sorted(procs_a.keys() - procs_b.keys())],
        "changed": [
            change for k in sorted(procs_a.keys() & procs_b.keys())
            if (change := _process_change(procs_a[k], procs_b[k]))
        ],
    }
    out["rootfs"] = _files_change(a.rootfs_diff, b.rootfs_diff)
    deleted_a, deleted_b = set(a.deleted_files), set(b.deleted_files)
    out["deleted_files"] = {"added": sorted(deleted_b - deleted_a),
                            "removed": sorted(deleted_a - deleted_b)}
    out["memory_pages_size"] = {"a": a.sizes.memory_pages_size, "b": b.sizes.memory_pages_size,
                                "delta": b.sizes.memory_pages_size - a.sizes.memory_pages_size}
    return out


def _process_change(pa: Process, pb: Process) -> dict[str, Any] | None:
    change: dict[str, Any] = {}
    if pa.cmdline != pb.cmdline:
        change["cmdline"] = {"a": _join(pa.cmdline), "b": _join(pb.cmdline)}
    if pa.environ != pb.environ:
        env_a, env_b = set(pa.environ or ()), set(pb.environ or ())
        change["environment"] = {"added": sorted(env_b - env_a), "removed": sorted(env_a - env_b)}
    files_a = {(f.fd, f.path) for f in pa.files}
    files_b = {(f.fd, f.path) for f in pb.files}
    if files_a != files_b:
        change["files"] = {
            "opened": [{"fd": fd, "path": path} for fd, path in sorted(files_b - files_a)],
            "closed": [{"fd": fd, "path": path} for fd, path in sorted(files_a - files_b)],
        }
    socks_a = {_sock_key(s) for s in pa.sockets}
    socks_b = {_sock_key(s) for s in pb.sockets}
    if socks_a != socks_b:
        by_key = {_sock_key(s): s for s in (*pa.sockets, *pb.sockets)}
        change["sockets"] = {
            "added": [asdict(by_key[k]) for k in sorted(socks_b - socks_a)],
            "removed": [asdict(by_key[k]) for k in sorted(socks_a - socks_b)],
        }
    if pa.memory_pages_bytes != pb.memory_pages_bytes:
        change["memory_pages_size"] = {"a": pa.memory_pages_bytes, "b": pb.memory_pages_bytes}
    if [t.tid for t in pa.threads] != [t.tid for t in pb.threads]:
        change["threads"] = {"a": [t.tid for t in pa.threads], "b": [t.tid for t in pb.threads]}
    if not change:
        return None
    return {"pid": pa.pid, "command": pa.comm, **change}


def _sock_key(s: Any) -> tuple[Any, ...]:
    return (s.fd, s.family, s.protocol, s.state, s.src, s.src_port, s.dst, s.dst_port, s.name)


def _join(argv: tuple[str, ...] | None) -> str | None:
    return " ".join(argv) if argv is not None else None


def _files_change(a: list[FileEntry], b: list[FileEntry]) -> dict[str, list[dict[str, Any]]]:
    fa = {e.path: e for e in a}
    fb = {e.path: e for e in b}
    return {
        "added": [{"path": p, "type": fb[p].type, "sha256": fb[p].sha256}
                  for p in sorted(fb.keys() - fa.keys())],
        "removed": [{"path": p, "type": fa[p].type, "sha256": fa[p].sha256}
                    for p in sorted(fa.keys() - fb.keys())],
        "modified": [
            {"path": p, "a": {"size": fa[p].size, "sha256": fa[p].sha256, "mode": oct(fa[p].mode)},
             "b": {"size": fb[p].size, "sha256": fb[p].sha256, "mode": oct(fb[p].mode)}}
            for p in sorted(fa.keys() & fb.keys())
            if (fa[p].sha256, fa[p].mode, fa[p].size) != (fb[p].sha256, fb[p].mode, fb[p].size)
        ],
    }
