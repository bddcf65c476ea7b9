"""The embedded default: an OCI image layout under CSI_HOME, readable by skopeo."""

from __future__ import annotations

import filecmp
import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from forensics.storage import pull_archive, push_archive
from forensics.storage.annotations import CSI_SHA256
from forensics.storage.base import MEDIA_LAYER, MEDIA_MANIFEST, REF_NAME
from forensics.storage.errors import ImageNotFoundError
from tests.capture.conftest import KUBELET, SMALL, need, sha256_file


def test_no_registry_configured_pushes_to_the_layout_in_csi_home(private_home: Path,
                                                                 tmp_path: Path) -> None:
    sha = sha256_file(KUBELET)
    result = push_archive(KUBELET)
    root = private_home / "oci"
    name = result.target.split(":", 2)[2]
    assert result.target == f"oci:{root}:{name}"
    assert name.startswith("checkpoints/payments/payments-api-5b8f7c9d8-qq7lm:api-")
    assert name.endswith(f"-{sha[:12]}")
    assert json.loads((root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((root / "index.json").read_text())
    [entry] = index["manifests"]
    assert entry["mediaType"] == MEDIA_MANIFEST and entry["digest"] == result.manifest_digest
    assert entry["annotations"][REF_NAME] == name
    assert entry["annotations"][CSI_SHA256] == sha
    assert filecmp.cmp(root / "blobs/sha256" / sha, KUBELET, shallow=False)
    manifest = json.loads((root / "blobs/sha256" / result.manifest_digest[7:]).read_bytes())
    assert manifest["layers"][0] == {"mediaType": MEDIA_LAYER, "digest": f"sha256:{sha}",
                                     "size": Path(KUBELET).stat().st_size}
    out = tmp_path / "back.tar"
    pulled = pull_archive(result.target, str(out))
    assert filecmp.cmp(out, KUBELET, shallow=False) and pulled.sha256 == sha


def test_same_name_replaces_the_entry(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    push_archive(SMALL, f"oci:{layout}:evidence:one")
    push_archive(KUBELET, f"oci:{layout}:evidence:one")
    push_archive(SMALL, f"oci:{layout}:evidence:two")
    index = json.loads((layout / "index.json").read_text())
    names = {e["annotations"][REF_NAME]: e["annotations"][CSI_SHA256] for e in index["manifests"]}
    assert names == {"evidence:one": sha256_file(KUBELET), "evidence:two": sha256_file(SMALL)}
    with pytest.raises(ImageNotFoundError, match="several images"):
        pull_archive(f"oci:{layout}", str(tmp_path / "x.tar"))


def test_skopeo_reads_the_layout(tmp_path: Path) -> None:
    need("skopeo")
    layout = tmp_path / "layout"
    result = push_archive(KUBELET, f"oci:{layout}:evidence/payments:api")
    ref = f"oci:{layout}:evidence/payments:api"
    raw = subprocess.run(["skopeo", "inspect", "--raw", ref], capture_output=True,
                         check=True).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == result.manifest_digest
    copy = tmp_path / "copy"
    subprocess.run(["skopeo", "copy", "-q", ref, f"dir:{copy}"], check=True)
    assert filecmp.cmp(copy / result.archive_sha256, KUBELET, shallow=False)
    info = json.loads(subprocess.run(["skopeo", "inspect", ref], capture_output=True,
                                     check=True).stdout)
    assert info["Layers"] == [f"sha256:{result.archive_sha256}"]
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"


def test_layout_push_to_registry_via_skopeo_then_native_pull(registry: object,
                                                              tmp_path: Path) -> None:
    """An image made in the layout can be shipped by skopeo and still pulls identical."""
    need("skopeo")
    from forensics.storage import RegistryOptions
    from tests.capture.servers import Registry

    assert isinstance(registry, Registry)
    layout = tmp_path / "layout"
    push_archive(SMALL, f"oci:{layout}:ev:1")
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:ev:1",
                    f"docker://{registry.host}/evidence/fromlayout:1"], check=True)
    out = tmp_path / "out.tar"
    pulled = pull_archive(f"{registry.host}/evidence/fromlayout:1", str(out),
                          options=RegistryOptions(plain_http=True))
    assert filecmp.cmp(out, SMALL, shallow=False)
    assert pulled.verified_against_annotation
