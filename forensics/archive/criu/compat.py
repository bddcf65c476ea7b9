"""Rewriting CRIU 4.2 pagemaps for readers that only know field 2.

CRIU 4.2 writes a pagemap entry's page count in ``nr_pages`` (field 5) and
leaves ``compat_nr_pages`` (field 2) at 0. go-criu and checkpointctl 1.3
read only field 2 and so see no memory at all. For comparisons with those
tools (the benchmarks) we make a *copy* of an archive whose pagemap entries
also carry the count in field 2. Evidence is never rewritten: the copy is a
new file.
"""

from __future__ import annotations

import io
import shutil
import struct
import tarfile

from forensics.archive.criu.image import entries
from forensics.archive.criu.wire import VARINT, encode_field, iter_fields

_U32 = struct.Struct("<I")


def pagemap_with_field2(name: str, data: bytes) -> bytes:
    """The same pagemap image with every entry's count (field 5) also in field 2."""
    out = bytearray()
    for index, (offset, payload) in enumerate(entries(name, data, "pagemap")):
        if index == 0:
            out += data[: offset - 4]  # the magics, untouched
        body = bytes(payload)
        fields = list(iter_fields(payload))
        count = next((v for n, w, v in fields if n == 5 and w == VARINT), None)
        if index > 0 and count is not None:
            body = encode_field(2, count) + b"".join(
                encode_field(n, v if w == VARINT else bytes(v)) for n, w, v in fields if n != 2
            )
        out += _U32.pack(len(body)) + body
    return bytes(out) if out else data


def copy_with_field2_pagemaps(src: str, dst: str) -> int:
    """Copy a plain checkpoint tar, rewriting its pagemaps; returns how many were rewritten."""
    rewritten = 0
    with tarfile.open(src, "r:") as tin, tarfile.open(dst, "w", format=tarfile.GNU_FORMAT) as tout:
        for info in tin:
            stream = tin.extractfile(info) if info.isfile() else None
            base = info.name.rsplit("/", 1)[-1]
            if stream is not None and base.startswith("pagemap-") and base.endswith(".img"):
                data = pagemap_with_field2(info.name, stream.read())
                info.size = len(data)
                tout.addfile(info, io.BytesIO(data))
                rewritten += 1
            elif stream is not None:
                tout.addfile(info, stream)
            else:
                tout.addfile(info)
    shutil.copystat(src, dst)
    return rewritten
