"""Keeping an archive's exact bytes across a re-tar (the buildah backend).

``buildah add CTR ARCHIVE /`` extracts the archive and ``buildah commit``
tars the files again: same members and contents, other order and headers,
so another digest. Like containers/storage's tar-split, csi records the
archive's raw header bytes, member order and padding in a small sidecar
(gzip'd JSON) that travels inside the image; a pull rebuilds the original
bytes from the sidecar and the layer's file contents, and checks the
result against ``dev.csi.archive.sha256``.

The sidecar comes from the registry, so it is bounded like everything else
from there: its compressed and decompressed sizes, every padding it
describes, and the bytes the rebuild may write (``limit``).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import tarfile
import zlib
from collections.abc import Callable
from typing import Any

from forensics.archive.source import Member, index_tar, normalise_member_name
from forensics.storage.errors import RegistryError

SIDECAR_PATH = ".csi-archive.tar-split.json.gz"
VERSION = 1
_COPY = 4 << 20
MAX_SIDECAR = 64 << 20  # compressed, as stored in the layer
MAX_SIDECAR_JSON = 512 << 20  # decompressed: ~700 bytes per member
MAX_GAP = 1 << 20  # tar padding and trailers are a few KiB


def _gap(data: bytes) -> int | str:
    """All-zero padding is stored as its length, anything else verbatim."""
    return len(data) if not data.strip(b"\0") else base64.b64encode(data).decode()


def _ungap(value: object) -> bytes:
    """The padding a sidecar describes; refused when it is not a small one."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_GAP:
        return b"\0" * value
    if isinstance(value, str) and len(value) <= MAX_GAP * 4 // 3 + 4:
        return base64.b64decode(value, validate=True)
    raise ValueError(f"a padding of {str(value)[:40]!r} bytes")


def build(archive: str, sha256: str) -> bytes:
    """The sidecar for a plain tar ``archive`` (whose sha256 is given)."""
    entries: list[dict[str, Any]] = []
    size = os.path.getsize(archive)
    with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r:") as tar:
        end = 0
        for info in tar:
            if info.issparse():
                raise RegistryError(f"{archive}: member {info.name} is a sparse file",
                                    hint="use the native backend, which keeps the archive as is")
            if info.offset != end and entries:
                raw.seek(end)
                entries[-1]["gap"] = _gap(raw.read(info.offset - end))
            raw.seek(info.offset)
            header = raw.read(info.offset_data - info.offset)
            data_size = info.size if info.isreg() else 0
            name = normalise_member_name(info.name) or info.name
            entries.append({"name": name, "header": base64.b64encode(header).decode(),
                            "size": data_size, "gap": 0})
            end = info.offset_data + data_size
        raw.seek(end)
        trailer = _gap(raw.read(size - end))
    doc = {"version": VERSION, "sha256": sha256, "size": size, "entries": entries,
           "trailer": trailer}
    return gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), mtime=0)


def load(data: bytes) -> dict[str, Any]:
    try:
        inflate = zlib.decompressobj(wbits=31)  # gzip, one member: what build() writes
        text = inflate.decompress(data, MAX_SIDECAR_JSON)
        if inflate.unconsumed_tail:
            raise ValueError(f"it expands to more than {MAX_SIDECAR_JSON} bytes")
        doc = json.loads(text)
    except (OSError, ValueError, EOFError, zlib.error) as exc:
        raise RegistryError("the image's tar-split sidecar is unreadable", why=str(exc)) from None
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise RegistryError("the image's tar-split sidecar has an unknown version")
    return doc


def reassemble(layer_tar: str, write: Callable[[bytes], None],
               limit: int | None = None) -> dict[str, Any]:
    """Rebuild the original archive from a plain-tar layer that holds the sidecar.

    Writes through ``write``, at most ``limit`` bytes (a sidecar may name one
    member many times); returns the sidecar document (its ``sha256`` is what
    the result must hash to: the caller verifies).
    """
    written = 0

    def bounded(data: bytes) -> None:
        nonlocal written
        written += len(data)
        if limit is not None and written > limit:
            raise RegistryError(f"cannot rebuild the archive: it would exceed {limit} bytes",
                                hint="the image's tar-split sidecar is malformed or hostile; "
                                "nothing was kept")
        write(data)

    try:
        return _reassemble(layer_tar, bounded)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RegistryError("the image's tar-split sidecar is malformed",
                            why=f"{type(exc).__name__}: {str(exc)[:200]}",
                            hint="nothing was kept") from None


def _reassemble(layer_tar: str, write: Callable[[bytes], None]) -> dict[str, Any]:
    fd = os.open(layer_tar, os.O_RDONLY)
    try:
        with os.fdopen(os.dup(fd), "rb") as f:
            members, _ = index_tar(f, layer_tar, os.fstat(fd).st_size)
        side = members.get(SIDECAR_PATH)
        if side is None:
            raise RegistryError("the layer is not the archive and carries no tar-split sidecar",
                                hint="this image was not pushed by csi: its layer cannot be "
                                "shown to be the archive its annotations name")
        if side.size > MAX_SIDECAR:
            raise RegistryError(f"the image's tar-split sidecar is {side.size} bytes, more than "
                                f"{MAX_SIDECAR}", hint="nothing was kept")
        doc = load(os.pread(fd, side.size, side.offset))
        for entry in doc["entries"]:
            write(base64.b64decode(entry["header"], validate=True))
            if entry["size"]:
                member = _content(members, entry["name"], entry["size"])
                _copy_range(fd, member.offset, member.size, write)
            write(_ungap(entry.get("gap", 0)))
        write(_ungap(doc.get("trailer", 0)))
        return doc
    finally:
        os.close(fd)


def _content(members: dict[str, Member], name: str, size: int) -> Member:
    member = members.get(name)
    for _ in range(8):  # follow hard links the re-tar may have made
        if member is None or member.kind != "hardlink":
            break
        member = members.get(normalise_member_name(member.linkname) or "")
    if member is None or member.kind != "file" or member.size != size:
        raise RegistryError(f"cannot rebuild the archive: member {name} is missing from the "
                            "layer or has another size")
    return member


def _copy_range(fd: int, offset: int, size: int, write: Callable[[bytes], None]) -> None:
    while size > 0:
        data = os.pread(fd, min(size, _COPY), offset)
        if not data:
            raise RegistryError("cannot rebuild the archive: the layer ends early")
        write(data)
        offset += len(data)
        size -= len(data)
