"""CRIU image framing: magics and size-prefixed entries.

An image starts with a 4-byte head magic (``IMG_COMMON_MAGIC``, or
``IMG_SERVICE_MAGIC`` for stats) followed by the 4-byte type magic;
``inventory.img`` of old CRIU versions carries only the type magic. Then come
entries, each a little-endian u32 size and that many bytes of protobuf.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from forensics.archive.criu.messages import IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC, MAGICS
from forensics.archive.criu.wire import Message, WireError, decode
from forensics.errors import CriuImageError

_U32 = struct.Struct("<I")


def entries(name: str, data: bytes | memoryview, kind: str) -> Iterator[tuple[int, memoryview]]:
    """Yield (offset, payload) for each entry of image ``name`` of type ``kind``.

    Raises :class:`CriuImageError` on a wrong magic, a truncated entry or a
    size prefix that points past the end of the image.
    """
    view = memoryview(data)
    size = len(view)
    if size < 4:
        raise CriuImageError(name, "too short for a CRIU image magic")
    (first,) = _U32.unpack_from(view, 0)
    pos = 4
    expected = MAGICS[kind]
    if first in (IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC):
        if size < 8:
            raise CriuImageError(name, "truncated after the head magic")
        (first,) = _U32.unpack_from(view, 4)
        pos = 8
    if first != expected:
        raise CriuImageError(
            name, f"bad magic 0x{first:08x}, expected 0x{expected:08x} ({kind})", offset=pos - 4
        )
    while pos < size:
        if pos + 4 > size:
            raise CriuImageError(name, "truncated entry size", offset=pos)
        (length,) = _U32.unpack_from(view, pos)
        pos += 4
        if length > size - pos:
            raise CriuImageError(
                name, f"entry claims {length} bytes but only {size - pos} remain", offset=pos - 4
            )
        yield pos, view[pos : pos + length]
        pos += length


def decode_entries(
    name: str, data: bytes | memoryview, kind: str, message: Message
) -> list[dict[str, Any]]:
    """Decode every entry of an image as ``message``."""
    return [_decode(name, off, payload, message) for off, payload in entries(name, data, kind)]


def decode_prefix(
    name: str, data: bytes | memoryview, kind: str, message: Message
) -> tuple[list[dict[str, Any]], CriuImageError | None]:
    """Decode entries up to the first damaged one: those read, and the damage (or None)."""
    out: list[dict[str, Any]] = []
    try:
        for offset, payload in entries(name, data, kind):
            out.append(_decode(name, offset, payload, message))
    except CriuImageError as exc:
        return out, exc
    return out, None


def decode_first(
    name: str, data: bytes | memoryview, kind: str, message: Message
) -> dict[str, Any]:
    """Decode the single (first) entry of an image."""
    for offset, payload in entries(name, data, kind):
        return _decode(name, offset, payload, message)
    raise CriuImageError(name, "image holds no entry")


def _decode(name: str, offset: int, payload: memoryview, message: Message) -> dict[str, Any]:
    try:
        return decode(message, payload)
    except WireError as exc:
        raise CriuImageError(name, f"malformed {message.name}: {exc}", offset=offset) from None
