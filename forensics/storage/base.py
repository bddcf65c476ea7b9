"""The registry interface: one checkpoint archive <-> one OCI image.

The image has exactly one layer, and that layer *is* the archive: an
uncompressed archive is pushed as ``application/vnd.oci.image.layer.v1.tar``
(a gzip or zstd one as ``…tar+gzip`` / ``…tar+zstd``), so the layer digest
equals the archive's sha256 and the evidence digest survives the trip.
The manifest carries the checkpoint annotations, and so does an OCI image
index that points at it (containerd reads them there); the tag names the
index. Every backend implements :class:`Backend`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from forensics.storage.annotations import (
    CheckpointMeta,
    Platform,
    checkpoint_annotations,
    default_tag,
)
from forensics.storage.limits import TransferLimits
from forensics.storage.reference import Target

MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_TYPES = (MEDIA_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (MEDIA_INDEX, DOCKER_LIST)
LAYER_MEDIA_BY_COMPRESSION = {"none": MEDIA_LAYER, "gzip": MEDIA_LAYER_GZIP,
                              "zstd": MEDIA_LAYER_ZSTD}
REF_NAME = "org.opencontainers.image.ref.name"

Progress = Callable[[int, int], None]
"""Called as ``progress(bytes_done, bytes_total)`` while a blob moves."""


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, no spaces): same input, same digest."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] | None = None
    platform: Platform | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                               "size": self.size}
        if self.platform is not None:
            out["platform"] = {"architecture": self.platform.architecture,
                               "os": self.platform.os}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class ArchiveBlob:
    """The archive as the layer it becomes.

    ``diff_id`` is the sha256 of the uncompressed tar (equal to ``sha256`` for
    a plain tar).
    """

    path: str
    size: int
    sha256: str
    compression: str = "none"
    diff_id: str = ""

    @property
    def digest(self) -> str:
        return f"sha256:{self.sha256}"

    @property
    def media_type(self) -> str:
        return LAYER_MEDIA_BY_COMPRESSION[self.compression]

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size)


@dataclass(frozen=True)
class ImageDocuments:
    """The JSON documents of one checkpoint image, exactly as they are stored."""

    config: bytes
    manifest: bytes
    index: bytes

    @property
    def config_digest(self) -> str:
        return sha256_digest(self.config)

    @property
    def manifest_digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def index_digest(self) -> str:
        return sha256_digest(self.index)


def build_documents(layer: Descriptor, diff_id: str, annotations: Mapping[str, str],
                    platform: Platform) -> ImageDocuments:
    """The OCI config, manifest and index for a one-layer checkpoint image."""
    created = annotations.get("org.opencontainers.image.created")
    config: dict[str, Any] = {
        "architecture": platform.architecture, "os": platform.os,
        "config": {"Labels": {k: v for k, v in annotations.items()
                              if k.startswith("dev.csi.") or k.startswith("org.criu.")}},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "csi push (checkpoint archive as one layer)"}],
    }
    if created:
        config["created"] = created
        config["history"][0]["created"] = created
    config_bytes = canonical_json(config)
    manifest = {
        "schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
        "config": Descriptor(MEDIA_CONFIG, sha256_digest(config_bytes),
                             len(config_bytes)).to_json(),
        "layers": [layer.to_json()],
        "annotations": dict(annotations),
    }
    manifest_bytes = canonical_json(manifest)
    index = {
        "schemaVersion": 2, "mediaType": MEDIA_INDEX,
        "manifests": [Descriptor(MEDIA_MANIFEST, sha256_digest(manifest_bytes),
                                 len(manifest_bytes), annotations, platform).to_json()],
        "annotations": dict(annotations),
    }
    return ImageDocuments(config_bytes, manifest_bytes, canonical_json(index))


@dataclass(frozen=True)
class PushResult:
    """Where a checkpoint image went. ``digest`` is what the tag points at."""

    target: str  # the reference pushed to, with its tag
    digest: str  # index digest (registry) or manifest digest (layout)
    manifest_digest: str
    archive_sha256: str
    size: int
    backend: str
    uploaded_bytes: int = 0  # archive bytes actually sent (0 when the layer was there)
    resumed_from: int = 0  # bytes of an earlier interrupted upload that were reused
    source_deleted: bool = False

    @property
    def pinned(self) -> str:
        """The reference pinned by digest, for reports and pulls."""
        base = self.target
        if not base.startswith("oci:"):
            slash = base.rfind("/")
            colon = base.rfind(":")
            if colon > slash:
                base = base[:colon]
        return f"{base}@{self.digest}"


@dataclass(frozen=True)
class PullResult:
    """An archive brought back to disk and verified."""

    path: str
    sha256: str
    size: int
    digest: str  # of the manifest the archive came from
    annotations: dict[str, str] = field(default_factory=dict)
    reassembled: bool = False  # rebuilt from a re-tarred layer (buildah) via its tar-split
    verified_against_annotation: bool = False  # sha256 == dev.csi.archive.sha256


class Backend(Protocol):
    """A place checkpoint images go to and come back from."""

    name: str

    def push(self, blob: ArchiveBlob, target: Target, spec: ImageSpec) -> PushResult:
        """Store ``blob`` as a checkpoint image at ``target`` (tagged ``spec.tag_for``).

        ``blob.sha256`` may be empty when not known yet: a backend that can
        hash while it sends does so; the others hash first.
        """
        ...

    def pull(self, target: Target, dest: str, *, overwrite: bool = False) -> PullResult:
        """Write the archive of the image at ``target`` to ``dest``, verified."""
        ...


@dataclass(frozen=True)
class RegistryOptions:
    """How to reach a registry: TLS, credentials, retries, upload chunking.

    ``tls_verify=False`` also allows falling back to plain HTTP (as skopeo
    does); ``plain_http=True`` uses HTTP from the start. ``username`` and
    ``password`` override the auth files; ``auth_file`` replaces their
    lookup. ``chunk_size=0`` sends a blob in one request (fastest);
    otherwise in PATCH chunks of that many bytes, each a resume point.
    ``limits`` bound every exchange (sizes, deadline, minimum rate); by
    default from the environment (:meth:`TransferLimits.from_env`).
    """

    tls_verify: bool = True
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    plain_http: bool = False
    auth_file: str | None = None
    username: str | None = None
    password: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 300.0
    retries: int = 4
    backoff: float = 0.5
    chunk_size: int = 0
    limits: TransferLimits = field(default_factory=TransferLimits.from_env)

    @classmethod
    def from_env(cls) -> RegistryOptions:
        """Options from ``CSI_REGISTRY_PLAIN_HTTP=1``, ``CSI_REGISTRY_TLS_VERIFY=0``,
        ``CSI_REGISTRY_CA_FILE``, ``CSI_REGISTRY_AUTH_FILE`` (what a workflow step sets)."""
        env = os.environ
        return cls(plain_http=env.get("CSI_REGISTRY_PLAIN_HTTP", "") in ("1", "true"),
                   tls_verify=env.get("CSI_REGISTRY_TLS_VERIFY", "1") not in ("0", "false"),
                   ca_file=env.get("CSI_REGISTRY_CA_FILE") or None,
                   auth_file=env.get("CSI_REGISTRY_AUTH_FILE") or None)


@dataclass(frozen=True)
class ImageSpec:
    """What the image will say: the checkpoint's identity, platform and tag."""

    meta: CheckpointMeta
    tag: str | None = None

    @property
    def platform(self) -> Platform:
        return self.meta.platform

    def annotations(self, blob: ArchiveBlob) -> dict[str, str]:
        return checkpoint_annotations(self.meta, sha256=blob.sha256, size=blob.size,
                                      compression=blob.compression,
                                      filename=os.path.basename(blob.path))

    def tag_for(self, blob: ArchiveBlob) -> str:
        return self.tag or default_tag(self.meta, blob.sha256)
