"""Push a checkpoint archive as an OCI image, pull it back: the calls other code makes.

    from forensics.storage import push_archive, pull_archive

    result = push_archive(path, "registry.example:5000/evidence/payments",
                          sha256=capture_sha256, captured_at=when, alert_rule=rule,
                          node=node, delete_source=True)
    result.pinned   # registry.example:5000/evidence/payments@sha256:…  (for the report)
    pull_archive(result.pinned, "/tmp/evidence.tar")

Without a reference the image goes to ``$CSI_REGISTRY`` (a registry host and
optional path prefix, e.g. ``registry:5000/evidence``) under
``checkpoints/<namespace>/<pod>``, or, when that is not set, to the OCI
layout ``$CSI_HOME/oci``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from forensics.archive import hashcache
from forensics.archive.source import open_stream, sniff_compression
from forensics.errors import UsageError
from forensics.paths import csi_home as csi_home  # re-exported: the one csi home
from forensics.storage.annotations import CheckpointMeta, default_repository
from forensics.storage.base import (
    LAYER_MEDIA_BY_COMPRESSION,
    ArchiveBlob,
    Backend,
    ImageSpec,
    Progress,
    PullResult,
    PushResult,
    RegistryOptions,
)
from forensics.storage.errors import (
    DigestMismatchError,
    LocalStorageError,
    RegistryError,
)
from forensics.storage.reference import ImageRef, LayoutRef, Target, parse_target
from forensics.storage.upload import file_identity

BACKENDS = ("native", "buildah")


def default_layout() -> Path:
    return csi_home() / "oci"


def resolve_target(ref: str | None, meta: CheckpointMeta) -> Target:
    """The reference given, else ``$CSI_REGISTRY/checkpoints/NS/POD``, else the layout."""
    if ref:
        return parse_target(ref)
    registry = os.environ.get("CSI_REGISTRY", "").strip().rstrip("/")
    if registry:
        return ImageRef.parse(f"{registry}/{default_repository(meta)}")
    return LayoutRef(str(default_layout()))


def open_backend(name: str, target: Target, options: RegistryOptions | None = None,
                 progress: Progress | None = None) -> Backend:
    """The backend for ``target``: the layout for ``oci:``, else ``name``.

    ``options`` None: :meth:`RegistryOptions.from_env`.
    """
    options = options or RegistryOptions.from_env()
    if isinstance(target, LayoutRef):
        from forensics.storage.layout import LayoutBackend

        return LayoutBackend()
    if name == "buildah":
        from forensics.storage.buildah import BuildahBackend

        return BuildahBackend(options)
    if name != "native":
        raise RegistryError(f"unknown registry backend {name!r}",
                            hint=f"choose one of {', '.join(BACKENDS)}")
    from forensics.storage.native import NativeBackend

    return NativeBackend(options, journal_dir=csi_home() / "uploads", progress=progress)


def prepare_blob(path: str, sha256: str | None = None) -> ArchiveBlob:
    """Describe the archive as a layer without changing it.

    The sha256 is the one given (e.g. taken at capture), else the hash
    cache's, else left empty (the native backend hashes while it sends).
    A compressed archive's diff_id (the sha256 of its tar) is computed here.
    """
    try:
        st = os.stat(path)
        with open(path, "rb") as f:
            compression = sniff_compression(f.read(8))
    except OSError as exc:
        raise LocalStorageError(f"{path}: cannot open", why=exc.strerror or "") from None
    if compression not in LAYER_MEDIA_BY_COMPRESSION:
        raise RegistryError(f"{path}: {compression}-compressed archives have no OCI layer "
                            "media type", hint="keep it as it is and export the checkpoint "
                            "again uncompressed, gzip or zstd")
    if sha256:
        sha256 = sha256.removeprefix("sha256:").lower()
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise UsageError(f"--sha256 {sha256!r} is not a sha256 hex digest")
    sha = sha256 or hashcache.lookup(st) or ""
    diff_id = ""
    if compression != "none":
        digest = hashlib.sha256()
        with open_stream(path) as stream:
            while data := stream.read(4 << 20):
                digest.update(data)
        diff_id = digest.hexdigest()
    return ArchiveBlob(path=path, size=st.st_size, sha256=sha, compression=compression,
                       diff_id=diff_id)


def push_archive(
    archive: str, ref: str | None = None, *, meta: CheckpointMeta | None = None,
    backend: str = "native", options: RegistryOptions | None = None,
    sha256: str | None = None, captured_at: datetime | None = None, alert_rule: str = "",
    node: str = "", delete_source: bool = False, progress: Progress | None = None,
) -> PushResult:
    """Store ``archive`` as a checkpoint image; the archive itself is never changed.

    ``ref`` is ``[HOST/]REPO[:TAG]`` or ``oci:DIR[:NAME]`` (see
    :func:`resolve_target`); without a tag one is made from the container
    name, capture time and digest. ``meta`` defaults to what the archive
    says (:meth:`CheckpointMeta.from_archive`). ``delete_source`` removes the
    archive only after the push was verified (the registry checked the
    digest, or the layout copy was hashed) and only if it did not change
    meanwhile.
    """
    if meta is None:
        meta = CheckpointMeta.from_archive(archive)
    meta = meta.with_capture(captured_at=captured_at or meta.captured_at or datetime.now(UTC),
                             alert_rule=alert_rule, node=node)
    target = resolve_target(ref, meta)
    if isinstance(target, ImageRef) and target.digest:
        raise RegistryError(f"{target}: push to a tag, not a digest")
    identity = file_identity(archive)
    blob = prepare_blob(archive, sha256)
    if isinstance(target, LayoutRef) and target.name is None:
        blob = _hash_if_needed(blob)  # the name holds the digest: needed before the copy
        target = target.with_name(f"{default_repository(meta)}:{ImageSpec(meta).tag_for(blob)}")
    spec = ImageSpec(meta, tag=target.tag if isinstance(target, ImageRef) else target.name)
    be = open_backend(backend, target, options, progress)
    try:
        result = be.push(blob, target, spec)
    except RegistryError as exc:
        kept = f"the archive is untouched at {archive}"
        if kept not in str(exc):
            exc.hint = f"{exc.hint}; {kept}" if exc.hint else kept
        raise
    if file_identity(archive) != identity:
        raise LocalStorageError(f"{archive}: changed while it was pushed",
                                hint="the pushed image holds the bytes read; push again")
    with contextlib.suppress(OSError):
        hashcache.store(os.stat(archive), result.archive_sha256)
    if delete_source:
        if result.backend == "buildah":  # its layer is a re-tar: prove the image rebuilds it
            _verify_by_pull(result, archive, options)
        try:
            os.unlink(archive)
        except OSError as exc:
            raise LocalStorageError(f"{archive}: pushed and verified, but not deleted",
                                    why=exc.strerror or "") from None
        result = replace(result, source_deleted=True)
    return result


def pull_archive(ref: str, dest: str, *, backend: str = "native",
                 options: RegistryOptions | None = None, overwrite: bool = False,
                 progress: Progress | None = None) -> PullResult:
    """Write the archive of the checkpoint image ``ref`` to ``dest``, digest-verified."""
    target = parse_target(ref)
    if isinstance(target, LayoutRef) and not os.path.isabs(target.path) and not \
            os.path.exists(target.path):
        raise RegistryError(f"{target.path}: no such OCI layout directory")
    be = open_backend(backend, target, options, progress)
    from forensics.archive.tempfiles import removed_on_signals

    with removed_on_signals():  # SIGTERM/SIGHUP: the partial file goes, as on any failure
        return be.pull(target, dest, overwrite=overwrite)


def _verify_by_pull(result: PushResult, archive: str, options: RegistryOptions | None) -> None:
    with tempfile.TemporaryDirectory(prefix=".csi-verify-",
                                     dir=os.path.dirname(os.path.abspath(archive))) as tmp:
        pulled = pull_archive(result.pinned, os.path.join(tmp, "archive"), options=options)
    if pulled.sha256 != result.archive_sha256:
        raise DigestMismatchError(f"{result.pinned}: rebuilds to sha256:{pulled.sha256}, not "
                                  f"the archive's sha256:{result.archive_sha256}",
                                  hint=f"the archive is kept at {archive}")


def _hash_if_needed(blob: ArchiveBlob) -> ArchiveBlob:
    if blob.sha256:
        return blob
    with open(blob.path, "rb", buffering=0) as f:
        return replace(blob, sha256=hashlib.file_digest(f, "sha256").hexdigest())

