"""A small protobuf (proto2) wire-format decoder, written for CRIU images.

We decode only what csi reads, guided by the message tables in
:mod:`forensics.archive.criu.messages` (field numbers from CRIU's
``images/*.proto``). Unknown fields are skipped, so newer CRIU versions that
add fields still decode. Every length is bounds-checked against the buffer:
malformed input raises :class:`WireError`, never an IndexError, and never
allocates more than the input size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

VARINT, FIXED64, LENGTH, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5
_MAX_DEPTH = 32


class WireError(ValueError):
    """The bytes are not a valid protobuf message."""


def read_varint(buf: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    """Return (value, new position) of the varint at ``pos``."""
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than 10 bytes")


def iter_fields(buf: bytes | memoryview, start: int = 0, end: int | None = None) -> Iterator[
    tuple[int, int, Any]
]:
    """Yield (field number, wire type, value) for each field in ``buf[start:end]``.

    The value is an int for varint and fixed fields and a memoryview for
    length-delimited ones.
    """
    view = memoryview(buf)
    end = len(view) if end is None else end
    pos = start
    while pos < end:
        key, pos = read_varint(view, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        value: int | memoryview
        if wire == VARINT:
            value, pos = read_varint(view, pos, end)
        elif wire == FIXED64:
            if pos + 8 > end:
                raise WireError("truncated fixed64")
            value = int.from_bytes(view[pos : pos + 8], "little")
            pos += 8
        elif wire == FIXED32:
            if pos + 4 > end:
                raise WireError("truncated fixed32")
            value = int.from_bytes(view[pos : pos + 4], "little")
            pos += 4
        elif wire == LENGTH:
            length, pos = read_varint(view, pos, end)
            if length > end - pos:
                raise WireError(f"field {number} claims {length} bytes, {end - pos} remain")
            value = view[pos : pos + length]
            pos += length
        else:
            raise WireError(f"unsupported wire type {wire} (field {number})")
        yield number, wire, value


# ---------------------------------------------------------------- schema

SCALAR_KINDS = frozenset({"uint", "int32", "int64", "sint", "bool", "fixed32", "fixed64"})
_SCALAR_WIRE = {"fixed32": FIXED32, "fixed64": FIXED64}


@dataclass(frozen=True)
class Field:
    """One field of a message: its name, kind and whether it repeats."""

    name: str
    kind: str  # one of SCALAR_KINDS, "string", "bytes", "msg"
    repeated: bool = False
    message: Message | None = None


@dataclass(frozen=True)
class Message:
    """A message type: field number -> Field."""

    name: str
    fields: dict[int, Field] = field(default_factory=dict)


def _zigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)


def _signed(value: int, bits: int) -> int:
    if value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


def _scalar(kind: str, value: int) -> int | bool:
    if kind == "sint":
        return _zigzag(value)
    if kind == "bool":
        return value != 0
    if kind == "int32":
        return _signed(value & 0xFFFFFFFF, 32)
    if kind == "int64":
        return _signed(value, 64)
    return value


def _packed(kind: str, data: memoryview) -> list[int | bool]:
    out: list[int | bool] = []
    pos, end = 0, len(data)
    if kind == "fixed32":
        if end % 4:
            raise WireError("packed fixed32 not a multiple of 4 bytes")
        return [int.from_bytes(data[i : i + 4], "little") for i in range(0, end, 4)]
    if kind == "fixed64":
        if end % 8:
            raise WireError("packed fixed64 not a multiple of 8 bytes")
        return [int.from_bytes(data[i : i + 8], "little") for i in range(0, end, 8)]
    while pos < end:
        value, pos = read_varint(data, pos, end)
        out.append(_scalar(kind, value))
    return out


def decode(message: Message, buf: bytes | memoryview, _depth: int = 0) -> dict[str, Any]:
    """Decode ``buf`` as ``message``; absent optional fields are absent keys.

    Repeated fields are always lists (empty when absent).
    """
    if _depth > _MAX_DEPTH:
        raise WireError("messages nested too deeply")
    out: dict[str, Any] = {f.name: [] for f in message.fields.values() if f.repeated}
    for number, wire, raw in iter_fields(buf):
        spec = message.fields.get(number)
        if spec is None:
            continue
        value: Any
        if spec.kind in SCALAR_KINDS:
            if wire == LENGTH:
                if not spec.repeated:
                    raise WireError(f"{message.name}.{spec.name}: packed data in a scalar field")
                out[spec.name].extend(_packed(spec.kind, raw))
                continue
            if wire != _SCALAR_WIRE.get(spec.kind, VARINT):
                raise WireError(f"{message.name}.{spec.name}: wrong wire type {wire}")
            value = _scalar(spec.kind, raw)
        else:
            if wire != LENGTH:
                raise WireError(f"{message.name}.{spec.name}: wrong wire type {wire}")
            if spec.kind == "string":
                # like argv and unix socket names: bytes that are not UTF-8 read as \xNN,
                # so every string csi reports can be printed and put into JSON
                value = bytes(raw).decode("utf-8", errors="backslashreplace")
            elif spec.kind == "bytes":
                value = bytes(raw)
            else:
                assert spec.message is not None
                value = decode(spec.message, raw, _depth + 1)
        if spec.repeated:
            out[spec.name].append(value)
        else:
            out[spec.name] = value
    return out


# ---------------------------------------------------------------- encoding
# Only what csi needs to write CRIU images: rewriting pagemaps for the
# checkpointctl benchmark copy, and building test images.


def encode_varint(value: int) -> bytes:
    """Encode a non-negative int as a varint."""
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_field(number: int, value: int | bytes) -> bytes:
    """Encode one varint (int) or length-delimited (bytes) field."""
    if isinstance(value, int):
        return encode_varint(number << 3 | VARINT) + encode_varint(value)
    return encode_varint(number << 3 | LENGTH) + encode_varint(len(value)) + value
