"""What a checkpoint image says about itself: the annotations every runtime looks for.

CRI-O recognises a checkpoint image by ``io.kubernetes.cri-o.annotations.checkpoint.name``,
containerd and checkpointctl by ``org.criu.checkpoint.*`` (containerd reads
them from the image index), Podman by ``io.podman.annotations.checkpoint.*``.
csi adds its own ``dev.csi.*`` keys: the archive's sha256 (the evidence
digest), when and why it was captured, and the pod it came from.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

CRIO_NAME = "io.kubernetes.cri-o.annotations.checkpoint.name"
CSI_SHA256 = "dev.csi.archive.sha256"
CSI_SIZE = "dev.csi.archive.size"
CSI_COMPRESSION = "dev.csi.archive.compression"
CSI_FILENAME = "dev.csi.archive.filename"
CSI_CAPTURED = "dev.csi.captured-at"
CSI_TARSPLIT = "dev.csi.archive.tar-split"
OCI_CREATED = "org.opencontainers.image.created"

# CRIU core_entry.mtype -> OCI architecture
_MTYPE_ARCH = {1: "amd64", 2: "arm", 3: "arm64", 4: "ppc64le", 5: "s390x", 6: "mips64le",
               7: "riscv64", 8: "loong64"}
_ENGINE_NAMES = {"Podman": "podman", "CRI-O": "cri-o", "containerd": "containerd"}
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Platform:
    architecture: str = "amd64"
    os: str = "linux"


@dataclass(frozen=True)
class CheckpointMeta:
    """Who, what and when of one checkpoint archive, as annotations will tell it.

    Build it with :meth:`from_archive` (reads config.dump/spec.dump) and add
    what only the capturer knows (``captured_at``, ``alert_rule``, ``node``).
    """

    container: str = ""
    container_id: str = ""
    pod: str | None = None
    namespace: str | None = None
    pod_uid: str | None = None
    image: str = ""
    image_id: str = ""
    raw_image: str = ""
    engine: str = ""
    runtime: str = ""
    node: str = ""
    captured_at: datetime | None = None
    alert_rule: str = ""
    alert_priority: str = ""
    alert_id: str = ""
    platform: Platform = field(default_factory=Platform)
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_archive(cls, path: str, **overrides: Any) -> CheckpointMeta:
        """Read the identity from the archive's metadata; ``overrides`` win.

        Raises :class:`~forensics.errors.ArchiveError` when ``path`` is not a
        container checkpoint.
        """
        from forensics.archive.checkpoint import Checkpoint

        with Checkpoint(path, hash_eagerly=False) as ckpt:
            info = ckpt.container
            k8s = ckpt.kubernetes
            config = ckpt.config
            meta = cls(
                container=k8s.container or info.name, container_id=info.id,
                pod=k8s.pod, namespace=k8s.namespace, pod_uid=k8s.pod_uid,
                image=info.image, image_id=str(config.get("rootfsImageID") or ""),
                raw_image=str(config.get("RawImageName") or info.image),
                engine=info.engine, runtime=info.runtime,
                platform=Platform(architecture=_architecture(ckpt)),
            )
        return replace(meta, **overrides)

    def with_capture(self, *, captured_at: datetime | None = None, alert_rule: str = "",
                     node: str = "") -> CheckpointMeta:
        return replace(self, captured_at=captured_at or self.captured_at,
                       alert_rule=alert_rule or self.alert_rule, node=node or self.node)


def _architecture(ckpt: Any) -> str:
    from forensics.archive.criu import messages as m
    from forensics.errors import CsiError

    cores = sorted(
        (int(n[len("checkpoint/core-"):-4]) for n in ckpt.source.names("checkpoint/core-")
         if n.endswith(".img") and n[len("checkpoint/core-"):-4].isdigit()),
    )
    for pid in cores[:1]:
        try:
            core = ckpt.images.first(f"core-{pid}.img", "core", m.CORE)
        except (CsiError, ValueError):
            break
        return _MTYPE_ARCH.get(int(core.get("mtype") or 0), "amd64")
    return "amd64"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def checkpoint_annotations(meta: CheckpointMeta, *, sha256: str, size: int,
                           compression: str = "none", filename: str = "") -> dict[str, str]:
    """Every annotation a runtime looks for, plus csi's own, for one archive.

    Empty values are left out, except the checkpoint names runtimes key on.
    """
    name = meta.container or "checkpoint"
    engine = _ENGINE_NAMES.get(meta.engine, meta.engine.lower())
    captured = meta.captured_at or datetime.now(UTC)
    out: dict[str, str | None] = {
        CRIO_NAME: name,
        "org.criu.checkpoint.container.name": name,
        "org.criu.checkpoint.container.id": meta.container_id,
        "org.criu.checkpoint.engine.name": engine,
        "org.criu.checkpoint.pod.name": meta.pod,
        "org.criu.checkpoint.pod.namespace": meta.namespace,
        "org.criu.checkpoint.pod.id": meta.pod_uid,
        "org.criu.checkpoint.rootfsImageName": meta.image,
        "org.criu.checkpoint.rootfsImageID": meta.image_id,
        "org.criu.checkpoint.rawImageName": meta.raw_image,
        "org.criu.checkpoint.runtime.name": meta.runtime,
        "org.criu.checkpoint.host.arch": meta.platform.architecture,
        "io.podman.annotations.checkpoint.name": name,
        "io.podman.annotations.checkpoint.rawImageName": meta.raw_image,
        "io.podman.annotations.checkpoint.rootfsImageID": meta.image_id,
        "io.podman.annotations.checkpoint.rootfsImageName": meta.image,
        "io.podman.annotations.checkpoint.runtime.name": meta.runtime,
        "io.podman.annotations.checkpoint.host.arch": meta.platform.architecture,
        CSI_SHA256: sha256,
        CSI_SIZE: str(size),
        CSI_COMPRESSION: compression,
        CSI_FILENAME: filename,
        CSI_CAPTURED: rfc3339(captured),
        OCI_CREATED: rfc3339(captured),
        "dev.csi.container.name": meta.container,
        "dev.csi.container.id": meta.container_id,
        "dev.csi.pod.name": meta.pod,
        "dev.csi.pod.namespace": meta.namespace,
        "dev.csi.pod.uid": meta.pod_uid,
        "dev.csi.node": meta.node,
        "dev.csi.engine": meta.engine,
        "dev.csi.alert.rule": meta.alert_rule,
        "dev.csi.alert.priority": meta.alert_priority,
        "dev.csi.alert.id": meta.alert_id,
    }
    result = {k: v for k, v in out.items() if v}
    result.update({k: v for k, v in meta.extra.items() if v})
    return result


def default_tag(meta: CheckpointMeta, sha256: str) -> str:
    """A readable, stable tag: ``<container>-<capture time>-<sha256 prefix>``."""
    stamp = (meta.captured_at or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = _TAG_UNSAFE.sub("-", meta.container or "checkpoint").strip("-.") or "checkpoint"
    return f"{base[:80]}-{stamp}-{sha256[:12]}"


def default_repository(meta: CheckpointMeta) -> str:
    """``checkpoints/<namespace>/<pod>`` when known, else ``checkpoints/<container>``."""
    parts = [p for p in (meta.namespace, meta.pod) if p] or [meta.container or "unknown"]
    clean = [_TAG_UNSAFE.sub("-", p.lower()).strip("-._") or "x" for p in parts]
    return "/".join(["checkpoints", *clean])


def archive_filename(path: str) -> str:
    return os.path.basename(path)
