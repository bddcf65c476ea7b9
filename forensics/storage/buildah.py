"""The buildah backend: the classic buildah sequence, run through :mod:`forensics.run`.

Push: ``buildah from scratch``, ``buildah add CTR ARCHIVE /``, ``buildah config
--annotation …``, ``buildah commit``, ``buildah push`` (uncompressed, OCI), then
an image index carrying the annotations for containerd (``buildah manifest
create/add --annotation/push``). ``buildah add`` extracts the archive and
``commit`` tars it again, so the layer is *not* the archive: a tar-split
sidecar (:mod:`.tarsplit`) is added next to it so that any csi pull rebuilds
the archive byte for byte. Pull: ``skopeo copy docker://… dir:TMP`` (skopeo
verifies blob digests and, unlike ``oci:``, keeps a plain tar layer as it
is), then the same verified extraction as every other pull.

Every call passes its operands after ``--`` (buildah, skopeo: cobra ends flags
there) and options with values as ``--flag=value``; the archive goes as an
absolute path, since ``buildah add`` refuses an operand that starts with ``-``
even after ``--``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import uuid
from dataclasses import replace

from forensics.run import run
from forensics.storage import oci
from forensics.storage.annotations import CSI_TARSPLIT
from forensics.storage.auth import auth_files
from forensics.storage.base import (
    ArchiveBlob,
    ImageSpec,
    PullResult,
    PushResult,
    RegistryOptions,
    sha256_digest,
)
from forensics.storage.errors import (
    BadReferenceError,
    RegistryAuthError,
    RegistryError,
    RegistryStorageFullError,
    RegistryTLSError,
    RegistryUnavailableError,
    ToolError,
)
from forensics.storage.reference import ImageRef, Target
from forensics.storage.tarsplit import SIDECAR_PATH, build

BUILDAH = ("buildah", "--storage-driver", "vfs")
TIMEOUT = 3600.0
_TRANSIENT = ("connection refused", "i/o timeout", "connection reset", "eof",
              "503 service unavailable", "502 bad gateway", "tls handshake timeout")


def _tool_env(tmp: str) -> dict[str, str]:
    """buildah fails outright when $DOCKER_CONFIG names a directory without config.json."""
    docker = os.environ.get("DOCKER_CONFIG")
    if not docker or os.path.isfile(os.path.join(docker, "config.json")):
        return {}
    empty = os.path.join(tmp, "docker-config")
    os.makedirs(empty, exist_ok=True)
    with open(os.path.join(empty, "config.json"), "w", encoding="ascii") as f:
        f.write("{}")
    return {"DOCKER_CONFIG": empty}


def _registry_ref(target: Target) -> ImageRef:
    if not isinstance(target, ImageRef):
        raise BadReferenceError(f"{target}: the buildah backend pushes to registries")
    return target


def translate(exc: ToolError, what: str, archive: str = "") -> RegistryError:
    """A failed buildah/skopeo run as the registry error it stands for."""
    text = exc.stderr.lower()
    kept = f"; the archive is untouched at {archive}" if archive else ""
    if "unauthorized" in text or "authentication required" in text or "denied" in text:
        return RegistryAuthError(f"{what}: the registry refused the credentials",
                                 why=exc.why, hint="check --authfile/--creds" + kept)
    if "x509" in text or "certificate" in text or "server gave http response" in text:
        return RegistryTLSError(f"{what}: TLS failed", why=exc.why,
                                hint="pass --ca-file, or --no-tls-verify" + kept)
    if "no space left on device" in text:
        return RegistryStorageFullError(f"{what}: no space left on device", why=exc.why,
                                        hint="free space" + kept)
    if any(t in text for t in _TRANSIENT) or not exc.permanent:
        return RegistryUnavailableError(f"{what}: the registry is unreachable", why=exc.why,
                                        hint="run the push again" + kept)
    if not exc.stderr and "not installed" in exc.what:
        return RegistryError(exc.what, hint=exc.hint)
    return RegistryError(f"{what} failed", why=exc.why or exc.what, hint=kept.lstrip("; "))


class BuildahBackend:
    """Pushes with buildah, pulls with skopeo; see the module docstring."""

    name = "buildah"

    def __init__(self, options: RegistryOptions | None = None) -> None:
        self.options = options or RegistryOptions()

    def _access_flags(self, tmp: str, prefix: str = "") -> tuple[list[str], list[str]]:
        """(flags, secrets) for TLS and credentials; ``prefix`` is skopeo's src-/dest-."""
        o = self.options
        flags: list[str] = []
        secrets: list[str] = []
        if not o.tls_verify or o.plain_http:
            flags.append(f"--{prefix}tls-verify=false")
        if o.ca_file or o.cert_file:
            certs = os.path.join(tmp, "certs")
            os.makedirs(certs, exist_ok=True)
            if o.ca_file:
                shutil.copyfile(o.ca_file, os.path.join(certs, "ca.crt"))
            if o.cert_file and o.key_file:
                shutil.copyfile(o.cert_file, os.path.join(certs, "client.cert"))
                shutil.copyfile(o.key_file, os.path.join(certs, "client.key"))
            flags.append(f"--{prefix}cert-dir={certs}")
        if o.username is not None:
            flags.append(f"--{prefix}creds={o.username}:{o.password or ''}")
            secrets.append(o.password or "")
        else:  # the first auth file csi would use; the tools balk at a missing one
            found = next((str(p) for p in auth_files(o.auth_file) if p.is_file()), None)
            if found is None:
                found = os.path.join(tmp, "auth.json")
                with open(found, "w", encoding="ascii") as f:
                    f.write('{"auths": {}}')
            flags.append(f"--{prefix}authfile={found}")
        return flags, secrets

    def push(self, blob: ArchiveBlob, target: Target, spec: ImageSpec) -> PushResult:
        ref = _registry_ref(target)
        if blob.compression != "none":
            raise RegistryError(f"{blob.path}: a {blob.compression}-compressed archive cannot "
                                "be kept byte-identical through buildah (it re-tars)",
                                hint="use the native backend (the default)")
        if not blob.sha256:
            blob = replace(blob, sha256=_sha256(blob.path))
        blob = replace(blob, diff_id=blob.diff_id or blob.sha256)
        annotations = {**spec.annotations(blob), CSI_TARSPLIT: SIDECAR_PATH}
        dest = ref.with_tag(spec.tag_for(blob))
        archive = os.path.abspath(blob.path)  # never read as an option, even after "--"
        tmp = tempfile.mkdtemp(prefix="csi-buildah-")
        unique = uuid.uuid4().hex[:12]
        ctr, image, listname = f"csi-push-{unique}", f"localhost/csi-push-{unique}:latest", \
            f"localhost/csi-push-list-{unique}:latest"
        flags, secrets = self._access_flags(tmp)
        env = _tool_env(tmp)
        try:
            sidecar = os.path.join(tmp, "tar-split.json.gz")
            with open(sidecar, "wb") as f:
                f.write(build(blob.path, blob.sha256))
            b = BUILDAH
            try:
                run([*b, "from", f"--name={ctr}", "--", "scratch"], timeout=120, env=env)
                run([*b, "add", "--", ctr, archive, "/"], timeout=TIMEOUT, env=env)
                run([*b, "copy", "--", ctr, sidecar, f"/{SIDECAR_PATH}"], timeout=120, env=env)
                notes = [f"--annotation={k}={v}" for k, v in annotations.items()]
                run([*b, "config", f"--arch={spec.platform.architecture}",
                     f"--os={spec.platform.os}", *notes, "--", ctr], timeout=120, env=env)
                run([*b, "commit", "-q", "--format", "oci", "--disable-compression", "--", ctr,
                     image], timeout=TIMEOUT, env=env)
                digest_file = os.path.join(tmp, "digest")
                run([*b, "push", "-q", "--format", "oci", "--disable-compression",
                     f"--digestfile={digest_file}", *flags, "--", image, f"docker://{dest}"],
                    timeout=TIMEOUT, secrets=secrets, transient=_TRANSIENT, env=env)
                manifest_digest = _read(digest_file)
                run([*b, "manifest", "create", "--", listname], timeout=120, env=env)
                run([*b, "manifest", "add", *notes, *flags, "--", listname,
                     f"docker://{dest.name}@{manifest_digest}"],
                    timeout=300, secrets=secrets, transient=_TRANSIENT, env=env)
                run([*b, "manifest", "push", "-q", "--format", "oci",
                     f"--digestfile={digest_file}", *flags, "--", listname, f"docker://{dest}"],
                    timeout=300, secrets=secrets, transient=_TRANSIENT, env=env)
                index_digest = _read(digest_file)
            except ToolError as exc:
                raise translate(exc, f"buildah push to {dest}", blob.path) from None
        finally:
            for argv in ([*BUILDAH, "rm", "--", ctr], [*BUILDAH, "manifest", "rm", "--", listname],
                         [*BUILDAH, "rmi", "--", image]):
                with contextlib.suppress(ToolError):
                    run(argv, timeout=120, env=env)
            shutil.rmtree(tmp, ignore_errors=True)
        return PushResult(target=str(dest), digest=index_digest, manifest_digest=manifest_digest,
                          archive_sha256=blob.sha256, size=blob.size, backend=self.name,
                          uploaded_bytes=blob.size)

    def pull(self, target: Target, dest: str, *, overwrite: bool = False) -> PullResult:
        ref = _registry_ref(target)
        tmp = tempfile.mkdtemp(prefix=".csi-skopeo-", dir=os.path.dirname(dest) or ".")
        try:
            flags, secrets = self._access_flags(tmp, prefix="src-")
            copy = os.path.join(tmp, "image")
            try:  # dir: keeps blobs as they are (oci: would compress a plain tar layer)
                run(["skopeo", "copy", "-q", *flags, "--", f"docker://{ref}", f"dir:{copy}"],
                    timeout=TIMEOUT, secrets=secrets, transient=_TRANSIENT,
                    env=_tool_env(tmp))
            except ToolError as exc:
                raise translate(exc, f"skopeo copy from {ref}") from None
            return _from_dir(copy, dest, overwrite=overwrite)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _from_dir(copy: str, dest: str, *, overwrite: bool) -> PullResult:
    """The archive from a skopeo ``dir:`` copy (manifest.json + blobs named by hex digest)."""
    with open(os.path.join(copy, "manifest.json"), "rb") as f:
        raw = f.read()
    manifest = oci.parse_json(raw, f"{copy}/manifest.json")
    annotations = oci.annotations_of(manifest)
    layer = oci.pick_layer(manifest, annotations, copy)
    layer_path = os.path.join(copy, layer.hex)
    if oci.is_direct(layer, annotations):
        sha = oci.copy_file_verified(layer_path, dest, layer, overwrite=overwrite)
        return oci.finish(dest, sha, layer.size, sha256_digest(raw), annotations,
                          reassembled=False)
    sha = oci.rebuild(layer_path, layer, dest, annotations, overwrite=overwrite)
    return oci.finish(dest, sha, os.path.getsize(dest), sha256_digest(raw), annotations,
                      reassembled=True)

def _sha256(path: str) -> str:
    with open(path, "rb", buffering=0) as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _read(path: str) -> str:
    with open(path, encoding="ascii") as f:
        return f.read().strip()
