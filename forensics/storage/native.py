"""The native backend: csi speaks the OCI Distribution API itself (requests).

Push: the archive goes up as the image's one layer, streamed from disk
(see :mod:`.upload` for resume), then the config blob, the manifest (by
digest) and an OCI image index (at the tag), both carrying the checkpoint
annotations. Every digest the registry reports is compared with ours.
Pull: manifests are fetched by tag or digest and their bytes checked
against the digest they were asked or announced by; the layer is streamed
to ``DEST.partial`` while hashed, and renamed only once it matched. An
interrupted pull continues with an HTTP ``Range`` request.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from forensics.storage import limits as lim
from forensics.storage import oci
from forensics.storage.base import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    MEDIA_INDEX,
    MEDIA_MANIFEST,
    ArchiveBlob,
    ImageSpec,
    Progress,
    PullResult,
    PushResult,
    RegistryOptions,
    build_documents,
    sha256_digest,
)
from forensics.storage.client import _NETWORK_ERRORS, RegistryClient
from forensics.storage.errors import (
    BadReferenceError,
    DigestMismatchError,
    ImageNotFoundError,
    RegistryError,
    RegistryUnavailableError,
)
from forensics.storage.reference import ImageRef, Target
from forensics.storage.streams import VerifiedWriter
from forensics.storage.upload import Journal, Uploader

ACCEPT = ", ".join((MEDIA_INDEX, MEDIA_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))


def _registry_ref(target: Target) -> ImageRef:
    if not isinstance(target, ImageRef):
        raise BadReferenceError(f"{target}: the native backend pushes to registries",
                                hint="an oci: layout is handled by the layout backend")
    return target


class NativeBackend:
    """OCI Distribution client; see the module docstring."""

    name = "native"

    def __init__(self, options: RegistryOptions | None = None, *,
                 journal_dir: Path | None = None, progress: Progress | None = None) -> None:
        self.options = options or RegistryOptions()
        self.journal = Journal(journal_dir) if journal_dir else None
        self.progress = progress

    # ------------------------------------------------------------ push

    def push(self, blob: ArchiveBlob, target: Target, spec: ImageSpec) -> PushResult:
        ref = _registry_ref(target)
        client = RegistryClient(ref, self.options)
        try:
            up = Uploader(client, self.journal, chunk_size=self.options.chunk_size,
                          progress=self.progress)
            done = up.put_file(blob.path, blob.size, blob.sha256 or None)
            blob = replace(blob, sha256=done.sha256, diff_id=blob.diff_id or done.sha256)
            tag = spec.tag_for(blob)
            docs = build_documents(blob.descriptor(), f"sha256:{blob.diff_id}",
                                   spec.annotations(blob), spec.platform)
            up.put_bytes(docs.config, docs.config_digest, "upload config")
            self._put_manifest(client, docs.manifest_digest, docs.manifest, MEDIA_MANIFEST,
                               docs.manifest_digest)
            self._put_manifest(client, tag, docs.index, MEDIA_INDEX, docs.index_digest)
            if up.exists(blob.digest) != blob.size:
                raise DigestMismatchError(f"{ref}: the registry does not hold the layer "
                                          f"{blob.digest} ({blob.size} bytes) after the push")
        finally:
            client.close()
        return PushResult(target=str(ref.with_tag(tag)), digest=docs.index_digest,
                          manifest_digest=docs.manifest_digest, archive_sha256=blob.sha256,
                          size=blob.size, backend=self.name, uploaded_bytes=done.sent,
                          resumed_from=done.resumed_from)

    def _put_manifest(self, client: RegistryClient, reference: str, body: bytes,
                      media_type: str, digest: str) -> None:
        what = f"PUT manifest {reference[:19]}"
        resp = client.request("PUT", f"manifests/{reference}", push=True, data=body,
                              headers={"Content-Type": media_type}, expect=(201,), what=what)
        got = resp.headers.get("Docker-Content-Digest")
        if got and got != digest:
            raise DigestMismatchError(f"{what}: the registry stored {got}, expected {digest}")

    # ------------------------------------------------------------ pull

    def fetch_manifest(self, client: RegistryClient, reference: str,
                       size: int | None = None) -> tuple[dict[str, Any], str, bytes]:
        """(document, digest, raw bytes) of a manifest or index, its digest verified.

        At most the manifest cap (4 MiB) is read, or ``size`` (an index
        entry's) when it is smaller.
        """
        what = f"{client.ref.name}:{reference}" if not reference.startswith("sha256:") \
            else f"{client.ref.name}@{reference}"
        cap = client.options.limits.max_manifest
        resp = client.request("GET", f"manifests/{reference}", headers={"Accept": ACCEPT},
                              expect=(200, 404), what=f"GET manifest {what}",
                              limit=cap if size is None else min(size, cap))
        if resp.status_code == 404:
            raise ImageNotFoundError(f"{what}: no such image", hint="check the name and tag")
        raw = resp.content
        digest = sha256_digest(raw)
        announced = resp.headers.get("Docker-Content-Digest")
        if reference.startswith("sha256:") and digest != reference:
            raise DigestMismatchError(f"{what}: the manifest's bytes hash to {digest}")
        if announced and announced != digest:
            raise DigestMismatchError(f"{what}: announced {announced}, its bytes hash to "
                                      f"{digest}")
        return oci.parse_json(raw, what), digest, raw

    def pull(self, target: Target, dest: str, *, overwrite: bool = False) -> PullResult:
        ref = _registry_ref(target)
        client = RegistryClient(ref, self.options)
        try:
            doc, digest, _ = self.fetch_manifest(client, ref.reference)
            outer = doc
            if oci.is_index(doc):
                entry = oci.pick_manifest(doc, str(ref))
                size = lim.check_size(entry.get("size"), f"{ref}: manifest "
                                      f"{str(entry.get('digest'))[:80]}", self.options.limits)
                entry_digest = lim.check_digest(entry.get("digest"), f"{ref}: manifest")
                doc, digest, _ = self.fetch_manifest(client, entry_digest, size)
                annotations = oci.annotations_of(outer, entry, doc)
            else:
                annotations = oci.annotations_of(doc)
            layer = oci.pick_layer(doc, annotations, str(ref), self.options.limits)
            if oci.is_direct(layer, annotations):
                sha = self._stream_layer(client, layer, dest, overwrite=overwrite)
                return oci.finish(dest, sha, layer.size, digest, annotations, reassembled=False)
            tmp = tempfile.mkdtemp(prefix=".csi-pull-", dir=os.path.dirname(dest) or ".")
            try:
                layer_file = os.path.join(tmp, "layer")
                self._stream_layer(client, layer, layer_file, overwrite=True)
                sha = oci.rebuild(layer_file, layer, dest, annotations, overwrite=overwrite)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            return oci.finish(dest, sha, os.path.getsize(dest), digest, annotations,
                              reassembled=True)
        finally:
            client.close()

    def _stream_layer(self, client: RegistryClient, layer: oci.Layer, dest: str, *,
                      overwrite: bool) -> str:
        """GET the blob into ``dest`` (verified), continuing with Range after a cut.

        The download runs under one transfer (deadline scaled by the size,
        minimum rate) and stops at the descriptor's size: a longer answer,
        declared or sent, is an error and nothing of it is kept.
        """
        what = f"GET blob {layer.digest[:19]}"
        transfer = lim.Transfer(self.options.limits, what, layer.size)
        writer = VerifiedWriter(dest, overwrite=overwrite, resume=True, key=layer.hex[:16])
        if writer.size > layer.size:
            writer.abort()
            writer = VerifiedWriter(dest, overwrite=overwrite, key=layer.hex[:16])
        failures = 0
        try:
            while True:
                headers = {"Range": f"bytes={writer.size}-"} if writer.size else {}
                try:
                    resp = client.request("GET", f"blobs/{layer.digest}", headers=headers,
                                          stream=True, transfer=transfer,
                                          expect=(200, 206, 404), what=what)
                    if resp.status_code == 404:
                        resp.close()
                        raise ImageNotFoundError(f"{client.ref.name}: blob {layer.digest} is "
                                                 "missing from the registry")
                    if resp.status_code == 200 and writer.size:
                        writer.abort()  # no Range support: start over
                        writer = VerifiedWriter(dest, overwrite=overwrite, key=layer.hex[:16])
                    try:
                        self._receive(resp, layer, writer, transfer, what)
                    finally:
                        resp.close()
                    transfer.check()
                    break
                except _NETWORK_ERRORS as exc:  # a cut stream: resume
                    transfer.check()
                    failures += 1
                    if failures >= max(1, self.options.retries):
                        writer.abort(keep=True)
                        raise RegistryUnavailableError(
                            f"{what}: the download was cut", why=type(exc).__name__,
                            hint=f"{writer.partial} is kept; pull again to continue") from None
                    time.sleep(self.options.backoff * (2 ** (failures - 1)))
        except BaseException as exc:
            keep = isinstance(exc, RegistryUnavailableError) and \
                not isinstance(exc, lim.RegistryTooSlowError)
            writer.abort(keep=keep)
            raise
        finally:
            transfer.close()
        return writer.commit(layer.hex, layer.size, what=f"layer {layer.digest}")

    def _receive(self, resp: Any, layer: oci.Layer, writer: VerifiedWriter,
                 transfer: lim.Transfer, what: str) -> None:
        """Write the body to ``writer``, never past the descriptor's size."""
        left = layer.size - writer.size
        declared = resp.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > left:
            raise RegistryError(f"{what}: the registry announces more than the layer's size",
                                why=f"Content-Length {declared[:20]}, but {left} bytes of the "
                                f"descriptor's {layer.size} remain to fetch",
                                hint="nothing was kept; the registry is misbehaving or hostile")
        raw = resp.raw
        transfer.reading = True
        while True:
            data = lim.read_some(raw, left + 1)
            if not data:
                return
            if len(data) > left:
                raise DigestMismatchError(
                    f"{what}: the registry sent more than the layer's size",
                    why=f"the descriptor says {layer.size} bytes",
                    hint="nothing was kept; the registry is misbehaving or hostile")
            transfer.count(len(data))
            writer.write(data)
            left -= len(data)
            if self.progress is not None:
                self.progress(writer.size, layer.size)
