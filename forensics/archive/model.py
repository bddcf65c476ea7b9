"""Typed, frozen records of what a checkpoint holds.

These are the facts csi reads from an archive; views (JSON, tree) and
analyzers consume them and never reach back into CRIU images themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from forensics.archive.criu.messages import TASK_STATES


@dataclass(frozen=True)
class ArchiveInfo:
    """The archive file itself: where it is, its digest, its size and compression."""

    path: str
    sha256: str
    size: int
    compression: str
    sha256_cached: bool = False  # from csi's hash cache (keyed on inode, size, mtime, ctime)


@dataclass(frozen=True)
class CheckpointSize:
    """Byte counts as checkpointctl reports them."""

    total_size: int  # regular files under checkpoint/
    memory_pages_size: int  # pages-*.img
    root_fs_diff_size: int  # rootfs-diff.tar


@dataclass(frozen=True)
class Thread:
    """A thread of a process: its tid and its name (comm)."""

    tid: int
    name: str


@dataclass(frozen=True)
class Credentials:
    """A task's real and effective user and group ids."""

    uid: int
    gid: int
    euid: int
    egid: int


@dataclass(frozen=True)
class OpenFile:
    """A file descriptor and what it refers to."""

    fd: int
    type: str  # CRIU fd type: REG, PIPE, INETSK, UNIXSK, ...
    path: str  # a file path, pipe[N], inet:INO, unix:NAME
    file_id: int
    deleted: bool = False  # a regular file unlinked while open (CRIU ghost file)
    ino: int | None = None  # sockets


@dataclass(frozen=True)
class Socket:
    """A socket behind a file descriptor."""

    fd: int
    kind: str  # INETSK, UNIXSK, PACKETSK, NETLINKSK
    family: str  # IPv4, IPv6, UNIX, ...
    family_number: int
    type: str  # STREAM, DGRAM, ...
    protocol: str  # TCP, UDP, ... ('' for UNIX)
    state: str  # ESTABLISHED, LISTEN, ...
    state_number: int
    ino: int
    src: str = ""
    src_port: int = 0
    dst: str = ""
    dst_port: int = 0
    name: str = ""  # UNIX: path, or @name for the abstract namespace
    peer: int = 0  # UNIX: inode of the peer
    send_buf: int = 0
    recv_buf: int = 0


@dataclass(frozen=True)
class Process:
    """A task of the checkpoint, with what CRIU saved of it."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    comm: str
    task_state: int
    threads: tuple[Thread, ...] = ()
    cmdline: tuple[str, ...] | None = None  # None: not readable from memory
    environ: tuple[str, ...] | None = None
    exe: str | None = None
    exe_deleted: bool = False  # the executable was unlinked while running
    cwd: str | None = None
    root: str | None = None
    creds: Credentials | None = None
    files: tuple[OpenFile, ...] = ()
    sockets: tuple[Socket, ...] = ()
    memory_pages_bytes: int = 0
    shared_memory_bytes: int = 0
    cmdline_truncated: int = 0  # bytes of the argv area left out (forensics/limits.py)
    environ_truncated: int = 0  # bytes of the environment area left out
    errors: tuple[str, ...] = field(default=(), compare=False)

    @property
    def state_name(self) -> str:
        return TASK_STATES.get(self.task_state, str(self.task_state))

    @property
    def has_state(self) -> bool:
        """Alive and stopped tasks have files and memory in the image; dead ones do not."""
        return self.task_state in (1, 3)


@dataclass(frozen=True)
class TcpQueue:
    """Data CRIU saved from a TCP socket's queues (``tcp-stream-<ino>.img``)."""

    ino: int
    inq: bytes
    outq: bytes


@dataclass(frozen=True)
class FileEntry:
    """A file of ``rootfs-diff.tar`` or ``devshm-checkpoint.tar``."""

    path: str
    type: str  # file, dir, symlink, hardlink, chardev, blockdev, fifo
    size: int
    mode: int  # st_mode with type bits
    sha256: str | None = None
    linkname: str = ""


@dataclass(frozen=True)
class Mount:
    """A mount of the container's spec."""

    destination: str
    type: str
    source: str


@dataclass(frozen=True)
class DumpStats:
    """CRIU's dump statistics (``stats-dump``), times in microseconds."""

    values: tuple[tuple[str, int], ...]

    def as_dict(self) -> dict[str, int]:
        return dict(self.values)
