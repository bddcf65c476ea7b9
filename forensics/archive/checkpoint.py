"""The :class:`Checkpoint`: one archive, everything csi knows how to read from it.

Parts are read lazily and once: ``csi show`` touches only the metadata,
``csi inspect --all`` decodes every CRIU image. A part that cannot be read
is left empty with a warning in :attr:`Checkpoint.warnings`; only an archive
that is not a container checkpoint at all raises :class:`ArchiveError`.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import TYPE_CHECKING, Any

from forensics.archive.criu import messages as m
from forensics.archive.criu.image import decode_first, entries
from forensics.archive.criu.wire import WireError, decode
from forensics.archive.memory import ProcessMemory
from forensics.archive.processes import CKPT, ImageReader, ProcessLoader
from forensics.archive.source import ArchiveSource, Member, Progress
from forensics.errors import ArchiveError, CriuImageError

# The records (model), the metadata and the rootfs readers are imported where they
# are used: csi memparse, which needs none of them, starts ~10 ms sooner.
if TYPE_CHECKING:
    from forensics.archive.metadata import ContainerInfo, KubernetesIdentity
    from forensics.archive.model import (
        ArchiveInfo,
        CheckpointSize,
        DumpStats,
        FileEntry,
        Mount,
        Process,
        TcpQueue,
    )

_TCP_STREAM = re.compile(r"^checkpoint/tcp-stream-([0-9a-f]+)\.img$")
MAX_QUEUE_BYTES = 4 << 20


class Checkpoint:
    """A container checkpoint archive opened for analysis (read-only)."""

    def __init__(
        self, path: str, *, progress: Progress | None = None, hash_cache: bool = True,
        hash_eagerly: bool = True,
    ) -> None:
        """Open ``path``. ``hash_cache=False`` recomputes the sha256 (analysis of evidence);
        ``hash_eagerly=False`` hashes only if the digest is asked for."""
        self.source = ArchiveSource(path, progress=progress, hash_cache=hash_cache,
                                    hash_eagerly=hash_eagerly)
        try:
            if not any(n.startswith(CKPT) for n in self.source.members) and self.source.warnings:
                damage = "; ".join(w.removeprefix(f"{path}: ") for w in self.source.warnings)
                raise ArchiveError(path, "no readable checkpoint/ directory", why=damage,
                                   hint="the archive is damaged: copy it again from the node")
            if not any(n.startswith(CKPT) for n in self.source.members):
                raise ArchiveError(
                    path, "no checkpoint/ directory", why="this is not a container checkpoint",
                    hint="expected the archive of `podman container checkpoint --export` or "
                    "the kubelet's /checkpoint API",
                )
        except BaseException:
            self.source.close()
            raise
        self._warnings: list[str] = list(self.source.warnings)
        self._located: dict[str, Member] = {}
        self.deleted_files_omitted = 0  # paths of deleted.files beyond those kept

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.source.close()

    @property
    def path(self) -> str:
        return self.source.path

    @property
    def warnings(self) -> list[str]:
        """Every part that could not be read, in order, without duplicates."""
        seen: dict[str, None] = dict.fromkeys(self._warnings)
        if "images" in self.__dict__:
            seen.update(dict.fromkeys(self.images.warnings))
        for process in self.__dict__.get("processes", []):
            seen.update(dict.fromkeys(process.errors))
        return list(seen)

    # ------------------------------------------------------------ metadata

    def _json_member(self, name: str) -> dict[str, Any]:
        from forensics.limits import MAX_JSON_MEMBER_BYTES

        member = self.source.members.get(name)
        if member is None or not self.source.has(name):
            self._warnings.append(f"{self.path}: {name}: missing")
            return {}
        if member.size > MAX_JSON_MEMBER_BYTES:
            self._warnings.append(f"{self.path}: {name}: {member.size:,} bytes, more than csi "
                                  f"reads ({MAX_JSON_MEMBER_BYTES:,}); not read")
            return {}
        try:
            from forensics.archive.metadata import parse_json_object

            return parse_json_object(self.source.read(name))
        except (ValueError, ArchiveError) as exc:
            self._warnings.append(f"{self.path}: {name}: {exc}")
            return {}

    @cached_property
    def config(self) -> dict[str, Any]:
        return self._json_member("config.dump")

    @cached_property
    def spec(self) -> dict[str, Any]:
        return self._json_member("spec.dump")

    @cached_property
    def annotations(self) -> dict[str, str]:
        from forensics.archive.metadata import annotations_of

        return annotations_of(self.spec)

    @cached_property
    def container(self) -> ContainerInfo:
        from forensics.archive.metadata import container_info

        return container_info(self.config, self.annotations)

    @cached_property
    def kubernetes(self) -> KubernetesIdentity:
        from forensics.archive.metadata import kubernetes_identity

        return kubernetes_identity(self.annotations)

    @cached_property
    def archive(self) -> ArchiveInfo:
        from forensics.archive.model import ArchiveInfo

        s = self.source
        return ArchiveInfo(path=s.path, sha256=s.sha256, size=s.size, compression=s.compression,
                           sha256_cached=s.sha256_cached)

    @cached_property
    def sizes(self) -> CheckpointSize:
        from forensics.archive.model import CheckpointSize

        total = pages = 0
        for member in self.source.members.values():
            if member.kind != "file" or not member.name.startswith(CKPT):
                continue
            total += member.size
            if member.name.startswith(CKPT + "pages-"):
                pages += member.size
        rootfs = self.source.members.get("rootfs-diff.tar")
        return CheckpointSize(total, pages, rootfs.size if rootfs else 0)

    @cached_property
    def mounts(self) -> list[Mount]:
        from forensics.archive.model import Mount

        raw = self.spec.get("mounts")
        if not isinstance(raw, list):
            return []
        return [
            Mount(str(e.get("destination", "")), str(e.get("type", "")), str(e.get("source", "")))
            for e in raw if isinstance(e, dict)
        ]

    @cached_property
    def stats(self) -> DumpStats | None:
        from forensics.archive.model import DumpStats

        if not self.source.has("stats-dump"):
            return None
        try:
            entry = decode_first("stats-dump", self.source.read("stats-dump"), "stats", m.STATS)
        except (ArchiveError, CriuImageError) as exc:
            self._warnings.append(f"{self.path}: {exc}")
            return None
        dump = entry.get("dump", {})
        return DumpStats(tuple((f.name, dump.get(f.name, 0)) for f in m.DUMP_STATS.fields.values()))

    # ------------------------------------------------------------ processes

    @cached_property
    def images(self) -> ImageReader:
        return ImageReader(self.source)

    @cached_property
    def _loader(self) -> ProcessLoader:
        return ProcessLoader(self.images)

    @cached_property
    def processes(self) -> list[Process]:
        """Every task of the checkpoint, in pstree order (parents before children)."""
        try:
            return self._loader.load_all()
        except (ArchiveError, CriuImageError) as exc:
            self._warnings.append(f"{exc}; no process could be read")
            return []

    def live_pids(self) -> list[int]:
        """Pids of the processes with files and memory (``has_state``), in pstree order;
        cheaper than :attr:`processes` when that is all a command needs."""
        if "processes" in self.__dict__:  # already loaded
            return [p.pid for p in self.processes if p.has_state]
        try:
            return self._loader.live_pids()
        except (ArchiveError, CriuImageError) as exc:
            self._warnings.append(f"{exc}; no process could be read")
            return []

    def process(self, pid: int) -> Process | None:
        return next((p for p in self.processes if p.pid == pid), None)

    def memory(self, pid: int) -> ProcessMemory:
        """The memory layer of one process; raises CriuImageError/ArchiveError if unreadable."""
        return self._loader.memory(pid)

    @cached_property
    def tcp_queues(self) -> list[TcpQueue]:
        out = []
        for name in sorted(self.source.names(CKPT + "tcp-stream-")):
            match = _TCP_STREAM.match(name)
            if not match:
                continue
            queue = self._tcp_queue(name, int(match.group(1), 16))
            if queue is not None:
                out.append(queue)
        return out

    def _tcp_queue(self, name: str, ino: int) -> TcpQueue | None:
        """The entry is followed by inq_len bytes of receive queue, then the send queue."""
        from forensics.archive.model import TcpQueue

        label = f"{self.path}: {name}"
        try:
            data = self.source.read(name)
            first = next(entries(label, data, "tcp-stream"), None)
            if first is None:
                raise CriuImageError(label, "image holds no entry")
            offset, payload = first
            try:
                entry = decode(m.TCP_STREAM, payload)
            except WireError as exc:
                raise CriuImageError(label, f"malformed tcp_stream_entry: {exc}") from None
        except (ArchiveError, CriuImageError) as exc:
            self._warnings.append(str(exc))
            return None
        start = offset + len(payload)
        inq_len, outq_len = entry.get("inq_len", 0), entry.get("outq_len", 0)
        if start + inq_len + outq_len > len(data):
            self._warnings.append(f"{self.path}: {name}: queued data cut short")
        inq = data[start : start + min(inq_len, MAX_QUEUE_BYTES)]
        outq = data[start + inq_len : start + inq_len + min(outq_len, MAX_QUEUE_BYTES)]
        return TcpQueue(ino=ino, inq=inq, outq=outq)

    # ------------------------------------------------------------ file system

    def _nested(self, member: str, prefix: str) -> list[FileEntry]:
        from forensics.archive.rootfs import list_nested_tar

        if not self.source.has(member):
            return []
        try:
            entries, located, warnings = list_nested_tar(self.source, member, prefix)
        except ArchiveError as exc:
            self._warnings.append(str(exc))
            return []
        self._warnings.extend(warnings)
        self._located.update(located)
        return entries

    def nested_member(self, path: str) -> Member | None:
        """Where a file of the rootfs diff or /dev/shm lies in the archive, to read in place."""
        _ = self.rootfs_diff, self.devshm  # list them first
        return self._located.get(path)

    @cached_property
    def rootfs_diff(self) -> list[FileEntry]:
        return self._nested("rootfs-diff.tar", "/")

    @cached_property
    def devshm(self) -> list[FileEntry]:
        return self._nested("devshm-checkpoint.tar", "/dev/shm")

    @cached_property
    def deleted_files(self) -> list[str]:
        """The paths ``deleted.files`` lists, the first ``MAX_DELETED_FILES`` of them
        (:attr:`deleted_files_omitted` counts the rest, and a warning says so)."""
        from forensics import limits
        from forensics.archive.rootfs import parse_deleted_files

        self.deleted_files_omitted = 0
        member = self.source.members.get("deleted.files")
        if member is None:
            return []
        if member.size > limits.MAX_DELETED_FILES_BYTES:
            self._warnings.append(
                f"{self.path}: deleted.files: {member.size:,} bytes, more than csi reads "
                f"({limits.MAX_DELETED_FILES_BYTES:,}); its deletions are not listed")
            return []
        try:
            paths, total = parse_deleted_files(self.source.read("deleted.files"))
        except (ValueError, ArchiveError) as exc:
            self._warnings.append(f"{self.path}: deleted.files: {exc}")
            return []
        if total > len(paths):
            self.deleted_files_omitted = total - len(paths)
            self._warnings.append(
                f"{self.path}: deleted.files lists {total:,} paths; {len(paths):,} are kept "
                f"(the first ones, and any under /var/log/) and "
                f"{self.deleted_files_omitted:,} more are counted")
        return paths
