"""The container's file-system changes: ``rootfs-diff.tar``, ``deleted.files``, ``devshm``.

The nested tars are read in place (they are members of the archive); each
regular file is hashed by streaming, so a gigantic file costs time, never
memory. Nothing is ever extracted to disk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forensics.archive.source import ArchiveSource, Member, index_tar

if TYPE_CHECKING:
    from forensics.archive.model import FileEntry

HASH_CHUNK = 1 << 20


def list_nested_tar(
    source: ArchiveSource, member_name: str, prefix: str = "/"
) -> tuple[list[FileEntry], dict[str, Member], list[str]]:
    """List (and hash) the files of a tar stored as a member of the archive.

    Returns the entries, where each regular file's bytes are in the archive
    (as members of the outer tar, for reading in place), and warnings.
    """
    from forensics.archive.model import FileEntry

    outer = source.members[member_name]
    label = f"{source.path}: {member_name}"
    with source.open_member(member_name) as f:
        members, warnings = index_tar(f, label, outer.size)
    entries: list[FileEntry] = []
    located: dict[str, Member] = {}
    for inner in sorted(members.values(), key=lambda i: i.name):
        path = prefix.rstrip("/") + "/" + inner.name
        digest = None
        if inner.kind == "file":
            window = Member(path, "file", outer.offset + inner.offset, inner.size, inner.mode, 0)
            located[path] = window
            digest = _hash(source, window)
        entries.append(FileEntry(path=path, type=inner.kind, size=inner.size, mode=inner.mode,
                                 sha256=digest, linkname=inner.linkname))
    return entries, located, warnings


def _hash(source: ArchiveSource, window: Member) -> str:
    import hashlib  # its OpenSSL load (~3 ms) is paid only where files are hashed

    digest = hashlib.sha256()
    buf = memoryview(bytearray(HASH_CHUNK))  # reused: bulk reads allocate nothing
    for done in range(0, window.size, HASH_CHUNK):
        n = source.pread_into(window, done, buf[: min(HASH_CHUNK, window.size - done)])
        if n <= 0:
            break
        digest.update(buf[:n])
    return digest.hexdigest()


def parse_deleted_files(data: bytes) -> list[str]:
    """``deleted.files`` is a JSON list of the paths removed from the image's rootfs."""
    import json

    value = json.loads(data)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a JSON list of paths")
    return list(value)
