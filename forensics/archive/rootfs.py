"""The container's file-system changes: ``rootfs-diff.tar``, ``deleted.files``, ``devshm``.

The nested tars are read in place (they are members of the archive); each
regular file is hashed by streaming, so a gigantic file costs time, never
memory. Nothing is ever extracted to disk.
"""

from __future__ import annotations

import hashlib
import json

from forensics.archive.model import FileEntry
from forensics.archive.source import ArchiveSource, Member, index_tar

HASH_CHUNK = 1 << 20


def list_nested_tar(
    source: ArchiveSource, member_name: str, prefix: str = "/"
) -> tuple[list[FileEntry], list[str]]:
    """List (and hash) the files of a tar stored as a member of the archive."""
    member = source.members[member_name]
    label = f"{source.path}: {member_name}"
    with source.open_member(member_name) as f:
        members, warnings = index_tar(f, label, member.size)
    entries = [
        FileEntry(
            path=prefix.rstrip("/") + "/" + inner.name,
            type=inner.kind,
            size=inner.size,
            mode=inner.mode,
            sha256=_hash(source, member, inner) if inner.kind == "file" else None,
            linkname=inner.linkname,
        )
        for inner in sorted(members.values(), key=lambda i: i.name)
    ]
    return entries, warnings


def _hash(source: ArchiveSource, outer: Member, inner: Member) -> str:
    digest = hashlib.sha256()
    done = 0
    window = Member(outer.name, "file", outer.offset + inner.offset, inner.size, 0, 0)
    while done < inner.size:
        chunk = source.pread(window, done, min(HASH_CHUNK, inner.size - done))
        if not chunk:
            break
        digest.update(chunk)
        done += len(chunk)
    return digest.hexdigest()


def parse_deleted_files(data: bytes) -> list[str]:
    """``deleted.files`` is a JSON list of the paths removed from the image's rootfs."""
    value = json.loads(data)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a JSON list of paths")
    return list(value)
