"""network: who listens, who talks to whom, and what was still in flight."""

from __future__ import annotations

from collections.abc import Iterator

from forensics.analysis.base import Context
from forensics.analysis.findings import Finding, Record, Severity
from forensics.analysis.helpers import address_class, is_writable_location
from forensics.archive.model import Process, Socket

QUEUE_PREVIEW = 256


class NetworkAnalyzer:
    name = "network"
    version = "1.0"
    description = ("listeners and connections per process, remote addresses classified, "
                   "queued TCP data")

    def applies(self, ctx: Context) -> str | None:
        if not any(p.sockets for p in ctx.checkpoint.processes):
            return "no process holds a socket"
        return None

    def run(self, ctx: Context) -> Iterator[Finding | Record]:
        owners: dict[int, list[Process]] = {}
        for p in ctx.checkpoint.processes:
            seen: set[int] = set()
            for s in p.sockets:
                if s.kind != "INETSK" or s.ino in seen:
                    continue
                seen.add(s.ino)
                owners.setdefault(s.ino, []).append(p)
                yield Record("connection", _record(p, s))
        for p in ctx.checkpoint.processes:
            yield from self._listeners(p, ctx)
            yield from self._connections(p)
        yield from self._queues(ctx, owners)

    def _listeners(self, p: Process, ctx: Context) -> Iterator[Finding]:
        for s in _unique(p, "LISTEN"):
            dropped = bool(p.exe) and (p.exe in ctx.rootfs_paths or
                                       is_writable_location(p.exe or ""))
            where = f"{s.src}:{s.src_port}" if ":" not in s.src else f"[{s.src}]:{s.src_port}"
            if dropped:
                yield Finding("network.unexpected-listener", Severity.HIGH,
                              f"pid {p.pid} ({p.comm}), running {p.exe}, listens on {s.protocol} "
                              f"{where}", pid=p.pid, path=p.exe,
                              evidence={"port": s.src_port, "address": s.src, "fd": s.fd,
                                        "exe": p.exe}, mitre=("T1571",))
            else:
                yield Finding("network.listener", Severity.INFO,
                              f"pid {p.pid} ({p.comm}) listens on {s.protocol} {where}",
                              pid=p.pid, evidence={"port": s.src_port, "address": s.src,
                                                   "fd": s.fd})

    def _connections(self, p: Process) -> Iterator[Finding]:
        for s in _unique(p, "ESTABLISHED"):
            kind = address_class(s.dst)
            severity = {"public": Severity.MEDIUM, "private": Severity.LOW}.get(kind, Severity.INFO)
            yield Finding("network.connection", severity,
                          f"pid {p.pid} ({p.comm}) has a {s.protocol} connection to {kind} "
                          f"address {s.dst}:{s.dst_port} from {s.src}:{s.src_port}",
                          pid=p.pid, evidence={"local": f"{s.src}:{s.src_port}",
                                               "remote": f"{s.dst}:{s.dst_port}",
                                               "remote_class": kind, "fd": s.fd},
                          mitre=("T1071",) if kind == "public" else ())

    def _queues(self, ctx: Context, owners: dict[int, list[Process]]) -> Iterator[Finding]:
        for q in ctx.checkpoint.tcp_queues:
            if not q.inq and not q.outq:
                continue
            procs = owners.get(q.ino, [])
            who = ", ".join(f"{p.pid} ({p.comm})" for p in procs) or "no process"
            yield Finding(
                "network.queued-data", Severity.LOW,
                f"{len(q.inq)} bytes received and {len(q.outq)} bytes to send were still "
                f"queued on a TCP socket of pid {who}",
                pid=procs[0].pid if procs else None,
                evidence={"socket_ino": q.ino, "received_bytes": len(q.inq),
                          "unsent_bytes": len(q.outq),
                          "received_preview": q.inq[:QUEUE_PREVIEW].decode("latin-1"),
                          "unsent_preview": q.outq[:QUEUE_PREVIEW].decode("latin-1")},
            )


def _unique(p: Process, state: str) -> list[Socket]:
    seen: set[int] = set()
    out = []
    for s in p.sockets:
        if s.kind == "INETSK" and s.state == state and s.ino not in seen:
            seen.add(s.ino)
            out.append(s)
    return out


def _record(p: Process, s: Socket) -> dict[str, object]:
    return {"pid": p.pid, "comm": p.comm, "fd": s.fd, "protocol": s.protocol,
            "family": s.family, "state": s.state, "local": s.src, "local_port": s.src_port,
            "remote": s.dst, "remote_port": s.dst_port,
            "remote_class": address_class(s.dst) if s.state != "LISTEN" else None,
            "ino": s.ino}
