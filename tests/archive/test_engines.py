"""Engine and Kubernetes identity, for Podman, CRI-O and containerd archives.

CRI-O and containerd archives are made from a real Podman checkpoint by
rewriting spec.dump's annotations the way those engines write them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from forensics.archive.checkpoint import Checkpoint
from tests.archive_tools import rebuild_tar
from tests.conftest import LISTENER, PAYMENTS, archive_path


def with_annotations(tmp_path: Path, annotations: dict[str, str], config: dict[str, Any]) -> str:
    import tarfile

    with tarfile.open(archive_path(LISTENER)) as tar:
        spec_file = tar.extractfile("spec.dump")
        assert spec_file is not None
        spec = json.loads(spec_file.read())
    spec["annotations"] = annotations
    target = tmp_path / "variant.tar"
    rebuild_tar(
        archive_path(LISTENER), str(target),
        replace={"spec.dump": json.dumps(spec).encode(),
                 "config.dump": json.dumps(config).encode()},
    )
    return str(target)


CONFIG = {"id": "c0ffee" * 10 + "abcd", "name": "ignored-for-kubernetes-engines",
          "rootfsImageName": "registry.example/app:1.0", "runtime": "runc",
          "createdTime": "2026-11-22T07:00:00.123456789Z",
          "checkpointedTime": "2026-11-22T07:05:00.5+01:00"}


def test_crio(tmp_path: Path) -> None:
    path = with_annotations(tmp_path, {
        "io.container.manager": "cri-o",
        "io.kubernetes.cri-o.Metadata": json.dumps({"name": "web", "attempt": 0}),
        "io.kubernetes.cri-o.Created": "2026-11-22T07:00:00.123456789Z",
        "io.kubernetes.pod.name": "shop-1", "io.kubernetes.pod.namespace": "prod",
        "io.kubernetes.container.name": "web", "io.kubernetes.pod.uid": "uid-1",
    }, CONFIG)
    with Checkpoint(path) as ckpt:
        assert ckpt.container.engine == "CRI-O"
        assert ckpt.container.name == "web"
        assert ckpt.container.created == "2026-11-22T07:00:00.123456789Z"
        assert ckpt.container.checkpointed == "2026-11-22T07:05:00+01:00"
        assert (ckpt.kubernetes.pod, ckpt.kubernetes.namespace, ckpt.kubernetes.container,
                ckpt.kubernetes.pod_uid) == ("shop-1", "prod", "web", "uid-1")


def test_containerd(tmp_path: Path) -> None:
    path = with_annotations(tmp_path, {
        "io.kubernetes.cri.container-name": "api",
        "io.kubernetes.cri.sandbox-name": "payments-7f",
        "io.kubernetes.cri.sandbox-namespace": "payments",
        "io.kubernetes.cri.sandbox-uid": "uid-2",
    }, CONFIG)
    with Checkpoint(path) as ckpt:
        assert ckpt.container.engine == "containerd"
        assert ckpt.container.name == "api"
        assert ckpt.container.created == "2026-11-22T07:00:00Z"
        assert (ckpt.kubernetes.pod, ckpt.kubernetes.namespace, ckpt.kubernetes.container,
                ckpt.kubernetes.pod_uid) == ("payments-7f", "payments", "api", "uid-2")
        assert ckpt.process(7) is not None  # the CRIU part reads as before


def test_org_criu_checkpoint_annotations(tmp_path: Path) -> None:
    path = with_annotations(tmp_path, {
        "org.criu.checkpoint.container.name": "worker",
        "org.criu.checkpoint.pod.name": "batch-1", "org.criu.checkpoint.pod.namespace": "jobs",
        "org.criu.checkpoint.pod.uid": "uid-3",
    }, CONFIG)
    with Checkpoint(path) as ckpt:
        assert ckpt.container.engine == "containerd"
        assert ckpt.container.name == "worker"
        assert (ckpt.kubernetes.pod, ckpt.kubernetes.namespace, ckpt.kubernetes.container,
                ckpt.kubernetes.pod_uid) == ("batch-1", "jobs", "worker", "uid-3")


@pytest.mark.parametrize("archive,known", [(PAYMENTS, True), (LISTENER, False)])
def test_podman(archive: str, known: bool) -> None:
    with Checkpoint(archive_path(archive)) as ckpt:
        assert ckpt.container.engine == "Podman"
        assert ckpt.kubernetes.known is known


def test_podman_with_an_unreadable_spec_dump_is_still_podman(tmp_path: Path) -> None:
    # config.dump is libpod's own (it has a lockID): the engine does not fall back to
    # containerd, checkpointctl's answer when spec.dump's annotations are missing
    target = tmp_path / "variant.tar"
    rebuild_tar(archive_path(LISTENER), str(target), replace={"spec.dump": b"{not json"})
    with Checkpoint(str(target)) as ckpt:
        assert ckpt.container.engine == "Podman"
        assert ckpt.container.name == "victim2"  # from config.dump, as for Podman
        assert any("spec.dump: not valid JSON" in w for w in ckpt.warnings)
