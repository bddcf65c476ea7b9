"""alert: does the checkpoint confirm the Falco alert that led to the capture?

The process is found by ``proc.vpid`` (Falco's pid in the container's pid
namespace, which is CRIU's pid), checked against ``proc.exepath``,
``proc.name`` and ``proc.cmdline``; its file or connection by ``fd.name``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from forensics.alert import Alert
from forensics.analysis.base import Context
from forensics.analysis.findings import Finding, Record, Severity
from forensics.analysis.helpers import basename
from forensics.archive.model import Process

PRIORITY = {"emergency": Severity.CRITICAL, "alert": Severity.CRITICAL,
            "critical": Severity.CRITICAL, "error": Severity.HIGH, "warning": Severity.MEDIUM,
            "notice": Severity.LOW, "informational": Severity.INFO, "info": Severity.INFO,
            "debug": Severity.INFO}


class AlertAnalyzer:
    name = "alert"
    version = "1.0"
    description = "finds the Falco alert's process, file or connection in the checkpoint"

    def applies(self, ctx: Context) -> str | None:
        if ctx.options.alert is None:
            return "no Falco alert given (--alert)"
        if not ctx.options.alert.output_fields:
            return "the alert has no output_fields"
        return None

    def run(self, ctx: Context) -> Iterator[Finding | Record]:
        alert = ctx.options.alert
        if alert is None:
            return
        rule = alert.rule
        severity = PRIORITY.get(alert.priority.lower(), Severity.MEDIUM)
        checks: dict[str, Any] = {}
        process = self._process(ctx, alert, checks)
        if process is not None:
            self._fd(process, alert, checks)
        self._identity(ctx, alert, checks)
        confirmed = process is not None and all(
            v is True for k, v in checks.items() if k in ("exe", "name", "cmdline", "fd")
        )
        yield Record("alert", {"rule": rule, "priority": alert.priority,
                               "time": alert.time, "checks": checks,
                               "confirmed": confirmed, "pid": process.pid if process else None})
        evidence = {"alert_rule": rule, "alert_time": alert.time, "checks": checks}
        note = ""
        if checks.get("container_id") is False:
            note = (f" (note: the alert names container {alert.container_id}, the "
                    f"archive is of {ctx.checkpoint.container.id[:12]})")
        if confirmed and process is not None:
            yield Finding("alert.confirmed", severity,
                          f"the checkpoint confirms the alert {rule!r}: pid {process.pid} "
                          f"({' '.join(process.cmdline or (process.comm,))}) is there"
                          + (f" with {alert.field('fd.name')}" if checks.get("fd") else "")
                          + note,
                          pid=process.pid, path=process.exe, evidence=evidence)
        else:
            what = "its process" if process is None else "part of it"
            yield Finding("alert.unconfirmed", Severity.INFO,
                          f"the checkpoint does not show {what} for alert {rule!r} "
                          "(the process may have exited before the checkpoint)",
                          pid=process.pid if process else None, evidence=evidence)

    @staticmethod
    def _process(ctx: Context, alert: Alert, checks: dict[str, Any]) -> Process | None:
        procs = ctx.checkpoint.processes
        process = None
        vpid = alert.field("proc.vpid")
        if isinstance(vpid, int):
            process = ctx.checkpoint.process(vpid)
            checks["vpid"] = process is not None
        exepath = alert.field("proc.exepath")
        if process is None and isinstance(exepath, str):
            process = next((p for p in procs if p.exe == exepath), None)
        name, cmdline = alert.field("proc.name"), alert.field("proc.cmdline")
        if process is None and isinstance(name, str) and isinstance(cmdline, str):
            # no pid, no exe path: the process of that name whose arguments are the alert's
            process = next((p for p in procs if p.comm[:15] == name[:15]
                            and _falco_args(cmdline) == _args(p)), None)
        if process is None:
            return None
        if isinstance(exepath, str):
            checks["exe"] = process.exe == exepath
        if isinstance(name, str):
            checks["name"] = name[:15] in (process.comm[:15], basename(process.exe)[:15])
        if isinstance(cmdline, str) and process.cmdline:
            checks["cmdline"] = _falco_args(cmdline) == _args(process)
        return process

    @staticmethod
    def _fd(process: Process, alert: Alert, checks: dict[str, Any]) -> None:
        fd_name = alert.field("fd.name")
        if not isinstance(fd_name, str) or not fd_name:
            return
        if "->" in fd_name:
            local, _, remote = fd_name.partition("->")
            checks["fd"] = any(
                f"{s.src}:{s.src_port}" == local and f"{s.dst}:{s.dst_port}" == remote
                for s in process.sockets
            )
        else:
            checks["fd"] = any(f.path == fd_name for f in process.files)

    @staticmethod
    def _identity(ctx: Context, alert: Alert, checks: dict[str, Any]) -> None:
        k = ctx.checkpoint.kubernetes
        pod, ns = alert.field("k8s.pod.name"), alert.field("k8s.ns.name")
        if isinstance(pod, str) and k.pod:
            checks["pod"] = pod == k.pod and ns == k.namespace
        cid = alert.container_id
        if cid not in ("", "host") and ctx.checkpoint.container.id:
            checks["container_id"] = ctx.checkpoint.container.id.startswith(cid)


def _falco_args(cmdline: str) -> list[str]:
    """Falco prints proc.cmdline as the process name, then its arguments."""
    return cmdline.split(" ", 1)[1:]


def _args(process: Process) -> list[str]:
    args = " ".join((process.cmdline or ())[1:])
    return [args] if args else []
