"""Issue 11 item 11: the tar-split sidecar comes from the registry and is bounded too.

A buildah image's layer carries a gzip'd JSON sidecar that says how to
rebuild the archive. A hostile image can make it a gzip bomb, describe a
terabyte of padding, or name one member many times; csi refuses each with
one line, in bounded memory, writing no more than it may.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import pytest

from forensics.storage import tarsplit
from forensics.storage.errors import RegistryError
from forensics.storage.tarsplit import SIDECAR_PATH, reassemble


def layer_with(tmp_path: Path, sidecar: bytes, content: bytes = b"x" * 1000) -> Path:
    """A plain tar layer holding one member ``data`` and the given sidecar bytes."""
    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in (("data", content), (SIDECAR_PATH, sidecar)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return layer


def sidecar(**changes: Any) -> bytes:
    header = tarfile.TarInfo("data")
    header.size = 1000
    doc = {"version": 1, "sha256": "0" * 64, "size": 2560, "trailer": 1024,
           "entries": [{"name": "data", "header": base64.b64encode(header.tobuf()).decode(),
                        "size": 1000, "gap": 24}], **changes}
    return gzip.compress(json.dumps(doc).encode())


def rebuild(layer: Path, limit: int | None = None) -> tuple[str, int]:
    """(the error, tracemalloc peak) of rebuilding ``layer``."""
    tracemalloc.start()
    try:
        with pytest.raises(RegistryError) as caught:
            reassemble(str(layer), lambda _: None, limit)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return str(caught.value), peak


def test_sidecar_that_rebuilds_honestly_still_works(tmp_path: Path) -> None:
    out = bytearray()
    reassemble(str(layer_with(tmp_path, sidecar())), out.extend, 2560)
    assert len(out) == 2560 and out[512:1512] == b"x" * 1000


def test_sidecar_trailer_of_a_terabyte_is_refused(tmp_path: Path) -> None:
    error, peak = rebuild(layer_with(tmp_path, sidecar(trailer=10**12)))
    assert error == ("the image's tar-split sidecar is malformed: ValueError: a padding of "
                     "'1000000000000' bytes (nothing was kept)")
    assert peak < 8 << 20


def test_sidecar_negative_gap_is_refused(tmp_path: Path) -> None:
    doc = json.loads(gzip.decompress(sidecar()))
    doc["entries"][0]["gap"] = -5
    error, _ = rebuild(layer_with(tmp_path, gzip.compress(json.dumps(doc).encode())))
    assert error == ("the image's tar-split sidecar is malformed: ValueError: a padding of "
                     "'-5' bytes (nothing was kept)")


def test_sidecar_naming_one_member_many_times_stops_at_the_limit(tmp_path: Path) -> None:
    doc = json.loads(gzip.decompress(sidecar()))
    doc["entries"] = doc["entries"] * 100_000  # 100 MB of output from a 1 KB member
    written: list[int] = []
    layer = layer_with(tmp_path, gzip.compress(json.dumps(doc).encode()))
    with pytest.raises(RegistryError) as caught:
        reassemble(str(layer), lambda data: written.append(len(data)), 4 << 20)
    assert str(caught.value) == ("cannot rebuild the archive: it would exceed 4194304 bytes "
                                 "(the image's tar-split sidecar is malformed or hostile; "
                                 "nothing was kept)")
    assert sum(written) <= 4 << 20


def test_sidecar_gzip_bomb_is_cut_at_the_json_limit(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tarsplit, "MAX_SIDECAR_JSON", 1 << 20)  # not 512 MiB in a test
    pack = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = pack.compress(b'{"version": 1, "x": "') + b"".join(
        pack.compress(b" " * (1 << 20)) for _ in range(64)) + pack.flush()
    assert len(bomb) < 128 << 10
    error, peak = rebuild(layer_with(tmp_path, bomb))
    assert error == ("the image's tar-split sidecar is unreadable: it expands to more than "
                     "1048576 bytes")
    assert peak < 8 << 20


def test_sidecar_larger_than_64_mib_is_not_read(tmp_path: Path) -> None:
    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo(SIDECAR_PATH)
        info.size = 65 << 20
        tar.addfile(info, io.BytesIO(bytes(65 << 20)))
    error, peak = rebuild(layer)
    assert error == (f"the image's tar-split sidecar is {65 << 20} bytes, more than "
                     f"{64 << 20} (nothing was kept)")
    assert peak < 8 << 20


@pytest.mark.parametrize("entries", [[{"name": "data"}], ["text"], [{"name": "data",
                                     "header": "!!", "size": 1000}]])
def test_sidecar_with_malformed_entries_is_one_line(entries: list[Any], tmp_path: Path) -> None:
    error, _ = rebuild(layer_with(tmp_path, sidecar(entries=entries)))
    assert error.startswith("the image's tar-split sidecar is malformed: ")
    assert error.endswith(" (nothing was kept)")
