"""The native backend against a real docker-registry: exact digests, documents, round trips."""

from __future__ import annotations

import filecmp
import gzip
import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zstandard

from forensics.archive import hashcache
from forensics.storage import CheckpointMeta, pull_archive, push_archive
from forensics.storage.annotations import CRIO_NAME, CSI_SHA256
from forensics.storage.base import (
    MEDIA_CONFIG,
    MEDIA_INDEX,
    MEDIA_LAYER,
    MEDIA_LAYER_ZSTD,
    MEDIA_MANIFEST,
    RegistryOptions,
)
from forensics.storage.errors import DigestMismatchError, ImageNotFoundError
from tests.capture.conftest import KUBELET, PLAIN, SMALL, ZSTD, sha256_file
from tests.capture.servers import Registry

WHEN = datetime(2026, 11, 22, 7, 10, 28, tzinfo=UTC)


def _manifests(reg: Registry, repo: str, tag: str) -> tuple[dict, dict, dict, str]:  # type: ignore[type-arg]
    raw, headers = reg.get(f"/v2/{repo}/manifests/{tag}", MEDIA_INDEX)
    index = json.loads(raw)
    entry = index["manifests"][0]
    raw_m, _ = reg.get(f"/v2/{repo}/manifests/{entry['digest']}", MEDIA_MANIFEST)
    manifest = json.loads(raw_m)
    config = json.loads(reg.get(f"/v2/{repo}/blobs/{manifest['config']['digest']}")[0])
    assert headers["Docker-Content-Digest"] == "sha256:" + hashlib.sha256(raw).hexdigest()
    return index, manifest, config, headers["Docker-Content-Digest"]


def test_push_layer_is_the_archive_and_documents_carry_the_annotations(
        registry: Registry, tmp_path: Path) -> None:
    sha = sha256_file(KUBELET)
    result = push_archive(KUBELET, f"{registry.host}/evidence/payments:api-1", options=PLAIN,
                          captured_at=WHEN, alert_rule="Terminal shell in container",
                          node="node-7")
    assert result.archive_sha256 == sha
    assert result.size == os.path.getsize(KUBELET)
    assert result.uploaded_bytes == result.size
    assert result.target == f"{registry.host}/evidence/payments:api-1"
    assert result.pinned == f"{registry.host}/evidence/payments@{result.digest}"

    index, manifest, config, tag_digest = _manifests(registry, "evidence/payments", "api-1")
    assert tag_digest == result.digest
    assert index["mediaType"] == MEDIA_INDEX
    assert index["manifests"][0]["digest"] == result.manifest_digest
    assert index["manifests"][0]["platform"] == {"architecture": "amd64", "os": "linux"}
    assert manifest["layers"] == [{"mediaType": MEDIA_LAYER, "digest": f"sha256:{sha}",
                                   "size": os.path.getsize(KUBELET)}]
    assert manifest["config"]["mediaType"] == MEDIA_CONFIG
    assert config["rootfs"] == {"type": "layers", "diff_ids": [f"sha256:{sha}"]}
    assert (config["architecture"], config["os"]) == ("amd64", "linux")
    expected = {
        CRIO_NAME: "api",
        "org.criu.checkpoint.container.name": "api",
        "org.criu.checkpoint.container.id":
            "43de4c406b228af0d9a23174bc2ef7ec5f411cc049624ceda61bf628be279c14",
        "org.criu.checkpoint.engine.name": "podman",
        "org.criu.checkpoint.pod.name": "payments-api-5b8f7c9d8-qq7lm",
        "org.criu.checkpoint.pod.namespace": "payments",
        "org.criu.checkpoint.pod.id": "0b5e1f9a-2c3d-4e5f-8a9b-1c2d3e4f5a6b",
        "org.criu.checkpoint.rootfsImageName": "localhost/shop-frontend:1.4.2",
        "org.criu.checkpoint.rootfsImageID":
            "9ca13e848a32699c025fe037ae395f8abf167bcdc0a8bbaa7af7ca61d13ebb44",
        "org.criu.checkpoint.rawImageName": "localhost/shop-frontend:1.4.2",
        "org.criu.checkpoint.runtime.name": "runc",
        "org.criu.checkpoint.host.arch": "amd64",
        "io.podman.annotations.checkpoint.name": "api",
        "io.podman.annotations.checkpoint.rawImageName": "localhost/shop-frontend:1.4.2",
        "io.podman.annotations.checkpoint.rootfsImageID":
            "9ca13e848a32699c025fe037ae395f8abf167bcdc0a8bbaa7af7ca61d13ebb44",
        "io.podman.annotations.checkpoint.rootfsImageName": "localhost/shop-frontend:1.4.2",
        "io.podman.annotations.checkpoint.runtime.name": "runc",
        "io.podman.annotations.checkpoint.host.arch": "amd64",
        "dev.csi.archive.sha256": sha,
        "dev.csi.archive.size": str(os.path.getsize(KUBELET)),
        "dev.csi.archive.compression": "none",
        "dev.csi.archive.filename": os.path.basename(KUBELET),
        "dev.csi.captured-at": "2026-11-22T07:10:28Z",
        "org.opencontainers.image.created": "2026-11-22T07:10:28Z",
        "dev.csi.container.name": "api",
        "dev.csi.container.id":
            "43de4c406b228af0d9a23174bc2ef7ec5f411cc049624ceda61bf628be279c14",
        "dev.csi.pod.name": "payments-api-5b8f7c9d8-qq7lm",
        "dev.csi.pod.namespace": "payments",
        "dev.csi.pod.uid": "0b5e1f9a-2c3d-4e5f-8a9b-1c2d3e4f5a6b",
        "dev.csi.node": "node-7",
        "dev.csi.engine": "Podman",
        "dev.csi.alert.rule": "Terminal shell in container",
    }
    assert manifest["annotations"] == expected
    assert index["annotations"] == expected  # containerd reads them from the index
    assert index["manifests"][0]["annotations"] == expected


def test_pull_by_tag_and_by_digest_is_byte_identical(registry: Registry, tmp_path: Path) -> None:
    result = push_archive(SMALL, f"{registry.host}/evidence/roundtrip:one", options=PLAIN)
    for ref in (f"{registry.host}/evidence/roundtrip:one", result.pinned):
        out = tmp_path / f"{len(ref)}.tar"
        pulled = pull_archive(ref, str(out), options=PLAIN)
        assert filecmp.cmp(out, SMALL, shallow=False)
        assert pulled.sha256 == sha256_file(SMALL) == result.archive_sha256
        assert pulled.verified_against_annotation and not pulled.reassembled
        assert pulled.digest == result.manifest_digest
        assert pulled.annotations[CSI_SHA256] == result.archive_sha256
        assert hashcache.lookup(os.stat(out)) == result.archive_sha256
        assert sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name) == []


def test_digest_unknown_is_computed_while_sending_in_chunks(registry: Registry,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    monkeypatch.setenv("CSI_NO_HASH_CACHE", "1")
    options = RegistryOptions(plain_http=True, chunk_size=64 << 10)
    result = push_archive(SMALL, f"{registry.host}/evidence/chunked:c", options=options)
    assert result.archive_sha256 == sha256_file(SMALL)
    data, _ = registry.get(f"/v2/evidence/chunked/blobs/sha256:{result.archive_sha256}")
    assert hashlib.sha256(data).hexdigest() == result.archive_sha256


def test_a_second_push_sends_nothing_again(registry: Registry) -> None:
    first = push_archive(SMALL, f"{registry.host}/evidence/again:a", options=PLAIN)
    second = push_archive(SMALL, f"{registry.host}/evidence/again:b", options=PLAIN,
                          sha256=first.archive_sha256)
    assert (first.uploaded_bytes, second.uploaded_bytes) == (first.size, 0)
    assert second.manifest_digest != "" and second.archive_sha256 == first.archive_sha256


def test_wrong_capture_digest_is_refused_and_nothing_is_tagged(registry: Registry,
                                                               archive_copy: Path) -> None:
    before = (sha256_file(archive_copy), os.stat(archive_copy).st_mtime_ns)
    with pytest.raises(DigestMismatchError, match="another sha256 than the one given"):
        push_archive(str(archive_copy), f"{registry.host}/evidence/wrong:x", options=PLAIN,
                     sha256="0" * 64, delete_source=True)
    assert (sha256_file(archive_copy), os.stat(archive_copy).st_mtime_ns) == before
    with pytest.raises(ImageNotFoundError):
        pull_archive(f"{registry.host}/evidence/wrong:x", "/nonexistent/out.tar",
                     options=PLAIN)


def test_zstd_archive_is_a_zstd_layer_with_the_tar_as_diff_id(registry: Registry,
                                                              tmp_path: Path) -> None:
    result = push_archive(ZSTD, f"{registry.host}/evidence/zstd:z", options=PLAIN)
    _, manifest, config, _ = _manifests(registry, "evidence/zstd", "z")
    with open(ZSTD, "rb") as f:
        tar_sha = hashlib.sha256(zstandard.ZstdDecompressor().stream_reader(f).read()) \
            .hexdigest()
    assert manifest["layers"][0]["mediaType"] == MEDIA_LAYER_ZSTD
    assert manifest["layers"][0]["digest"] == f"sha256:{sha256_file(ZSTD)}"
    assert config["rootfs"]["diff_ids"] == [f"sha256:{tar_sha}"]
    out = tmp_path / "back.tar.zst"
    pull_archive(result.pinned, str(out), options=PLAIN)
    assert filecmp.cmp(out, ZSTD, shallow=False)


def test_gzip_archive_round_trip(registry: Registry, tmp_path: Path) -> None:
    gz = tmp_path / "evidence.tar.gz"
    gz.write_bytes(gzip.compress(Path(SMALL).read_bytes(), mtime=0))
    result = push_archive(str(gz), f"{registry.host}/evidence/gzip:g", options=PLAIN)
    _, manifest, config, _ = _manifests(registry, "evidence/gzip", "g")
    assert manifest["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert config["rootfs"]["diff_ids"] == [f"sha256:{sha256_file(SMALL)}"]
    pull_archive(result.pinned, str(tmp_path / "back.gz"), options=PLAIN)
    assert filecmp.cmp(tmp_path / "back.gz", gz, shallow=False)


def test_meta_given_by_the_capturer_wins(registry: Registry) -> None:
    meta = CheckpointMeta(container="web", pod="shop-1", namespace="prod", pod_uid="u-1",
                          captured_at=WHEN)
    result = push_archive(SMALL, f"{registry.host}/evidence/meta", options=PLAIN, meta=meta)
    assert result.target == (f"{registry.host}/evidence/meta:web-20261122T071028Z-"
                             f"{result.archive_sha256[:12]}")
    _, manifest, _, _ = _manifests(registry, "evidence/meta", result.target.rsplit(":", 1)[1])
    assert manifest["annotations"]["org.criu.checkpoint.pod.name"] == "shop-1"
    assert manifest["annotations"]["dev.csi.pod.uid"] == "u-1"


def test_delete_source_only_after_a_verified_push(registry: Registry, archive_copy: Path,
                                                  tmp_path: Path) -> None:
    sha = sha256_file(archive_copy)
    result = push_archive(str(archive_copy), f"{registry.host}/evidence/moved:m",
                          options=PLAIN, delete_source=True)
    assert result.source_deleted and not archive_copy.exists()
    pulled = pull_archive(result.pinned, str(tmp_path / "back.tar"), options=PLAIN)
    assert pulled.sha256 == sha


def test_tampered_blob_is_refused_on_pull(own_registry: Registry, tmp_path: Path) -> None:
    result = push_archive(SMALL, f"{own_registry.host}/evidence/tamper:t", options=PLAIN)
    data = own_registry.blob_data_path(f"sha256:{result.archive_sha256}")
    raw = bytearray(data.read_bytes())
    raw[5000] ^= 0xFF
    data.write_bytes(bytes(raw))
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "out.tar"
    with pytest.raises(DigestMismatchError, match="do not match their digest"):
        pull_archive(result.pinned, str(out), options=PLAIN)
    assert sorted(p.name for p in out.parent.iterdir()) == []  # no file, no partial


def test_pull_refuses_to_overwrite(registry: Registry, tmp_path: Path) -> None:
    result = push_archive(SMALL, f"{registry.host}/evidence/exists:e", options=PLAIN)
    out = tmp_path / "out.tar"
    out.write_text("keep me")
    from forensics.storage.errors import LocalStorageError

    with pytest.raises(LocalStorageError, match="already exists"):
        pull_archive(result.pinned, str(out), options=PLAIN)
    assert out.read_text() == "keep me"
