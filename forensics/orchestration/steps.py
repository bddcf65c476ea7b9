"""The capture pipeline cut into the four steps of the ``csi-capture`` Argo workflow.

Each step is one call of the functions :mod:`forensics.orchestration.pipeline` runs
in-process, plus what a step in its own pod needs: its inputs come as plain
strings (Argo parameters), its outputs are a ``dict[str, str]`` that
:func:`write_outputs` puts one file per name in an output directory, where
Argo's ``valueFrom.path`` reads them.

- :func:`checkpoint` asks the node's kubelet through the API server proxy;
  the archive stays on the node (output ``archive-path``).
- :func:`collect_push` runs on that node, hashes the archive (read-only) and
  pushes it; it never deletes it (outputs ``image-ref``, ``manifest-digest``,
  ``sha256``).
- :func:`analyze` pulls by digest, checks the sha256, analyses and stores the
  signed report, and copies its files out.
- :func:`cleanup` deletes the node's archive only when the registry holds an
  image whose archive has the sha256 the file still has: never otherwise.

Failures raise :class:`~forensics.errors.CsiError`; ``permanent`` tells
whether Argo should retry (``csi step`` exits 75, EX_TEMPFAIL, when not).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime

from forensics.alert import Alert, InvalidAlert, InvalidJson, decode_alert
from forensics.capture.errors import CaptureError
from forensics.errors import CsiError, UsageError
from forensics.names import require_k8s
from forensics.orchestration.pipeline import (
    Settings,
    analyze_stored,
    checkpoint_kubernetes,
    push,
    sha256_file,
)
from forensics.orchestration.request import CaptureRequest, CaptureResult, Target, Trigger
from forensics.status import ExitStatus

EX_TEMPFAIL = ExitStatus.TEMPFAIL
REPORT_FILES = ("report.json", "report.html", "report.md")
Outputs = dict[str, str]


class TemporaryFailure(CsiError):
    """A temporary failure of a step (exit status 75: Argo's retry strategy retries it)."""

    exit_code = EX_TEMPFAIL
    permanent = False

    def __init__(self, cause: CsiError) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclass(frozen=True)
class StepInput:
    """What every step knows about the capture: the workflow's parameters."""

    namespace: str
    pod: str
    container: str
    node: str = ""
    reason: str = ""
    alert: str = ""  # the Falco alert JSON (forensics.alert.encode_alert), or ""
    registry: str = ""  # REPO; "" = $CSI_REGISTRY, else the OCI layout in the csi home

    def __post_init__(self) -> None:  # Argo parameters may carry an alert's fields
        require_k8s(namespace=self.namespace, pod=self.pod, container=self.container or None,
                    node=self.node or None)

    def parsed_alert(self) -> Alert | None:
        """The ``alert`` parameter as a typed alert (parsed as the receiver parses one)."""
        if not self.alert.strip():
            return None
        try:
            return decode_alert(self.alert)
        except InvalidJson as exc:
            raise UsageError(f"--alert is not JSON: {exc}") from None
        except InvalidAlert as exc:
            raise UsageError(f"--alert is not a Falco alert: {exc}") from None

    def request(self) -> CaptureRequest:
        alert = self.parsed_alert()
        trigger = (Trigger("alert", reason=self.reason, alert=alert) if alert is not None
                   else Trigger("responder", reason=self.reason, responder="argo workflow"))
        return CaptureRequest(Target("kubernetes", self.container, self.namespace, self.pod,
                                     self.node), trigger, registry=self.registry or None,
                              keep_node_copy=True)


def write_outputs(directory: str, outputs: Outputs) -> None:
    """One file per output, its value as the whole content (what ``valueFrom.path`` reads)."""
    os.makedirs(directory, exist_ok=True)
    for name, value in outputs.items():
        path = os.path.join(directory, name)
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(value)
        os.replace(tmp, path)


def checkpoint(step: StepInput, settings: Settings) -> Outputs:
    """Checkpoint the container through the kubelet Checkpoint API; the archive stays put."""
    request = step.request()
    result = CaptureResult(request_id=request.id)
    done = checkpoint_kubernetes(request, settings, result, _quiet)
    if step.node and done.node != step.node:
        raise CaptureError(f"pod {step.namespace}/{step.pod} runs on node {done.node}, not "
                           f"{step.node}", why="it moved, or the alert named another node",
                           hint=f"the checkpoint is at {done.path_on_node} on {done.node}")
    return {"archive-path": done.path_on_node, "node": done.node,
            "checkpoint-requested": result.timeline["checkpoint requested"],
            "checkpoint-written": result.timeline["checkpoint written"]}


def collect_push(step: StepInput, settings: Settings, archive: str) -> Outputs:
    """Hash the node's archive and push it as a checkpoint image; the archive is kept."""
    _check_archive_path(archive, settings.checkpoint_dir)
    request = step.request()
    result = CaptureResult(request_id=request.id)
    try:
        result.archive_sha256, result.archive_size = sha256_file(archive)
    except OSError as exc:
        raise CaptureError(f"{archive}: cannot read the archive on node {step.node or '?'}",
                           why=exc.strerror or str(exc),
                           hint="is the step on the archive's node, with the checkpoint "
                           "directory mounted?") from None
    push(request, settings, archive, step.node, result, _quiet, delete_source=False)
    return {"image-ref": result.image_ref, "manifest-digest": result.manifest_digest,
            "sha256": result.archive_sha256, "size": str(result.archive_size),
            "pushed": result.timeline["pushed"]}


@dataclass(frozen=True)
class Pushed:
    """What collect-push produced (and checkpoint recorded), as analyze receives it."""

    image_ref: str
    manifest_digest: str
    sha256: str
    size: int = 0
    archive_path: str = ""
    checkpoint_requested: str = ""
    checkpoint_written: str = ""
    pushed: str = ""


def analyze(step: StepInput, settings: Settings, pushed: Pushed, report_dir: str, *,
            workflow: str = "") -> Outputs:
    """Pull by digest, verify the sha256, analyse, store the signed report, copy it out."""
    if not (pushed.image_ref and pushed.sha256 and pushed.manifest_digest):
        raise UsageError("analyze needs --image-ref, --manifest-digest and --sha256")
    request = step.request()
    result = CaptureResult(request_id=request.id, archive_path=pushed.archive_path,
                           archive_sha256=pushed.sha256, archive_size=pushed.size,
                           image_ref=pushed.image_ref, manifest_digest=pushed.manifest_digest)
    for event, value in (("checkpoint requested", pushed.checkpoint_requested),
                         ("checkpoint written", pushed.checkpoint_written),
                         ("pushed", pushed.pushed)):
        if value:
            result.timeline[event] = value
    work = settings.work_dir or tempfile.mkdtemp(prefix="csi-analyze-")
    os.makedirs(work, mode=0o700, exist_ok=True)
    try:
        stored = analyze_stored(request, settings, work, step.node, result, _quiet,
                                captured_by=f"argo workflow {workflow}" if workflow else "argo")
    finally:
        if not settings.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    os.makedirs(report_dir, exist_ok=True)
    for name in REPORT_FILES:
        shutil.copyfile(stored.file(name), os.path.join(report_dir, name))
    return {"report-id": result.report_id, "verdict": result.verdict}


def cleanup(archive: str, image_ref: str, sha256: str, settings: Settings) -> Outputs:
    """Delete the node's archive once the registry is proven to hold it; else keep it.

    Proof: the image ``image_ref`` pulls back (digest-verified) to an archive
    whose sha256 is ``sha256``, and the file on the node still has that sha256.
    """
    if not archive:
        return {"deleted": "false", "why": "no archive was written"}
    if not os.path.exists(archive):
        return {"deleted": "false", "why": f"{archive} is already gone"}
    if not image_ref or not sha256:
        return {"deleted": "false", "why": "the archive was not pushed: kept as evidence"}
    _check_archive_path(archive, settings.checkpoint_dir)
    from forensics.storage.api import pull_archive

    with tempfile.TemporaryDirectory(prefix="csi-cleanup-", dir=settings.work_dir or None) \
            as tmp:
        pulled = pull_archive(image_ref, os.path.join(tmp, "archive"),
                              backend=settings.registry_backend)
    here, _ = sha256_file(archive)
    if pulled.sha256 != sha256 or here != sha256:
        raise CaptureError(f"{archive}: kept, the registry copy does not prove it",
                           why=f"expected sha256 {sha256}, registry {pulled.sha256}, "
                           f"node {here}", hint="investigate before deleting anything")
    os.unlink(archive)
    return {"deleted": "true", "why": f"verified in {image_ref}"}


def _check_archive_path(archive: str, directory: str) -> None:
    """Only kubelet archives directly in the checkpoint directory are collected or deleted."""
    name = posixpath.basename(archive)
    if (posixpath.dirname(posixpath.normpath(archive)) != posixpath.normpath(directory)
            or not name.startswith("checkpoint-") or not name.endswith(".tar")):
        raise UsageError(f"{archive}: not a kubelet checkpoint archive in {directory}")


def _quiet(name: str, detail: str) -> None:
    """Steps log one line per phase on stderr (Argo keeps the pod's log)."""
    import sys

    print(f"{datetime.now(UTC):%H:%M:%S} {name} {detail}".rstrip(), file=sys.stderr)
