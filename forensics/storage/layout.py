"""The embedded default: an OCI image layout directory (``oci:DIR[:NAME]``).

With no registry configured, checkpoint images go to ``$CSI_HOME/oci`` (by
default ``~/.local/share/csi/oci``): ``oci-layout``, ``index.json`` and
``blobs/sha256/…`` as the OCI image-layout spec lays them out, so skopeo
(``skopeo inspect oci:DIR:NAME``) and podman read them. ``index.json``
points at each image's manifest under ``org.opencontainers.image.ref.name``
with the checkpoint annotations beside it. The archive is copied in (hashed
on the way and checked), never moved or linked: the original stays as it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from forensics.storage import oci
from forensics.storage.base import (
    MEDIA_MANIFEST,
    REF_NAME,
    ArchiveBlob,
    Descriptor,
    ImageSpec,
    PullResult,
    PushResult,
    build_documents,
    sha256_digest,
)
from forensics.storage.errors import (
    BadReferenceError,
    DigestMismatchError,
    ImageNotFoundError,
    RegistryError,
)
from forensics.storage.limits import MANIFEST_MAX, check_digest, read_file_capped
from forensics.storage.reference import LayoutRef, Target
from forensics.storage.streams import local_error

_INDEX_MAX = 64 << 20  # tens of thousands of images

LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}


def _layout_ref(target: Target) -> LayoutRef:
    if not isinstance(target, LayoutRef):
        raise BadReferenceError(f"{target}: not an oci: layout reference")
    return target


class LayoutBackend:
    """Reads and writes checkpoint images in an OCI image layout directory."""

    name = "layout"

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _blob_path(root: Path, digest: str) -> Path:
        algo, _, hexpart = digest.partition(":")
        return root / "blobs" / algo / hexpart

    @contextlib.contextmanager
    def _locked(self, root: Path) -> Iterator[None]:
        try:
            (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
            if not (root / "oci-layout").exists():
                self._write(root / "oci-layout", json.dumps(LAYOUT_VERSION).encode())
            lock = open(root / "index.json.lock", "a")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise local_error(str(root), exc) from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
        finally:
            lock.close()

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise local_error(str(path), exc) from None

    def _copy_in(self, root: Path, blob: ArchiveBlob) -> str:
        """Copy the archive into blobs/, hashing; returns its sha256 (checked if known)."""
        if blob.sha256:
            final = self._blob_path(root, blob.digest)
            if final.is_file() and final.stat().st_size == blob.size:
                return blob.sha256
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=root / "blobs" / "sha256", prefix=".tmp-")
        try:
            with open(blob.path, "rb", buffering=0) as src, os.fdopen(fd, "wb") as out:
                while data := src.read(4 << 20):
                    digest.update(data)
                    out.write(data)
                out.flush()
                os.fsync(out.fileno())
            got = digest.hexdigest()
            if blob.sha256 and got != blob.sha256:
                raise DigestMismatchError(f"{blob.path}: hashes to sha256:{got}, not the "
                                          f"sha256:{blob.sha256} given")
            os.replace(tmp, self._blob_path(root, f"sha256:{got}"))
            return got
        except OSError as exc:
            raise local_error(str(root), exc) from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def _index(self, root: Path) -> dict[str, Any]:
        try:
            data = read_file_capped(root / "index.json", _INDEX_MAX)
            if data is None:
                raise RegistryError(f"{root}/index.json is larger than {_INDEX_MAX} bytes",
                                    hint="the layout is damaged or hostile")
            return oci.parse_json(data, f"{root}/index.json")
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": []}
        except OSError as exc:
            raise local_error(str(root), exc) from None

    # ------------------------------------------------------------ push / pull

    def push(self, blob: ArchiveBlob, target: Target, spec: ImageSpec) -> PushResult:
        ref = _layout_ref(target)
        root = Path(ref.path)
        with self._locked(root):
            sha = self._copy_in(root, blob)
            blob = replace(blob, sha256=sha, diff_id=blob.diff_id or sha)
            name = ref.name or spec.tag_for(blob)
            annotations = spec.annotations(blob)
            docs = build_documents(blob.descriptor(), f"sha256:{blob.diff_id}", annotations,
                                   spec.platform)
            for data in (docs.config, docs.manifest):
                path = self._blob_path(root, sha256_digest(data))
                if not path.exists():
                    self._write(path, data)
            index = self._index(root)
            entries = [e for e in index.get("manifests", [])
                       if (e.get("annotations") or {}).get(REF_NAME) != name]
            entry = Descriptor(MEDIA_MANIFEST, docs.manifest_digest, len(docs.manifest),
                               {REF_NAME: name, **annotations}, spec.platform)
            index["manifests"] = [*entries, entry.to_json()]
            self._write(root / "index.json", json.dumps(index, indent=1).encode())
        return PushResult(target=str(ref.with_name(name)), digest=docs.manifest_digest,
                          manifest_digest=docs.manifest_digest, archive_sha256=sha,
                          size=blob.size, backend=self.name, uploaded_bytes=blob.size)

    def pull(self, target: Target, dest: str, *, overwrite: bool = False) -> PullResult:
        ref = _layout_ref(target)
        root = Path(ref.path)
        if not (root / "index.json").is_file():
            raise ImageNotFoundError(f"{root}: not an OCI image layout (no index.json)")
        entries = [e for e in self._index(root).get("manifests", []) if isinstance(e, dict)]
        if ref.name:
            entries = [e for e in entries
                       if (e.get("annotations") or {}).get(REF_NAME) == ref.name]
        if len(entries) != 1:
            raise ImageNotFoundError(
                f"{ref}: {'no image of that name' if not entries else 'several images'}",
                hint="name one image: oci:DIR:NAME (see index.json's ref.name annotations)")
        entry = entries[0]
        digest = str(entry.get("digest"))
        raw = self._read_blob(root, digest)
        doc = oci.parse_json(raw, f"{ref} manifest")
        outer: dict[str, Any] = {}
        if oci.is_index(doc, str(entry.get("mediaType", ""))):
            outer, entry = doc, oci.pick_manifest(doc, str(ref))
            digest = str(entry.get("digest"))
            doc = oci.parse_json(self._read_blob(root, digest), f"{ref} manifest")
        annotations = oci.annotations_of(outer, entry, doc)
        annotations.pop(REF_NAME, None)
        layer = oci.pick_layer(doc, annotations, str(ref))
        layer_path = str(self._blob_path(root, layer.digest))
        if not os.path.isfile(layer_path):
            raise ImageNotFoundError(f"{ref}: layer blob {layer.digest} is missing")
        if oci.is_direct(layer, annotations):
            sha = oci.copy_file_verified(layer_path, dest, layer, overwrite=overwrite)
            return oci.finish(dest, sha, layer.size, digest, annotations, reassembled=False)
        sha = oci.rebuild(layer_path, layer, dest, annotations, overwrite=overwrite)
        return oci.finish(dest, sha, os.path.getsize(dest), digest, annotations,
                          reassembled=True)

    def _read_blob(self, root: Path, digest: str) -> bytes:
        """A manifest or index blob: a sha256 digest (it names a file), at most 4 MiB."""
        digest = check_digest(digest, f"{root}: manifest")
        cap = MANIFEST_MAX
        try:
            data = read_file_capped(self._blob_path(root, digest), cap)
            if data is None:
                raise RegistryError(f"{root}: blob {digest} is larger than {cap} bytes",
                                    hint="a manifest is not; the layout is damaged or hostile")
        except OSError as exc:
            raise ImageNotFoundError(f"{root}: blob {digest} unreadable",
                                     why=exc.strerror or "") from None
        if sha256_digest(data) != digest:
            raise DigestMismatchError(f"{root}: blob {digest} does not match its digest")
        return data

