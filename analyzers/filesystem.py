"""filesystem: what the container added, changed or deleted, and what it hid."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from forensics.analysis.base import Context
from forensics.analysis.findings import Finding, Record, Severity
from forensics.analysis.helpers import file_type, is_writable_location
from forensics.archive.model import FileEntry

HEAD = 4096
MAX_TEXT = 1 << 20  # persistence files are read up to this size
CRON_LINE = re.compile(rb"^[ \t]*(?:@(?:reboot|hourly|daily|weekly|monthly|yearly)|"
                       rb"(?:[0-9*/,\-]+[ \t]+){4}[0-9*/,\-a-zA-Z]+)[ \t]+\S.*$", re.MULTILINE)

PERSISTENCE: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"^/etc/(passwd|shadow|group|gshadow)$"), "account database", "T1136.001"),
    (re.compile(r"^/etc/sudoers(\.d/.*)?$"), "sudo configuration", "T1548.003"),
    (re.compile(r"^/etc/ld\.so\.preload$"), "dynamic linker preload", "T1574.006"),
    (re.compile(r"^/(etc/cron|var/spool/cron|etc/anacrontab)"), "cron", "T1053.003"),
    (re.compile(r"/\.ssh/authorized_keys2?$"), "SSH authorized keys", "T1098.004"),
    (re.compile(r"(^/etc/(profile|bash\.bashrc|zsh/)|/\.(bashrc|profile|bash_profile|zshrc))"),
     "shell start-up file", "T1546.004"),
    (re.compile(r"^/(etc|lib|usr/lib)/systemd/system/"), "systemd unit", "T1543.002"),
    (re.compile(r"^/etc/(rc\.local|init\.d/)"), "init script", "T1037.004"),
)


class FilesystemAnalyzer:
    name = "filesystem"
    version = "1.0"
    description = ("added, modified and deleted files with hashes and types; persistence "
                   "paths, new executables, open-but-deleted files")

    def applies(self, ctx: Context) -> str | None:
        c = ctx.checkpoint
        has_files = c.rootfs_diff or c.deleted_files or c.devshm
        if not has_files and not any(f.deleted for p in c.processes for f in p.files):
            return "the archive records no file-system change"
        return None

    def run(self, ctx: Context) -> Iterator[Finding | Record]:
        c = ctx.checkpoint
        for entry in c.rootfs_diff + c.devshm:
            head = self._read(ctx, entry, HEAD) if entry.type == "file" else b""
            kind = file_type(head) if entry.type == "file" else entry.type
            yield Record("file", {"path": entry.path, "change": "added-or-modified",
                                  "type": entry.type, "content": kind, "size": entry.size,
                                  "mode": oct(entry.mode), "sha256": entry.sha256,
                                  "linkname": entry.linkname or None})
            yield from self._file_findings(ctx, entry, kind)
        for path in c.deleted_files:
            yield Record("file", {"path": path, "change": "deleted"})
            severity = Severity.HIGH if path.startswith("/var/log/") else Severity.MEDIUM
            yield Finding("filesystem.deleted", severity,
                          f"{path} was deleted from the container's file system",
                          path=path, evidence={"path": path}, mitre=("T1070.004",))
        if c.deleted_files_omitted:  # beyond what csi keeps: counted, never listed
            yield Finding("filesystem.deleted", Severity.MEDIUM,
                          f"… and {c.deleted_files_omitted:,} more paths deleted.files lists",
                          evidence={"aggregated": True, "omitted": c.deleted_files_omitted},
                          mitre=("T1070.004",))
        yield from self._open_deleted(ctx)

    def _file_findings(self, ctx: Context, entry: FileEntry, kind: str) -> Iterator[Finding]:
        evidence = {"sha256": entry.sha256, "size": entry.size, "mode": oct(entry.mode),
                    "content": kind}
        if kind == "elf":
            yield Finding("filesystem.new-executable", Severity.HIGH,
                          f"new ELF executable {entry.path} ({entry.size} bytes, "
                          f"mode {oct(entry.mode & 0o7777)})",
                          path=entry.path, evidence=evidence, mitre=("T1105",))
        elif entry.type == "file" and entry.mode & 0o111 and is_writable_location(entry.path):
            yield Finding("filesystem.executable-in-writable-dir", Severity.MEDIUM,
                          f"new executable {kind} file {entry.path} in a writable location",
                          path=entry.path, evidence=evidence, mitre=("T1105",))
        elif entry.type == "dir" and is_writable_location(entry.path + "/x") and any(
            part.startswith(".") for part in entry.path.split("/")
        ):
            yield Finding("filesystem.hidden-directory", Severity.MEDIUM,
                          f"hidden directory {entry.path} created", path=entry.path,
                          evidence=evidence, mitre=("T1564.001",))
        elif entry.type in ("chardev", "blockdev"):
            yield Finding("filesystem.device-node", Severity.MEDIUM,
                          f"device node {entry.path} created in the container", path=entry.path,
                          evidence=evidence)
        for pattern, what, technique in PERSISTENCE:
            if pattern.search(entry.path):
                yield from self._persistence(ctx, entry, what, technique, evidence)
                break
        else:
            if kind in ("text", "script") and entry.size <= MAX_TEXT and CRON_LINE.search(
                self._read(ctx, entry, MAX_TEXT)
            ):
                yield Finding("filesystem.cron-line", Severity.HIGH,
                              f"{entry.path} holds a crontab entry",
                              path=entry.path, evidence={**evidence, "lines": self._cron(
                                  ctx, entry)}, mitre=("T1053.003",))

    def _persistence(self, ctx: Context, entry: FileEntry, what: str, technique: str,
                     evidence: Mapping[str, object]) -> Iterator[Finding]:
        yield Finding("filesystem.persistence-path", Severity.HIGH,
                      f"{what} changed: {entry.path}", path=entry.path,
                      evidence=evidence, mitre=(technique,))
        if entry.path == "/etc/passwd" and entry.type == "file":
            text = self._read(ctx, entry, MAX_TEXT).decode("utf-8", "replace")
            for line in text.splitlines():
                fields = line.split(":")
                if len(fields) >= 4 and fields[2] == "0" and fields[0] != "root":
                    yield Finding("filesystem.uid0-user", Severity.CRITICAL,
                                  f"/etc/passwd has a second uid-0 account {fields[0]!r}",
                                  path=entry.path, evidence={"line": line, "user": fields[0]},
                                  mitre=("T1136.001",))
        if what == "cron" and entry.type == "file":
            yield Finding("filesystem.cron-line", Severity.HIGH,
                          f"{entry.path} holds crontab entries", path=entry.path,
                          evidence={**evidence, "lines": self._cron(ctx, entry)},
                          mitre=("T1053.003",))

    def _open_deleted(self, ctx: Context) -> Iterator[Finding]:
        seen: dict[str, list[int]] = {}
        for p in ctx.checkpoint.processes:
            for f in p.files:
                if f.deleted:
                    seen.setdefault(f.path, []).append(p.pid)
        for path, pids in sorted(seen.items()):
            yield Finding("filesystem.open-deleted", Severity.HIGH,
                          f"{path} is deleted but still open in pid {', '.join(map(str, pids))}",
                          pid=pids[0], path=path, evidence={"pids": pids},
                          mitre=("T1070.004",))

    def _cron(self, ctx: Context, entry: FileEntry) -> list[str]:
        data = self._read(ctx, entry, MAX_TEXT)
        return [m.group(0).decode("utf-8", "replace").strip()
                for m in CRON_LINE.finditer(data)][:20]

    @staticmethod
    def _read(ctx: Context, entry: FileEntry, size: int) -> bytes:
        located = ctx.checkpoint.nested_member(entry.path)
        return ctx.checkpoint.source.pread(located, 0, size) if located else b""

