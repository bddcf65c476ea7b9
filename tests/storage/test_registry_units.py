"""Image references, annotations, the tar-split, the subprocess wrapper: exact values."""

from __future__ import annotations

import hashlib
import io
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from forensics.run import redacted_argv, run
from forensics.storage.annotations import CheckpointMeta, default_repository, default_tag
from forensics.storage.errors import BadReferenceError, RegistryError, ToolError
from forensics.storage.reference import ImageRef, LayoutRef, parse_target
from forensics.storage.tarsplit import SIDECAR_PATH, build, reassemble
from tests.capture.conftest import KUBELET, SMALL, sha256_file
from tests.conftest import ARCHIVES, archive_path


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:5000/evidence/pod:tag", ("127.0.0.1:5000", "evidence/pod", "tag", None)),
    ("localhost/a", ("localhost", "a", None, None)),
    ("registry.example/a/b/c", ("registry.example", "a/b/c", None, None)),
    ("busybox", ("docker.io", "library/busybox", None, None)),
    ("user/repo:v1.2", ("docker.io", "user/repo", "v1.2", None)),
    ("[::1]:5000/x@sha256:" + "a" * 64, ("[::1]:5000", "x", None, "sha256:" + "a" * 64)),
    ("reg.io:443/x:t@sha256:" + "b" * 64, ("reg.io:443", "x", "t", "sha256:" + "b" * 64)),
])
def test_references(text: str, expected: tuple[str, str, str | None, str | None]) -> None:
    ref = ImageRef.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == expected
    assert ImageRef.parse(str(ref)) == ref


@pytest.mark.parametrize("text", ["", "Upper/Case", "host:5000/a//b", "a b", "x:bad tag",
                                  "x@sha256:short", "host/-lead", "host/" + "a" * 256])
def test_bad_references(text: str) -> None:
    with pytest.raises(BadReferenceError, match="bad image reference"):
        ImageRef.parse(text)


def test_layout_references() -> None:
    assert parse_target("oci:/var/csi/oci:checkpoints/ns/pod:tag") == LayoutRef(
        "/var/csi/oci", "checkpoints/ns/pod:tag")
    assert parse_target("oci:rel/dir") == LayoutRef("rel/dir", None)
    assert ImageRef.parse("h.io/a:b").api_host == "h.io"
    assert ImageRef.parse("a").api_host == "registry-1.docker.io"


def test_meta_from_real_archives_and_defaults() -> None:
    meta = CheckpointMeta.from_archive(KUBELET)
    assert (meta.container, meta.pod, meta.namespace, meta.pod_uid, meta.engine,
            meta.runtime, meta.platform.architecture) == (
        "api", "payments-api-5b8f7c9d8-qq7lm", "payments",
        "0b5e1f9a-2c3d-4e5f-8a9b-1c2d3e4f5a6b", "Podman", "runc", "amd64")
    when = datetime(2026, 11, 22, 7, 10, 28, tzinfo=UTC)
    meta = meta.with_capture(captured_at=when)
    assert default_tag(meta, "ab" * 32) == "api-20261122T071028Z-abababababab"
    assert default_repository(meta) == "checkpoints/payments/payments-api-5b8f7c9d8-qq7lm"
    assert default_repository(CheckpointMeta(container="Web_1")) == "checkpoints/web_1"


@pytest.mark.parametrize("name", [a for a in ARCHIVES if a.endswith(".tar")])
def test_tarsplit_rebuilds_every_real_archive_from_a_retar(name: str, tmp_path: Path) -> None:
    path = archive_path(name)
    sha = sha256_file(path)
    side = build(path, sha)
    layer = tmp_path / "layer.tar"
    with tarfile.open(path) as src, tarfile.open(layer, "w", format=tarfile.GNU_FORMAT) as dst:
        for info in sorted(src.getmembers(), key=lambda m: m.name, reverse=True):
            info.uname = info.gname = ""
            dst.addfile(info, src.extractfile(info) if info.isreg() else None)
        extra = tarfile.TarInfo(SIDECAR_PATH)
        extra.size = len(side)
        dst.addfile(extra, io.BytesIO(side))
    out = hashlib.sha256()
    doc = reassemble(str(layer), out.update)
    assert out.hexdigest() == sha == doc["sha256"]


def test_tarsplit_refuses_a_layer_without_sidecar(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="carries no tar-split sidecar"):
        reassemble(SMALL, lambda _: None)


def test_run_redacts_and_reports() -> None:
    assert redacted_argv(["buildah", "push", "--creds=u:p4ss", "--creds", "u:p4ss", "x"],
                         ["p4ss"]) == ["buildah", "push", "--creds=***", "--creds", "***", "x"]
    with pytest.raises(ToolError) as info:
        run(["sh", "-c", "echo 'token hunter2 rejected' >&2; exit 3"], secrets=["hunter2"])
    assert str(info.value) == "sh -c echo 'token *** rejected' >&2; exit 3: exit status 3: " \
        "token *** rejected"
    with pytest.raises(ToolError, match="is not installed"):
        run(["csi-no-such-tool-xyz"])
    with pytest.raises(ToolError, match=r"timed out after 0\.2 s") as slow:
        run(["sleep", "5"], timeout=0.2)
    assert slow.value.permanent is False
