"""process: what ran, from where, under which name, wired to what."""

from __future__ import annotations

from collections.abc import Iterator

from forensics.analysis.base import Context
from forensics.analysis.findings import Finding, Record, Severity
from forensics.analysis.helpers import INTERPRETERS, SHELLS, basename, is_writable_location
from forensics.archive.model import Process, Socket

KERNEL_LIKE = ("kworker", "ksoftirqd", "kthreadd", "migration", "rcu_", "watchdog", "kswapd",
               "systemd", "kauditd", "khugepaged", "jbd2", "irq/")
NET_TOOLS = frozenset({"nc", "ncat", "netcat", "socat", "nmap", "masscan", "zmap", "tcpdump",
                       "chisel", "frpc", "ngrok", "proxychains"})
MINERS = frozenset({"xmrig", "minerd", "cpuminer", "xmr-stak", "ethminer", "t-rex", "nbminer"})
SUSPICIOUS_SNIPPETS = ("/dev/tcp/", "| sh", "|sh", "| bash", "|bash", "base64 -d", "nc -e",
                       "mkfifo", "chmod +x /tmp", "chmod 777")


class ProcessAnalyzer:
    name = "process"
    version = "1.0"
    description = ("executables in writable or deleted locations, masquerading names, "
                   "reverse shells, one-liners and known attack tools")

    def applies(self, ctx: Context) -> str | None:
        return None if ctx.checkpoint.processes else "no process could be read from the archive"

    def run(self, ctx: Context) -> Iterator[Finding | Record]:
        processes = ctx.checkpoint.processes
        for p in processes:
            yield Record("process", {
                "pid": p.pid, "ppid": p.ppid, "comm": p.comm, "exe": p.exe,
                "cmdline": list(p.cmdline) if p.cmdline is not None else None,
                **({"cmdline_truncated": p.cmdline_truncated} if p.cmdline_truncated else {}),
                "uid": p.creds.uid if p.creds else None, "state": p.state_name,
                "threads": [{"tid": t.tid, "name": t.name} for t in p.threads],
            })
            yield from self._location(p, ctx)
            yield from self._masquerade(p)
            yield from self._reverse_shell(p, processes)
            yield from self._one_liner(p)
            yield from self._known_tool(p)

    def _location(self, p: Process, ctx: Context) -> Iterator[Finding]:
        exe = p.exe or ""
        if not exe:
            return
        evidence = {"exe": exe, "comm": p.comm, "cmdline": _argv(p)}
        if p.exe_deleted or exe in ctx.deleted_paths:
            yield Finding("process.deleted-exe", Severity.HIGH,
                          f"pid {p.pid} ({p.comm}) runs {exe}, which was deleted after it started",
                          pid=p.pid, path=exe, evidence=evidence, mitre=("T1070.004",))
        if exe in ctx.rootfs_paths:
            yield Finding("process.exe-dropped", Severity.CRITICAL,
                          f"pid {p.pid} ({p.comm}) runs {exe}, a file added to the container "
                          "after it started (not part of the image)",
                          pid=p.pid, path=exe, evidence=evidence, mitre=("T1105", "T1204.002"))
        elif is_writable_location(exe):
            yield Finding("process.exe-in-writable-dir", Severity.HIGH,
                          f"pid {p.pid} ({p.comm}) runs from a writable or hidden location: {exe}",
                          pid=p.pid, path=exe, evidence=evidence, mitre=("T1036.005",))

    def _masquerade(self, p: Process) -> Iterator[Finding]:
        if not p.cmdline or not p.comm:
            return
        names = {basename(p.cmdline[0])[:15], basename(p.exe)[:15]}
        if len(p.cmdline) > 1:
            names.add(basename(p.cmdline[1])[:15])  # scripts: comm is the script's name
        if p.comm[:15] in names:
            return
        kernel_like = p.comm.startswith(KERNEL_LIKE)
        yield Finding(
            "process.masquerade", Severity.HIGH if kernel_like else Severity.MEDIUM,
            f"pid {p.pid} calls itself {p.comm!r} but runs {p.exe or p.cmdline[0]!r}"
            + (" (a kernel or system daemon's name)" if kernel_like else ""),
            pid=p.pid, path=p.exe,
            evidence={"comm": p.comm, "argv0": p.cmdline[0], "exe": p.exe},
            mitre=("T1036.004",),
        )

    def _reverse_shell(self, p: Process, processes: list[Process]) -> Iterator[Finding]:
        if not _is_shell_or_interpreter(p):
            return
        std = {f.fd: f for f in p.files if f.fd in (0, 1, 2)}
        wired = [s for s in p.sockets if s.fd in (0, 1, 2) and s.kind == "INETSK"
                 and s.state == "ESTABLISHED"]
        if not wired or len({std[fd].ino for fd in std if std[fd].ino}) > len(wired):
            return
        conn = wired[0]
        peers = sorted({q.pid for q in processes for s in q.sockets if _is_peer(s, conn)})
        yield Finding(
            "process.reverse-shell", Severity.CRITICAL,
            f"pid {p.pid} ({_argv(p) or p.comm}) has stdin/stdout/stderr on a TCP connection "
            f"{_end(conn.src, conn.src_port)} -> {_end(conn.dst, conn.dst_port)}"
            + (f"; the other end is held by pid {', '.join(map(str, peers))}" if peers else ""),
            pid=p.pid, path=p.exe,
            evidence={"fds": sorted(s.fd for s in wired), "local": _end(conn.src, conn.src_port),
                      "remote": _end(conn.dst, conn.dst_port), "peer_pids": peers,
                      "cmdline": _argv(p), "socket_ino": conn.ino},
            mitre=("T1059.004",),
        )

    def _one_liner(self, p: Process) -> Iterator[Finding]:
        argv = p.cmdline or ()
        if len(argv) < 3:
            return
        prog = basename(argv[0])
        code = argv[2] if argv[1] in ("-c", "-e", "-E", "-r", "--eval") else ""
        if not code:
            return
        suspicious = [s for s in SUSPICIOUS_SNIPPETS if s in code]
        if prog in SHELLS or prog == "busybox":
            if not suspicious:
                return  # `sh -c "…"` is how most containers start; only flag what it does
            severity = Severity.HIGH
        elif prog.rstrip("0123456789.") in INTERPRETERS or prog in INTERPRETERS:
            severity = Severity.HIGH if suspicious else Severity.MEDIUM
        else:
            return
        yield Finding("process.one-liner", severity,
                      f"pid {p.pid} runs an inline {prog} program"
                      + (f" that uses {', '.join(suspicious)}" if suspicious else ""),
                      pid=p.pid, evidence={"cmdline": _argv(p), "indicators": suspicious},
                      mitre=("T1059",))

    def _known_tool(self, p: Process) -> Iterator[Finding]:
        names = {p.comm, basename(p.exe), basename((p.cmdline or ("",))[0])}
        if names & MINERS:
            yield Finding("process.known-tool", Severity.HIGH,
                          f"pid {p.pid} is a cryptocurrency miner ({_argv(p) or p.comm})",
                          pid=p.pid, evidence={"cmdline": _argv(p), "exe": p.exe},
                          mitre=("T1496",))
        elif names & NET_TOOLS:
            yield Finding("process.known-tool", Severity.MEDIUM,
                          f"pid {p.pid} runs the network tool {sorted(names & NET_TOOLS)[0]} "
                          f"({_argv(p) or p.comm})",
                          pid=p.pid, evidence={"cmdline": _argv(p), "exe": p.exe},
                          mitre=("T1095",))


def _argv(p: Process) -> str:
    return " ".join(p.cmdline) if p.cmdline else ""


def _is_shell_or_interpreter(p: Process) -> bool:
    names = {p.comm, basename((p.cmdline or ("",))[0]), basename(p.exe)}
    return bool(names & SHELLS) or any(n.rstrip("0123456789.") in INTERPRETERS for n in names)


def _is_peer(s: Socket, conn: Socket) -> bool:
    return (s.kind == "INETSK" and s.state == "ESTABLISHED" and s.src == conn.dst
            and s.src_port == conn.dst_port and s.dst == conn.src and s.dst_port == conn.src_port)


def _end(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
