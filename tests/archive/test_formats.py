"""Compression is sniffed from magic bytes; member names may carry ./ and colons."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import shutil
from pathlib import Path
from typing import Any

import pytest
import zstandard

from forensics.archive.checkpoint import Checkpoint
from forensics.archive.source import sniff_compression
from forensics.views.checkpoint_json import Sections, inspect_dict
from tests.archive_tools import rebuild_tar
from tests.conftest import CRIU41, PAYMENTS, archive_path, truth_for

COMPRESSORS = {
    "gzip": gzip.compress,
    "xz": lzma.compress,
    "bzip2": bz2.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}


def facts(path: str) -> dict[str, Any]:
    """Everything inspect reports, minus the archive block (which names the file)."""
    with Checkpoint(path) as ckpt:
        out = inspect_dict(ckpt, Sections.everything())
    out.pop("archive")
    return out


@pytest.fixture(scope="module")
def plain_facts() -> dict[str, Any]:
    return facts(archive_path(PAYMENTS))


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_every_compression_gives_the_same_facts(
    kind: str, tmp_path: Path, plain_facts: dict[str, Any]
) -> None:
    # a misleading name: the content decides, never the suffix
    target = tmp_path / "checkpoint-payments-api_payments-api-2026-11-22T07:10:28Z.tar"
    target.write_bytes(COMPRESSORS[kind](Path(archive_path(PAYMENTS)).read_bytes()))
    with Checkpoint(str(target)) as ckpt:
        assert ckpt.archive.compression == kind
        assert ckpt.archive.size == target.stat().st_size
        import hashlib

        assert ckpt.archive.sha256 == hashlib.sha256(target.read_bytes()).hexdigest()
    assert facts(str(target)) == plain_facts


def test_zstd_fixture_from_podman(tmp_path: Path) -> None:
    with Checkpoint(archive_path(CRIU41)) as ckpt:
        assert ckpt.archive.compression == "zstd"
        assert ckpt.archive.sha256 == truth_for(CRIU41)["sha256"]
        temp_tar = ckpt.source.tar_path
        assert Path(temp_tar).exists()
    assert not Path(temp_tar).exists(), "the decompressed copy is removed on close"


def test_dot_slash_member_names(tmp_path: Path, plain_facts: dict[str, Any]) -> None:
    target = tmp_path / "dotted.tar"
    rebuild_tar(archive_path(PAYMENTS), str(target), rename=lambda n: "./" + n)
    assert facts(str(target)) == plain_facts


def test_plain_copy_is_read_in_place(tmp_path: Path) -> None:
    copy = tmp_path / "copy.tar"
    shutil.copy(archive_path(PAYMENTS), copy)
    with Checkpoint(str(copy)) as ckpt:
        assert ckpt.source.tar_path == str(copy)  # no temporary copy for a plain tar
        assert ckpt.archive.compression == "none"


def test_sniffing() -> None:
    assert sniff_compression(b"\x1f\x8b\x08\x00") == "gzip"
    assert sniff_compression(b"\x28\xb5\x2f\xfd\x00") == "zstd"
    assert sniff_compression(b"\xfd7zXZ\x00\x00") == "xz"
    assert sniff_compression(b"BZh91AY") == "bzip2"
    assert sniff_compression(b"artifacts/\x00\x00") == "none"


def test_json_round_trip(plain_facts: dict[str, Any]) -> None:
    assert json.loads(json.dumps(plain_facts)) == plain_facts
