"""The buildah backend (real buildah + skopeo) and cross-backend round trips."""

from __future__ import annotations

import filecmp
import json
import subprocess
from pathlib import Path

import pytest

from forensics.storage import pull_archive, push_archive
from forensics.storage.annotations import CSI_TARSPLIT, CheckpointMeta
from forensics.storage.base import MEDIA_INDEX, MEDIA_MANIFEST
from forensics.storage.errors import RegistryError
from forensics.storage.tarsplit import SIDECAR_PATH
from tests.capture.conftest import KUBELET, PLAIN, ZSTD, need, sha256_file
from tests.capture.servers import Registry


@pytest.fixture(autouse=True)
def tools() -> None:
    need("buildah")
    need("skopeo")


def _remote(reg: Registry, repo: str, tag: str) -> tuple[dict, dict]:  # type: ignore[type-arg]
    index = json.loads(reg.get(f"/v2/{repo}/manifests/{tag}", MEDIA_INDEX)[0])
    manifest = json.loads(reg.get(f"/v2/{repo}/manifests/{index['manifests'][0]['digest']}",
                                  MEDIA_MANIFEST)[0])
    return index, manifest


def test_buildah_push_pulls_back_byte_identical_through_both_backends(
        registry: Registry, tmp_path: Path) -> None:
    sha = sha256_file(KUBELET)
    result = push_archive(KUBELET, f"{registry.host}/evidence/bud:b", options=PLAIN,
                          backend="buildah", alert_rule="Drop and execute new binary")
    assert result.backend == "buildah" and result.archive_sha256 == sha
    index, manifest = _remote(registry, "evidence/bud", "b")
    assert index["mediaType"] == MEDIA_INDEX
    assert result.digest.startswith("sha256:") and index["manifests"][0]["digest"] == \
        result.manifest_digest
    # buildah add extracts and commit re-tars: the layer is not the archive ...
    assert manifest["layers"][0]["digest"] != f"sha256:{sha}"
    # (buildah 1.28 gzips layers pushed to a registry even with --disable-compression)
    assert manifest["layers"][0]["mediaType"] in (
        "application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip")
    notes = manifest["annotations"]
    assert notes["dev.csi.archive.sha256"] == sha
    assert notes[CSI_TARSPLIT] == SIDECAR_PATH
    assert notes["io.kubernetes.cri-o.annotations.checkpoint.name"] == "api"
    assert notes["org.criu.checkpoint.pod.namespace"] == "payments"
    assert notes["io.podman.annotations.checkpoint.name"] == "api"
    assert notes["dev.csi.alert.rule"] == "Drop and execute new binary"
    # ... containerd finds the annotations in the index entry
    buildah_own = {"org.opencontainers.image.base.digest": "",
                   "org.opencontainers.image.base.name": ""}
    assert {**index["manifests"][0]["annotations"], **buildah_own} == notes
    # ... and both backends rebuild the archive byte for byte from the tar-split
    for backend in ("native", "buildah"):
        out = tmp_path / f"{backend}.tar"
        pulled = pull_archive(result.pinned, str(out), options=PLAIN, backend=backend)
        assert filecmp.cmp(out, KUBELET, shallow=False), backend
        assert (pulled.sha256, pulled.reassembled, pulled.verified_against_annotation) == \
            (sha, True, True)


def test_native_push_pulls_back_byte_identical_through_buildah_backend(
        registry: Registry, tmp_path: Path) -> None:
    result = push_archive(KUBELET, f"{registry.host}/evidence/nat:n", options=PLAIN)
    out = tmp_path / "out.tar"
    pulled = pull_archive(result.pinned, str(out), options=PLAIN, backend="buildah")
    assert filecmp.cmp(out, KUBELET, shallow=False)
    assert (pulled.sha256, pulled.reassembled) == (sha256_file(KUBELET), False)
    assert pulled.annotations["org.criu.checkpoint.container.name"] == "api"


def test_skopeo_reads_the_pushed_index(registry: Registry) -> None:
    result = push_archive(KUBELET, f"{registry.host}/evidence/sk:s", options=PLAIN)
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                          f"docker://{registry.host}/evidence/sk:s"], capture_output=True,
                         check=True).stdout
    import hashlib

    assert "sha256:" + hashlib.sha256(raw).hexdigest() == result.digest
    cfg = json.loads(subprocess.run(
        ["skopeo", "inspect", "--config", "--tls-verify=false",
         f"docker://{registry.host}/evidence/sk:s"], capture_output=True, check=True).stdout)
    assert cfg["rootfs"]["diff_ids"] == [f"sha256:{result.archive_sha256}"]


def test_buildah_refuses_compressed_archives_clearly(registry: Registry) -> None:
    with pytest.raises(RegistryError, match="cannot be kept byte-identical through buildah"):
        push_archive(ZSTD, f"{registry.host}/evidence/z:z", options=PLAIN, backend="buildah",
                     meta=CheckpointMeta(container="c"))


def test_buildah_push_to_a_dead_registry_is_one_clear_error(tmp_path: Path) -> None:
    from tests.capture.servers import free_port

    with pytest.raises(RegistryError) as info:
        push_archive(KUBELET, f"127.0.0.1:{free_port()}/evidence/dead:d", options=PLAIN,
                     backend="buildah", meta=CheckpointMeta(container="c"))
    assert info.value.permanent is False
    assert "the archive is untouched at" in str(info.value)
    assert "\n" not in str(info.value)


def test_buildah_delete_source_after_a_verifying_pull(registry: Registry, archive_copy: Path,
                                                      tmp_path: Path) -> None:
    sha = sha256_file(archive_copy)
    result = push_archive(str(archive_copy), f"{registry.host}/evidence/bud-del:d",
                          options=PLAIN, backend="buildah", delete_source=True)
    assert result.source_deleted and not archive_copy.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".csi")) == []
    pulled = pull_archive(result.pinned, str(tmp_path / "back.tar"), options=PLAIN)
    assert pulled.sha256 == sha and pulled.reassembled
