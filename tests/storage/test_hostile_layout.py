"""Issue 11 item 11, local side: an OCI layout directory (``oci:DIR``) is not trusted either.

A layout handed over for analysis can name blobs by any "digest"; a digest
is a file name there, so ``sha256:../../../../dev/zero`` would be read
forever. Digests are checked, manifests read up to 4 MiB, layers copied no
further than their size.
"""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import pytest

from forensics.storage.api import pull_archive, push_archive
from forensics.storage.errors import RegistryError
from tests.capture.conftest import KUBELET


def layout(tmp_path: Path) -> Path:
    root = tmp_path / "layout"
    push_archive(KUBELET, f"oci:{root}:evidence")
    return root


def test_layout_digest_naming_dev_zero_is_refused(tmp_path: Path) -> None:
    root = layout(tmp_path)
    index = json.loads((root / "index.json").read_text())
    index["manifests"][0]["digest"] = "sha256:../../../../../../../../dev/zero"
    (root / "index.json").write_text(json.dumps(index))
    (tmp_path / "out").mkdir()
    tracemalloc.start()
    try:
        with pytest.raises(RegistryError) as caught:
            pull_archive(f"oci:{root}:evidence", str(tmp_path / "out" / "a.tar"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(caught.value) == (f"{root}: manifest: the descriptor's digest "
                                 "'sha256:../../../../../../../../dev/zero' is not a sha256 "
                                 "digest (the image is malformed or the registry is hostile; "
                                 "nothing was downloaded)")
    assert peak < 8 << 20
    assert os.listdir(tmp_path / "out") == []


def test_layout_manifest_blob_of_gigabytes_is_not_read(tmp_path: Path) -> None:
    root = layout(tmp_path)
    index = json.loads((root / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    blob = root / "blobs" / "sha256" / digest.removeprefix("sha256:")
    blob.unlink()
    with open(blob, "wb") as f:
        f.truncate(1 << 30)  # sparse
    tracemalloc.start()
    try:
        with pytest.raises(RegistryError) as caught:
            pull_archive(f"oci:{root}:evidence", str(tmp_path / "a.tar"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(caught.value) == (f"{root}: blob {digest} is larger than 4194304 bytes (a "
                                 "manifest is not; the layout is damaged or hostile)")
    assert peak < 8 << 20


def test_layout_layer_longer_than_its_size_is_not_copied_past_it(tmp_path: Path) -> None:
    root = layout(tmp_path)
    layer = next(p for p in (root / "blobs" / "sha256").iterdir()
                 if p.stat().st_size == os.path.getsize(KUBELET))
    with open(layer, "r+b") as f:
        f.truncate(1 << 30)  # sparse gigabyte after the real bytes
    (tmp_path / "out").mkdir()
    with pytest.raises(RegistryError) as caught:
        pull_archive(f"oci:{root}:evidence", str(tmp_path / "out" / "a.tar"))
    size = os.path.getsize(KUBELET)
    assert str(caught.value).startswith(f"layer sha256:{layer.name}: the bytes received do not "
                                        "match their digest: ")
    assert f"({size + 1} bytes)" in str(caught.value)
    assert os.listdir(tmp_path / "out") == []


@pytest.mark.parametrize(("doc", "message"), [
    (b"[" * 200_000, "x: not valid JSON"),
    (b'{"manifests": [{"platform": "linux", "digest": 1}]}', None),
])
def test_hostile_manifest_json_is_one_line(doc: bytes, message: str | None) -> None:
    from forensics.storage import oci

    if message is not None:
        with pytest.raises(RegistryError) as caught:
            oci.parse_json(doc, "x")
        assert str(caught.value) == message
    else:
        assert oci.pick_manifest(oci.parse_json(doc, "x"), "x") == {"platform": "linux",
                                                                      "digest": 1}


@pytest.mark.parametrize("text", ["9" * 5000, "\u00b2", "-1", "1e9"])
def test_hostile_size_annotation_is_ignored(text: str) -> None:
    from forensics.storage import oci
    from forensics.storage.annotations import CSI_SIZE

    assert oci.expected_size({CSI_SIZE: text}) is None
