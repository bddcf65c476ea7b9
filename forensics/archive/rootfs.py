"""The container's file-system changes: ``rootfs-diff.tar``, ``deleted.files``, ``devshm``.

The nested tars are read in place (they are members of the archive); each
regular file is hashed by streaming, so a gigantic file costs time, never
memory. Nothing is ever extracted to disk.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from forensics import limits
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
        members, warnings = index_tar(f, label, outer.size, limits.MAX_NESTED_ENTRIES)
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


def parse_deleted_files(data: bytes, keep: int = limits.MAX_DELETED_FILES
                        ) -> tuple[list[str], int]:
    """``deleted.files`` is a JSON list of the paths removed from the image's rootfs: the
    first ``keep`` paths, then up to ``keep`` more under ``NOTABLE`` (so that no flood of
    paths hides a deleted log), and how many the list holds in all.

    The list is the attacker's (a million paths compress to 47 KB): a large one is read
    element by element, so only the paths kept are ever held; nesting is bounded (an
    entry nested too deep is a ValueError, never a RecursionError)."""
    import json

    if len(data) <= SMALL_JSON:
        try:
            value = json.loads(data)
        except RecursionError:
            raise ValueError("nested too deeply to parse") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not valid JSON ({exc})") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("expected a JSON list of paths")
        return _kept(value, keep), len(value)
    return _stream_paths(data.decode("utf-8", "surrogateescape"), keep)


NOTABLE = ("/var/log/",)  # what the filesystem analyzer rates HIGH when deleted
SMALL_JSON = 1 << 20  # deleted.files up to this size are parsed whole (fast path)
_WS = re.compile(r"[ \t\n\r]*")


def _kept(paths: list[str], keep: int) -> list[str]:
    if len(paths) <= keep:
        return paths
    notable = (p for p in paths[keep:] if p.startswith(NOTABLE))
    return paths[:keep] + [p for p, _ in zip(notable, range(keep), strict=False)]


def _stream_paths(text: str, keep: int) -> tuple[list[str], int]:
    import json

    decoder = json.JSONDecoder()
    paths: list[str] = []
    total = 0
    i = _skip(text, 0)
    if text[i:i + 1] != "[":
        raise ValueError("expected a JSON list of paths")
    i = _skip(text, i + 1)
    if text[i:i + 1] == "]":
        i += 1
    else:
        while True:
            try:
                value, i = decoder.raw_decode(text, i)
            except RecursionError:
                raise ValueError(f"entry {total + 1} is nested too deeply to parse") from None
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON ({exc})") from None
            if not isinstance(value, str):
                raise ValueError(f"expected a JSON list of paths (entry {total + 1} is a "
                                 f"{type(value).__name__})")
            total += 1
            if len(paths) < keep or (value.startswith(NOTABLE) and len(paths) < 2 * keep):
                paths.append(value)
            i = _skip(text, i)
            if text[i:i + 1] == ",":
                i = _skip(text, i + 1)
                continue
            if text[i:i + 1] == "]":
                i += 1
                break
            raise ValueError(f"not valid JSON (expected ',' or ']' at char {i})")
    if _skip(text, i) != len(text):
        raise ValueError(f"not valid JSON (extra data at char {i})")
    return paths, total


def _skip(text: str, i: int) -> int:
    match = _WS.match(text, i)
    return match.end() if match else i
