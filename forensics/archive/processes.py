"""Processes, threads, files and sockets from the CRIU images of a checkpoint.

The images live under ``checkpoint/`` in the archive. Per task: ``core-<tid>``
(comm, state, credentials, thread names), ``ids-<pid>`` (or ``core.ids``),
``fdinfo-<files_id>``, ``fs-<pid>``, ``mm-<pid>`` and ``pagemap-<pid>``.
Files come from ``files.img`` (CRIU >= 3.x with unified files) or the older
per-type images (``reg-files.img``, ``inetsk.img``, ``unixsk.img``,
``pipes.img``). A broken image of one process marks that process with an
error and the rest still loads.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from forensics import limits
from forensics.archive.criu import messages as m
from forensics.archive.criu.image import decode_entries, decode_first, decode_prefix
from forensics.archive.criu.wire import Message
from forensics.archive.memory import ProcessMemory, parse_pagemap
from forensics.archive.proctree import build_forest
from forensics.archive.source import ArchiveSource
from forensics.errors import ArchiveError, CriuImageError

if TYPE_CHECKING:  # the records are imported where they are built: memparse builds none
    from forensics.archive.model import OpenFile, Process, Socket, Thread

CKPT = "checkpoint/"
MAP_SHARED = 0x01

_FAMILIES = {1: "UNIX", 2: "IPv4", 10: "IPv6", 16: "NETLINK", 17: "PACKET"}
_SOCK_TYPES = {1: "STREAM", 2: "DGRAM", 3: "RAW", 5: "SEQPACKET"}
_PROTOCOLS = {0: "", 1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 132: "SCTP", 136: "UDPLITE"}
_TCP_STATES = {
    1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
    6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
    12: "NEW_SYN_RECV",
}
_LEGACY_FILE_IMAGES: tuple[tuple[str, str, Message, int, str], ...] = (
    ("reg-files.img", "reg-files", m.REG_FILE, 1, "reg"),
    ("inetsk.img", "inetsk", m.INET_SK, 4, "isk"),
    ("unixsk.img", "unixsk", m.UNIX_SK, 5, "usk"),
    ("pipes.img", "pipes", m.PIPE, 2, "pipe"),
)


def format_ip(words: list[int], family: int) -> str:
    """Print an address CRIU stores as u32 words (network order, read little-endian)."""
    if any(not 0 <= w < 1 << 32 for w in words):  # a damaged image: say so, do not guess
        return "invalid:" + ",".join(f"{w:x}" for w in words)
    import ipaddress  # only archives with sockets need it

    raw = b"".join(w.to_bytes(4, "little") for w in words)
    try:
        if family == 2 or len(raw) == 4:
            return str(ipaddress.IPv4Address(raw[:4]))
        addr = ipaddress.IPv6Address(raw[:16])
    except ipaddress.AddressValueError:
        return raw.hex()
    if addr.ipv4_mapped is not None:
        return f"::ffff:{addr.ipv4_mapped}"
    return str(addr)


def unix_name(raw: bytes) -> str:
    """A unix socket name as people write it: a path, or @name for abstract ones."""
    if raw.startswith(b"\0"):
        return "@" + raw[1:].rstrip(b"\0").decode("utf-8", errors="backslashreplace")
    return raw.rstrip(b"\0").decode("utf-8", errors="backslashreplace")


class ImageReader:
    """Decodes the CRIU images of one archive, with per-image caching."""

    def __init__(self, source: ArchiveSource) -> None:
        self.source = source
        self.warnings: list[str] = []
        self._files: dict[int, dict[str, Any]] | None = None
        self._ghosts: set[int] | None = None
        self.inventory = self._inventory()

    def has(self, image: str) -> bool:
        return self.source.has(CKPT + image)

    def data(self, image: str) -> bytes:
        return self.source.read(CKPT + image)

    def label(self, image: str) -> str:
        """How errors name an image: the archive, then the member."""
        return f"{self.source.path}: {CKPT}{image}"

    def first(self, image: str, kind: str, message: Message) -> dict[str, Any]:
        return decode_first(self.label(image), self.data(image), kind, message)

    def all(self, image: str, kind: str, message: Message) -> list[dict[str, Any]]:
        return decode_entries(self.label(image), self.data(image), kind, message)

    def _inventory(self) -> dict[str, Any]:
        try:
            return self.first("inventory.img", "inventory", m.INVENTORY)
        except (ArchiveError, CriuImageError) as exc:
            self.warnings.append(f"{exc}; assuming a current CRIU layout")
            return {"fdinfo_per_id": True}

    # ------------------------------------------------------------ files

    @property
    def files(self) -> dict[int, dict[str, Any]]:
        """file id -> file_entry (type, and one of reg/isk/usk/pipe)."""
        if self._files is None:
            self._files = self._load_files()
        return self._files

    def _load_files(self) -> dict[int, dict[str, Any]]:
        table: dict[int, dict[str, Any]] = {}
        if self.has("files.img"):
            for entry in self._tolerant(lambda: self.all("files.img", "files", m.FILE)):
                table[entry.get("id", 0)] = entry
            return table
        for image, kind, message, ftype, key in _LEGACY_FILE_IMAGES:
            if not self.has(image):
                continue
            for entry in self._tolerant(partial(self.all, image, kind, message)):
                table[entry.get("id", 0)] = {"type": ftype, "id": entry.get("id", 0), key: entry}
        return table

    @property
    def ghosts(self) -> set[int]:
        """Ids of regular files that were deleted while open (remapped to ghost files)."""
        if self._ghosts is None:
            self._ghosts = set()
            if self.has("remap-fpath.img"):
                for entry in self._tolerant(
                    lambda: self.all("remap-fpath.img", "remap-fpath", m.REMAP_FPATH)
                ):
                    if entry.get("remap_type", 0) == m.REMAP_GHOST:
                        self._ghosts.add(entry.get("orig_id", 0))
        return self._ghosts

    def _tolerant(self, load: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
        try:
            return load()
        except (ArchiveError, CriuImageError) as exc:
            self.warnings.append(str(exc))
            return []

    def file_path(self, file_id: int) -> str | None:
        entry = self.files.get(file_id)
        if entry is None:
            return None
        return describe_file(entry)


def describe_file(entry: dict[str, Any]) -> str:
    """The path (or pseudo-path) of a file_entry, as people read it."""
    if "reg" in entry:
        return str(entry["reg"].get("name", ""))
    if "pipe" in entry:
        return f"pipe[{entry['pipe'].get('pipe_id', 0)}]"
    if "isk" in entry:
        return f"inet:{entry['isk'].get('ino', 0)}"
    if "usk" in entry:
        name = unix_name(entry["usk"].get("name", b""))
        return f"unix:{name}" if name else f"unix:[{entry['usk'].get('ino', 0)}]"
    ftype = m.FD_TYPES.get(entry.get("type", 0), str(entry.get("type", 0)))
    return f"{ftype.lower()}:{entry.get('id', 0)}"


def make_socket(fd: int, entry: dict[str, Any]) -> Socket | None:
    from forensics.archive.model import Socket

    if "isk" in entry:
        isk = entry["isk"]
        family = isk.get("family", 0)
        proto = isk.get("proto", 0)
        state = isk.get("state", 0)
        opts = isk.get("opts", {})
        return Socket(
            fd=fd, kind="INETSK", family=_FAMILIES.get(family, str(family)), family_number=family,
            type=_SOCK_TYPES.get(isk.get("type", 0), str(isk.get("type", 0))),
            protocol=_PROTOCOLS.get(proto, str(proto)),
            state=_TCP_STATES.get(state, str(state)) if proto == 6 else _udp_state(state),
            state_number=state, ino=isk.get("ino", 0),
            src=format_ip(isk.get("src_addr", []), family), src_port=isk.get("src_port", 0),
            dst=format_ip(isk.get("dst_addr", []), family), dst_port=isk.get("dst_port", 0),
            send_buf=opts.get("so_sndbuf", 0), recv_buf=opts.get("so_rcvbuf", 0),
        )
    if "usk" in entry:
        usk = entry["usk"]
        state = usk.get("state", 0)
        opts = usk.get("opts", {})
        return Socket(
            fd=fd, kind="UNIXSK", family="UNIX", family_number=1,
            type=_SOCK_TYPES.get(usk.get("type", 0), str(usk.get("type", 0))), protocol="",
            state=_TCP_STATES.get(state, str(state)), state_number=state, ino=usk.get("ino", 0),
            name=unix_name(usk.get("name", b"")), peer=usk.get("peer", 0),
            send_buf=opts.get("so_sndbuf", 0), recv_buf=opts.get("so_rcvbuf", 0),
        )
    return None


def _udp_state(state: int) -> str:
    return {1: "ESTABLISHED", 7: "UNCONNECTED"}.get(state, str(state))


class ProcessLoader:
    """Builds :class:`Process` records and :class:`ProcessMemory` layers."""

    def __init__(self, images: ImageReader) -> None:
        self.images = images
        self.source = images.source
        self._memory: dict[int, ProcessMemory] = {}

    def pstree(self) -> list[dict[str, Any]]:
        """The tasks, up to any damage in ``pstree.img`` (warned); a pid listed twice once.
        What is wrong with the tree's shape (pid 0, cycles, several roots) is warned too."""
        label = self.images.label("pstree.img")
        tree, damage = decode_prefix(label, self.images.data("pstree.img"), "pstree", m.PSTREE)
        if damage is not None:
            if not tree:
                raise damage
            self.images.warnings.append(f"{damage}; only the first {len(tree)} tasks are read")
        unique: dict[int, dict[str, Any]] = {}
        for entry in tree:
            pid = entry.get("pid", 0)
            if pid in unique:
                self.images.warnings.append(f"{label}: pid {pid} is listed twice; "
                                            "the second entry is ignored")
                continue
            unique[pid] = entry
        tasks = list(unique.values())
        shape = build_forest([(t.get("pid", 0), t.get("ppid", 0)) for t in tasks])
        self.images.warnings.extend(f"{label}: {problem}" for problem in shape.problems)
        return tasks

    def live_pids(self) -> list[int]:
        """The pids :meth:`load_all` would mark ``has_state`` (alive or stopped), read from
        ``pstree.img`` and ``core-N.img`` alone."""
        out = []
        for entry in self.pstree():
            pid = entry.get("pid", 0)
            try:
                core = self.images.first(f"core-{pid}.img", "core", m.CORE)
            except (ArchiveError, CriuImageError):
                continue  # state unknown: load() gives task_state 0, not live
            if core.get("tc", {}).get("task_state", 0) in (1, 3):
                out.append(pid)
        return out

    def load_all(self) -> list[Process]:
        return [self.load(entry) for entry in self.pstree()]

    def load(self, tree: dict[str, Any]) -> Process:
        from forensics.archive.model import Credentials, Process

        pid = tree.get("pid", 0)
        errors: list[str] = []
        info: dict[str, Any] = {
            "pid": pid, "ppid": tree.get("ppid", 0), "pgid": tree.get("pgid", 0),
            "sid": tree.get("sid", 0), "comm": "", "task_state": 0,
        }
        core: dict[str, Any] = {}
        try:
            core = self.images.first(f"core-{pid}.img", "core", m.CORE)
        except (ArchiveError, CriuImageError) as exc:
            errors.append(str(exc))
        tc = core.get("tc", {})
        thread_core = core.get("thread_core", {})
        info["comm"] = tc.get("comm", thread_core.get("comm", ""))
        info["task_state"] = tc.get("task_state", 0)
        creds = thread_core.get("creds") or self._legacy_creds(pid)
        if creds:
            info["creds"] = Credentials(
                creds.get("uid", 0), creds.get("gid", 0), creds.get("euid", 0), creds.get("egid", 0)
            )
        info["threads"] = tuple(
            self._thread(tid, pid, info["comm"], errors) for tid in tree.get("threads", []) or [pid]
        )
        if core and info["task_state"] not in (1, 3):  # dead tasks keep no files or memory;
            # when core-N.img cannot be read the state is unknown: read what there is
            return Process(**info, errors=tuple(errors))
        ids = core.get("ids") or self._step(errors, lambda: self.images.first(
            f"ids-{pid}.img", "ids", m.TASK_KOBJ_IDS))
        files = self._step(errors, lambda: self._files(pid, ids or {}))
        if files is not None:
            info["files"] = files
            info["sockets"] = tuple(
                s for f in files if (s := make_socket(f.fd, self.images.files.get(f.file_id, {})))
            )
        fs = self._step(errors, lambda: self.images.first(f"fs-{pid}.img", "fs", m.FS))
        if fs:
            info["cwd"] = self.images.file_path(fs.get("cwd_id", -1))
            info["root"] = self.images.file_path(fs.get("root_id", -1))
        mm = self._step(errors, lambda: self.images.first(f"mm-{pid}.img", "mm", m.MM))
        memory = self._step(errors, lambda: self.memory(pid))
        if mm:
            info["exe"] = self.images.file_path(mm.get("exe_file_id", -1))
            info["exe_deleted"] = mm.get("exe_file_id", -1) in self.images.ghosts
            info["shared_memory_bytes"] = sum(
                v.get("end", 0) - v.get("start", 0)
                for v in mm.get("vmas", []) if v.get("flags", 0) & MAP_SHARED
            )
        if memory is not None:
            errors.extend(memory.warnings)
            info["memory_pages_bytes"] = memory.present_bytes
            if mm:
                info["cmdline"], info["cmdline_truncated"] = memory.read_strings_bounded(
                    mm.get("mm_arg_start", 0), mm.get("mm_arg_end", 0),
                    limits.MAX_ARGV_BYTES, limits.MAX_ARGV_STRINGS)
                info["environ"], info["environ_truncated"] = memory.read_strings_bounded(
                    mm.get("mm_env_start", 0), mm.get("mm_env_end", 0),
                    limits.MAX_ENV_BYTES, limits.MAX_ENV_STRINGS)
        return Process(**info, errors=tuple(errors))

    def memory(self, pid: int) -> ProcessMemory:
        """The memory layer of process ``pid`` (its pagemap is decoded once)."""
        if pid not in self._memory:
            name = f"pagemap-{pid}.img"
            label = self.images.label(name)
            pagemap = parse_pagemap(label, self.images.data(name))
            pages = self.source.members.get(f"{CKPT}pages-{pagemap.pages_id}.img")
            self._memory[pid] = ProcessMemory(self.source, pages, pagemap, label=label)
        return self._memory[pid]

    def _thread(self, tid: int, pid: int, comm: str, errors: list[str]) -> Thread:
        from forensics.archive.model import Thread

        if tid == pid:
            return Thread(tid, comm)
        core = self._step(errors, lambda: self.images.first(f"core-{tid}.img", "core", m.CORE))
        name = (core or {}).get("thread_core", {}).get("comm", "")
        return Thread(tid, name)

    def _files(self, pid: int, ids: dict[str, Any]) -> tuple[OpenFile, ...]:
        from forensics.archive.model import OpenFile

        per_id = self.images.inventory.get("fdinfo_per_id", False)
        key = ids.get("files_id", pid) if per_id else pid
        out = []
        for fdinfo in self.images.all(f"fdinfo-{key}.img", "fdinfo", m.FDINFO):
            file_id = fdinfo.get("id", 0)
            entry = self.images.files.get(file_id, {"type": fdinfo.get("type", 0), "id": file_id})
            ftype = m.FD_TYPES.get(fdinfo.get("type", 0), str(fdinfo.get("type", 0)))
            sock = entry.get("isk") or entry.get("usk")
            out.append(OpenFile(
                fd=fdinfo.get("fd", 0), type=ftype, path=describe_file(entry), file_id=file_id,
                deleted=file_id in self.images.ghosts,
                ino=sock.get("ino") if sock else None,
            ))
        return tuple(sorted(out, key=lambda f: f.fd))

    def _legacy_creds(self, pid: int) -> dict[str, Any] | None:
        if not self.images.has(f"creds-{pid}.img"):
            return None
        try:
            return self.images.first(f"creds-{pid}.img", "creds", m.CREDS)
        except (ArchiveError, CriuImageError) as exc:
            self.images.warnings.append(str(exc))
            return None

    @staticmethod
    def _step(errors: list[str], load: Callable[[], Any]) -> Any:
        try:
            return load()
        except (ArchiveError, CriuImageError) as exc:
            errors.append(str(exc))
            return None
