"""Reading checkpoint images back: pick the manifest and the layer, rebuild the archive.

Shared by every backend's pull. The archive is the layer whose digest is
``dev.csi.archive.sha256`` (csi's images), else the only layer. A layer
that is *not* the archive (a buildah image: re-tarred) is turned back into
the archive through its tar-split sidecar, and the result must hash to
``dev.csi.archive.sha256``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from forensics.archive import hashcache
from forensics.storage import tarsplit
from forensics.storage.annotations import CSI_SHA256, CSI_SIZE
from forensics.storage.base import (
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    INDEX_TYPES,
    MEDIA_LAYER,
    MEDIA_LAYER_GZIP,
    MEDIA_LAYER_ZSTD,
    PullResult,
)
from forensics.storage.errors import ImageNotFoundError, RegistryError
from forensics.storage.limits import TransferLimits, check_digest, check_size
from forensics.storage.streams import VerifiedWriter, local_error

_LAYER_TYPES = (MEDIA_LAYER, MEDIA_LAYER_GZIP, MEDIA_LAYER_ZSTD, DOCKER_LAYER, DOCKER_LAYER_GZIP)


@dataclass(frozen=True)
class Layer:
    media_type: str
    digest: str
    size: int

    @property
    def hex(self) -> str:
        return self.digest.removeprefix("sha256:")


def parse_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python allows
        raise RegistryError(f"{what}: not valid JSON") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"{what}: not a JSON object")
    return doc


def is_index(doc: dict[str, Any], media_type: str = "") -> bool:
    return (media_type or str(doc.get("mediaType", ""))) in INDEX_TYPES or (
        "manifests" in doc and "layers" not in doc)


def pick_manifest(index: dict[str, Any], what: str) -> dict[str, Any]:
    """The entry of an index to use: linux first, the only one otherwise."""
    entries = [e for e in index.get("manifests") or [] if isinstance(e, dict)]
    if not entries:
        raise ImageNotFoundError(f"{what}: the image index lists no manifest")
    linux = [e for e in entries if not isinstance(e.get("platform"), dict)
             or e["platform"].get("os", "linux") == "linux"]
    return (linux or entries)[0]


def annotations_of(*docs: dict[str, Any]) -> dict[str, str]:
    """Annotations merged in order (later documents win)."""
    out: dict[str, str] = {}
    for doc in docs:
        raw = doc.get("annotations")
        if isinstance(raw, dict):
            out.update({str(k): str(v) for k, v in raw.items()})
    return out


def pick_layer(manifest: dict[str, Any], annotations: dict[str, str], what: str,
               limits: TransferLimits | None = None) -> Layer:
    """The archive's layer; its size must be a sane integer (see :func:`.limits.check_size`)."""
    limits = limits or TransferLimits.from_env()
    layers = [lay for lay in manifest.get("layers") or [] if isinstance(lay, dict)]
    want = annotations.get(CSI_SHA256)
    for lay in layers:
        if want and lay.get("digest") == f"sha256:{want}":
            return Layer(str(lay.get("mediaType")), check_digest(lay["digest"], what),
                         check_size(lay.get("size"), f"{what}: layer", limits))
    if len(layers) != 1:
        raise ImageNotFoundError(f"{what}: not a checkpoint image",
                                 why=f"it has {len(layers)} layers, a checkpoint image has one")
    lay = layers[0]
    if lay.get("mediaType") not in _LAYER_TYPES:
        raise ImageNotFoundError(f"{what}: not a checkpoint image",
                                 why=f"layer media type {lay.get('mediaType')!r}")
    return Layer(str(lay["mediaType"]), check_digest(lay.get("digest"), what),
                 check_size(lay.get("size"), f"{what}: layer", limits))


def is_direct(layer: Layer, annotations: dict[str, str]) -> bool:
    """Is the layer the archive itself (no rebuilding needed)?"""
    want = annotations.get(CSI_SHA256)
    return not want or layer.hex == want


def expected_size(annotations: dict[str, str]) -> int | None:
    text = annotations.get(CSI_SIZE, "")
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


def finish(dest: str, sha256: str, size: int, digest: str, annotations: dict[str, str],
           *, reassembled: bool) -> PullResult:
    """Record the verified digest in the hash cache and describe the result."""
    with contextlib.suppress(OSError):
        hashcache.store(os.stat(dest), sha256)
    return PullResult(path=dest, sha256=sha256, size=size, digest=digest,
                      annotations=annotations, reassembled=reassembled,
                      verified_against_annotation=annotations.get(CSI_SHA256) == sha256)


def copy_file_verified(src: str, dest: str, layer: Layer, *, overwrite: bool) -> str:
    """Copy a local blob to ``dest``, verifying its digest on the way."""
    writer = VerifiedWriter(dest, overwrite=overwrite)
    try:
        with open(src, "rb", buffering=0) as f:  # never past the size: one byte more tells
            while writer.size <= layer.size and (
                    data := f.read(min(4 << 20, layer.size + 1 - writer.size))):
                writer.write(data)
    except OSError as exc:
        writer.abort()
        raise local_error(src, exc) from None
    return writer.commit(layer.hex, layer.size, what=f"layer {layer.digest}")


def rebuild(layer_file: str, layer: Layer, dest: str, annotations: dict[str, str], *,
            overwrite: bool) -> str:
    """The original archive from a layer that is not it (already digest-verified).

    Either the layer is the archive compressed on the way (``skopeo copy``
    gzips plain layers), or it was re-tarred (buildah) and carries a tar-split.
    """
    want = annotations[CSI_SHA256]
    size = expected_size(annotations)
    if layer.media_type in (MEDIA_LAYER, DOCKER_LAYER):
        return _reassemble(layer_file, dest, want, size, overwrite=overwrite)
    from forensics.archive.source import open_stream
    from forensics.archive.tempfiles import expansion_limit

    plain = VerifiedWriter(dest, overwrite=overwrite, key="plain")
    limit, why, hint = expansion_limit(os.path.dirname(os.path.abspath(dest)))
    try:
        with open_stream(layer_file) as stream:
            while data := stream.read(4 << 20):
                if plain.size + len(data) > limit:  # a compression bomb from the registry
                    raise RegistryError(f"layer {layer.digest}: expands to more than {limit} "
                                        "bytes", why=why, hint=hint)
                plain.write(data)
    except OSError as exc:
        plain.abort()
        raise local_error(dest, exc) from None
    except BaseException:
        plain.abort()
        raise
    if plain.hasher.hexdigest() == want and size in (None, plain.size):
        return plain.commit(want, size, what="archive decompressed from the layer")
    plain.abort(keep=True)  # a re-tarred layer: rebuild from the tar-split
    try:
        return _reassemble(plain.partial, dest, want, size, overwrite=overwrite)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(plain.partial)


def _reassemble(plain_tar: str, dest: str, want: str, size: int | None, *,
                overwrite: bool) -> str:
    writer = VerifiedWriter(dest, overwrite=overwrite)
    from forensics.archive.tempfiles import expansion_limit

    room = expansion_limit(os.path.dirname(os.path.abspath(dest)))[0]
    limit = room if size is None else min(size, room)
    try:
        tarsplit.reassemble(plain_tar, writer.write, limit)
    except BaseException:
        writer.abort()
        raise
    return writer.commit(want, size, what="archive rebuilt from the layer's tar-split")


def write_chunks(writer: VerifiedWriter, chunks: Iterable[bytes]) -> None:
    for chunk in chunks:
        writer.write(chunk)
