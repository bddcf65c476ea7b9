"""Fuzzing: mutated real CRIU images and archives never crash csi.

The seeds are the real images of every fixture archive (pstree, core, mm,
pagemap, files, fdinfo, fs, ids, inventory, remap-fpath, tcp-stream,
stats-dump). Mutations: bit flips, byte replacements, truncation, inserted
random bytes, duplicated chunks, over-long varints, and forged entry size
prefixes. Every decoder path csi uses runs on the result; only
:class:`~forensics.errors.CriuImageError` may escape the image decoders, and
:class:`~forensics.archive.criu.wire.WireError` the bare wire decoder.

``CSI_FUZZ_EXAMPLES`` (default 10,000: the number CI runs) sets how many
mutated images the decoder test throws, ``CSI_FUZZ_ARCHIVE_EXAMPLES``
(default 300) how many whole archives.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import struct
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forensics.archive.checkpoint import Checkpoint
from forensics.archive.criu import messages as m
from forensics.archive.criu.image import decode_entries, decode_prefix, entries
from forensics.archive.criu.wire import (
    FIXED32,
    FIXED64,
    LENGTH,
    VARINT,
    Message,
    WireError,
    decode,
    encode_field,
    encode_varint,
    iter_fields,
)
from forensics.archive.memory import Pagemap, ProcessMemory, parse_pagemap
from forensics.archive.processes import describe_file, make_socket
from forensics.archive.source import ArchiveSource, Member
from forensics.errors import CriuImageError, CsiError
from forensics.views.checkpoint_json import Sections, inspect_dict
from tests.conftest import ARCHIVES, LISTENER, PAYMENTS, archive_path

EXAMPLES = int(os.environ.get("CSI_FUZZ_EXAMPLES", "10000"))
ARCHIVE_EXAMPLES = int(os.environ.get("CSI_FUZZ_ARCHIVE_EXAMPLES", "300"))

# image file name -> (kind, message), as csi reads them
_IMAGES: tuple[tuple[re.Pattern[str], str, Message], ...] = tuple(
    (re.compile(pattern), kind, message)
    for pattern, kind, message in (
        (r"checkpoint/pstree\.img", "pstree", m.PSTREE),
        (r"checkpoint/core-\d+\.img", "core", m.CORE),
        (r"checkpoint/mm-\d+\.img", "mm", m.MM),
        (r"checkpoint/pagemap-\d+\.img", "pagemap", m.PAGEMAP_ENTRY),
        (r"checkpoint/files\.img", "files", m.FILE),
        (r"checkpoint/fdinfo-\d+\.img", "fdinfo", m.FDINFO),
        (r"checkpoint/fs-\d+\.img", "fs", m.FS),
        (r"checkpoint/ids-\d+\.img", "ids", m.TASK_KOBJ_IDS),
        (r"checkpoint/creds-\d+\.img", "creds", m.CREDS),
        (r"checkpoint/inventory\.img", "inventory", m.INVENTORY),
        (r"checkpoint/remap-fpath\.img", "remap-fpath", m.REMAP_FPATH),
        (r"checkpoint/tcp-stream-[0-9a-f]+\.img", "tcp-stream", m.TCP_STREAM),
        (r"checkpoint/reg-files\.img", "reg-files", m.REG_FILE),
        (r"checkpoint/inetsk\.img", "inetsk", m.INET_SK),
        (r"checkpoint/unixsk\.img", "unixsk", m.UNIX_SK),
        (r"checkpoint/pipes\.img", "pipes", m.PIPE),
        (r"stats-dump", "stats", m.STATS),
    )
)
ALL_MESSAGES: tuple[Message, ...] = tuple(
    v for v in vars(m).values() if isinstance(v, Message)
)
_LEGACY_FILES = {"reg-files": (1, "reg"), "inetsk": (4, "isk"), "unixsk": (5, "usk"),
                 "pipes": (2, "pipe")}  # CRIU < 3.x: file entries by type, as csi wraps them
SIZE_PREFIXES = (0, 1, 0x7F, 0x80, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFF0, 0xFFFFFFFF)


@dataclass(frozen=True)
class Image:
    name: str
    kind: str
    message: Message
    data: bytes


def _kind_of(name: str) -> tuple[str, Message] | None:
    for pattern, kind, message in _IMAGES:
        if pattern.fullmatch(name):
            return kind, message
    return None


@cache
def real_images() -> tuple[Image, ...]:
    """Every decodable image of every fixture archive, each distinct one once."""
    found: dict[tuple[str, bytes], Image] = {}
    for archive in ARCHIVES:
        with ArchiveSource(archive_path(archive), hash_cache=False) as source:
            for name in sorted(source.members):
                known = _kind_of(name)
                if known is not None:
                    data = source.read(name)
                    found.setdefault((known[0], data), Image(name, *known, data))
    return tuple(found.values())


def test_the_seeds_cover_every_image_kind_csi_reads() -> None:
    kinds = {i.kind for i in real_images()}
    assert kinds >= {"pstree", "core", "mm", "pagemap", "files", "fdinfo", "fs", "ids",
                     "inventory", "remap-fpath", "tcp-stream", "stats"}
    for image in real_images():  # and each decodes as csi reads it
        if image.kind == "tcp-stream":  # one entry, then the queued bytes
            _, payload = next(entries(image.name, image.data, image.kind))
            decode(image.message, payload)
        else:
            decode_entries(image.name, image.data, image.kind, image.message)


# ---------------------------------------------------------------- mutations


def _size_prefix_offsets(data: bytes | bytearray) -> list[int]:
    """Where the entry size prefixes of an image are, read leniently (after mutations)."""
    pos = 8 if data[:4] in (struct.pack("<I", m.IMG_COMMON_MAGIC),
                            struct.pack("<I", m.IMG_SERVICE_MAGIC)) else 4
    out: list[int] = []
    while pos + 4 <= len(data) and len(out) < 64:
        out.append(pos)
        pos += 4 + struct.unpack_from("<I", data, pos)[0]
    return out


OPS = ("flip", "byte", "truncate", "insert", "duplicate", "varint", "size", "size",
       "field", "field", "fields", "fields")
BIG_VALUES = (0, 1, 0x7FFFFFFF, 1 << 31, (1 << 32) - 1, 1 << 32, (1 << 32) + 1, 1 << 63,
              (1 << 64) - 1)


def mutate(seed: bytes, ops: list[str], rng: random.Random) -> bytes:
    """``seed`` after the mutations ``ops``, their places and values drawn from ``rng``.

    Hypothesis draws the ops and the Random's seed (cheap: a few draws per example,
    so 10,000 examples fit in CI); the Random does the many small choices.
    """
    data = bytearray(seed)
    for op in ops:
        at = rng.randrange(len(data) + 1)
        if op == "flip" and at < len(data):
            data[at] ^= 1 << rng.randrange(8)
        elif op == "byte" and at < len(data):
            data[at] = rng.choice((0x00, 0x01, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = rng.randbytes(rng.randint(1, 32))
        elif op == "duplicate" and at < len(data):
            chunk = data[at : at + rng.randint(1, 64)]
            where = rng.randrange(len(data) + 1)
            data[where:where] = chunk * rng.randint(1, 3)
        elif op == "varint":
            data[at:at] = b"\xff" * rng.randint(1, 12) + b"\x01"
        elif op == "size" and (offsets := _size_prefix_offsets(data)):
            at = rng.choice(offsets)
            remaining = len(data) - at - 4
            size = rng.choice((*SIZE_PREFIXES, max(0, remaining - 1), remaining, remaining + 1,
                               rng.getrandbits(32)))
            data[at : at + 4] = struct.pack("<I", size)
        elif op in ("field", "fields") and (offsets := _size_prefix_offsets(data)):
            # one entry's fields, or every entry's: last first, so offsets stay right
            for at in sorted([rng.choice(offsets)] if op == "field" else offsets, reverse=True):
                length = struct.unpack_from("<I", data, at)[0]
                if at + 4 + length <= len(data):
                    body = _mutate_fields(rng, bytes(data[at + 4 : at + 4 + length]))
                    data[at : at + 4 + length] = struct.pack("<I", len(body)) + body
    return bytes(data)


def _encode(number: int, wire: int, value: int | bytes | memoryview) -> bytes:
    if wire == VARINT:
        assert isinstance(value, int)
        return encode_field(number, value)
    if wire in (FIXED32, FIXED64):
        assert isinstance(value, int)
        return encode_varint(number << 3 | wire) + value.to_bytes(
            4 if wire == FIXED32 else 8, "little")
    assert not isinstance(value, int)
    return encode_field(number, bytes(value))


def _mutate_fields(rng: random.Random, payload: bytes, depth: int = 0) -> bytes:
    """Structure-aware: one protobuf field (maybe nested) given a hostile value, wire type
    or length, dropped or repeated; the payload stays well-framed around it."""
    try:
        fields = list(iter_fields(payload))
    except WireError:
        return payload
    if not fields:
        return payload
    chosen = rng.randrange(len(fields))  # that one, and maybe a few more
    out = []
    for i, (number, wire, value) in enumerate(fields):
        if i != chosen and rng.random() * len(fields) > 1:
            out.append(_encode(number, wire, value))
            continue
        how = rng.choice(("value", "value", "nested", "nested", "wire", "drop", "repeat"))
        if wire == LENGTH and depth < 3 and (how == "nested" or rng.random() < 0.5):
            out.append(encode_field(number, _mutate_fields(rng, bytes(value), depth + 1)))
        elif how in ("value", "nested") and wire == LENGTH:
            out.append(encode_field(number, rng.randbytes(rng.randint(0, 24))))
        elif how in ("value", "nested"):
            out.append(encode_field(number, rng.choice((*BIG_VALUES, rng.getrandbits(64)))))
        elif how == "wire":
            out.append(encode_field(number, 1 << 40) if wire == LENGTH
                       else encode_field(number, rng.randbytes(rng.randint(0, 12))))
        elif how == "repeat":
            out.append(_encode(number, wire, value) * rng.randint(2, 40))
        # "drop": nothing
    return b"".join(out)


MUTATIONS = st.tuples(st.lists(st.sampled_from(OPS), min_size=1, max_size=4),
                      st.integers(0, (1 << 64) - 1))


@st.composite
def mutated_images(draw: st.DrawFn) -> tuple[Image, bytes]:
    kind = draw(st.sampled_from(sorted({i.kind for i in real_images()})))  # kinds equally
    image = draw(st.sampled_from([i for i in real_images() if i.kind == kind]))
    ops, seed = draw(MUTATIONS)
    return image, mutate(image.data, ops, random.Random(seed))


# ---------------------------------------------------------------- the decoder property


@pytest.fixture(scope="module")
def listener() -> Iterator[ArchiveSource]:
    """A real pages file for the memory layer over fuzzed pagemaps."""
    with ArchiveSource(archive_path(LISTENER), hash_cache=False) as source:
        yield source


def decode_everything(image: Image, data: bytes, other: Message, pages: ArchiveSource) -> None:
    """Every decoder path csi has for this kind of image; CriuImageError is fine."""
    try:
        decoded = decode_entries(image.name, data, image.kind, image.message)
    except CriuImageError:
        decoded = []
    decode_prefix(image.name, data, image.kind, image.message)
    if image.kind == "files" or image.kind in _LEGACY_FILES:
        for entry in decoded:  # what csi makes of a file entry: a path, maybe a socket
            if image.kind in _LEGACY_FILES:
                ftype, key = _LEGACY_FILES[image.kind]
                entry = {"type": ftype, "id": entry.get("id", 0), key: entry}
            describe_file(entry)
            make_socket(3, entry)
    # the bare wire decoder on each payload (as its own message and as another) and on
    # the whole image: only WireError
    payloads: list[bytes] = []
    try:
        for _, view in entries(image.name, data, image.kind):
            payloads.append(bytes(view))
    except CriuImageError:
        pass
    for payload in [*payloads[:16], data]:
        for message in (image.message, other):
            with contextlib.suppress(WireError):
                decode(message, payload)
    if image.kind == "pagemap":
        try:
            pagemap = parse_pagemap(image.name, data)
        except CriuImageError:
            return
        use_memory(pages, pagemap)


def use_memory(source: ArchiveSource, pagemap: Pagemap) -> None:
    """The memory layer over a fuzzed pagemap and a real pages file: reads never fail."""
    pages: Member = source.members["checkpoint/pages-1.img"]
    memory = ProcessMemory(source, pages, pagemap, label="fuzz")
    assert memory.present_bytes <= pages.size
    for run in memory.runs[:8]:
        memory.read_strings(run.vaddr, run.vaddr + min(run.size, 4096))
        memory.read(max(0, run.vaddr - 100), 300)
        memory.read(run.end - 100, 300)
    assert sum(len(chunk) for _, chunk in memory.iter_chunks(1 << 16)) == memory.present_bytes


COUNT = {"decoder": 0, "archive": 0}


def test_mutated_images_never_crash_the_decoders(listener: ArchiveSource) -> None:
    """ONE property over every image kind, so CI's 10,000 examples are 10,000 images."""

    @settings(max_examples=EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.large_base_example])
    @given(mutated_images(), st.sampled_from(ALL_MESSAGES))
    def prop(case: tuple[Image, bytes], other: Message) -> None:
        image, data = case
        decode_everything(image, data, other, listener)
        COUNT["decoder"] += 1

    started = time.monotonic()
    COUNT["decoder"] = 0
    prop()
    elapsed = time.monotonic() - started
    assert COUNT["decoder"] >= EXAMPLES
    print(f"\n{COUNT['decoder']} mutated images decoded in {elapsed:.1f} s")


# ---------------------------------------------------------------- whole archives


@dataclass(frozen=True)
class Seed:
    members: tuple[tuple[tarfile.TarInfo, bytes | None], ...]
    tar: bytes

    @property
    def mutable(self) -> list[str]:
        """The members csi decodes: CRIU images, JSON, nested tars."""
        return [i.name for i, d in self.members
                if d is not None and (_kind_of(i.name) or i.name in _METADATA)]


_METADATA = {"config.dump", "spec.dump", "stats-dump", "rootfs-diff.tar",
             "devshm-checkpoint.tar", "deleted.files"}


@cache
def seed(archive: str) -> Seed:
    path = archive_path(archive)
    out = []
    with tarfile.open(path) as tar:
        for info in tar:
            f = tar.extractfile(info) if info.isfile() else None
            out.append((info, f.read() if f is not None else None))
    return Seed(tuple(out), Path(path).read_bytes())


def rebuild(members: tuple[tuple[tarfile.TarInfo, bytes | None], ...], name: str,
            data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, content in members:
            if info.name == name:
                content = data
            copy = tarfile.TarInfo(info.name)
            copy.type, copy.mode, copy.mtime, copy.linkname = (
                info.type, info.mode, info.mtime, info.linkname)
            copy.size = len(content) if content is not None else 0
            tar.addfile(copy, io.BytesIO(content) if content is not None else None)
    return buf.getvalue()


@st.composite
def mutated_archives(draw: st.DrawFn) -> bytes:
    """A fixture tar with one member's bytes mutated, or its own headers damaged."""
    base = seed(draw(st.sampled_from([LISTENER, LISTENER, LISTENER, PAYMENTS])))
    if draw(st.integers(0, 9)) == 0:  # the tar itself: a header or the length
        data = bytearray(base.tar)
        info, _ = draw(st.sampled_from(base.members))
        for _ in range(draw(st.integers(1, 3))):
            at = info.offset + draw(st.integers(0, 511))
            data[at] = draw(st.integers(0, 255))
        if draw(st.booleans()):
            del data[draw(st.integers(0, len(data))):]
        return bytes(data)
    name = draw(st.sampled_from(base.mutable))
    original = next(d for i, d in base.members if i.name == name)
    assert original is not None
    ops, rng_seed = draw(MUTATIONS)
    return rebuild(base.members, name, mutate(original, ops, random.Random(rng_seed)))


def test_mutated_archives_never_crash_inspect(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Open, inspect everything, dump as JSON: only CsiError may escape, and the JSON is
    valid UTF-8 (no lone surrogates from undecodable names)."""
    where = tmp_path_factory.mktemp("fuzz-archives") / "checkpoint.tar"

    @settings(max_examples=ARCHIVE_EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.large_base_example])
    @given(mutated_archives())
    def prop(tar: bytes) -> None:
        where.write_bytes(tar)
        try:
            with Checkpoint(str(where), hash_cache=False) as ckpt:
                row = inspect_dict(ckpt, Sections.everything())
        except CsiError:
            COUNT["archive"] += 1
            return
        json.dumps(row, ensure_ascii=False).encode("utf-8")
        assert all(isinstance(w, str) and w.startswith(str(where)) for w in row.get("warnings", []))
        COUNT["archive"] += 1

    started = time.monotonic()
    COUNT["archive"] = 0
    prop()
    assert COUNT["archive"] >= ARCHIVE_EXAMPLES
    print(f"\n{COUNT['archive']} mutated archives inspected in {time.monotonic() - started:.1f} s")
