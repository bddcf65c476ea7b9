"""The capture pipeline: checkpoint → hash → push → pull back and verify → analyze → report.

The same steps run under every executor: ``csi capture`` and the receiver's
local executor call :func:`run_capture` in-process; an Argo workflow runs
them as separate ``csi step`` containers. Evidence rules hold throughout:
the archive is hashed once, when it is written; it is never modified; the
copy that is analysed is pulled back from where it was stored and must
have that same sha256; the capture's archive is deleted only after a
verified push (and never when ``keep_node_copy``).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from forensics.archive import hashcache
from forensics.capture.errors import CaptureError
from forensics.orchestration.request import CaptureRequest, CaptureResult
from forensics.paths import KUBELET_CHECKPOINT_DIR

if TYPE_CHECKING:
    from forensics.capture.kubelet import CheckpointResult
    from forensics.report.publish import StoredReport
    from forensics.storage.base import Progress

Step = Callable[[str, str], None]
"""Called as ``step(name, detail)`` when a step starts: checkpoint, hash, push, ..."""

CHUNK = 4 << 20
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """Where things go; from the CLI flags or the receiver's configuration."""

    work_dir: str = ""  # pulled copies; default: a temp dir
    archive_dir: str = ""  # podman archives; default: $CSI_HOME/archives
    registry_backend: str = "native"  # or "buildah"
    kubeconfig: str | None = None
    context: str | None = None
    checkpoint_dir: str = KUBELET_CHECKPOINT_DIR
    progress: Progress | None = None  # told the bytes of the push and the pull (CLI bars)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sha256_file(path: str) -> tuple[str, int]:
    """The sha256 and size of a file, streamed."""
    import hashlib

    with open(path, "rb", buffering=0) as f:
        digest = hashlib.file_digest(f, "sha256")
        return digest.hexdigest(), f.tell()


def run_capture(request: CaptureRequest, settings: Settings | None = None,
                step: Step | None = None) -> CaptureResult:
    """Run the whole capture; a failing step raises its CsiError (``permanent`` says whether a
    retry can help) and leaves the archive where it is. Once the image is pushed, a failing
    analysis or report no longer raises: the result names the image and says what failed in
    ``error`` (the receiver journals it as a failed capture that refers to its evidence)."""
    settings = settings or Settings()
    say = step or (lambda name, detail: None)
    result = CaptureResult(request_id=request.id)
    work = settings.work_dir or tempfile.mkdtemp(prefix="csi-capture-")
    os.makedirs(work, mode=0o700, exist_ok=True)
    owned_work = not settings.work_dir
    try:
        archive, node = _checkpoint(request, settings, work, result, say)
        say("hash", archive)
        result.archive_sha256, result.archive_size = sha256_file(archive)
        result.archive_path = archive
        hashcache.store(os.stat(archive), result.archive_sha256)
        result.timeline["archive hashed"] = _iso(datetime.now(UTC))
        push(request, settings, archive, node, result, say)
        if request.analyze:
            try:
                analyze_stored(request, settings, work, node, result, say)
            except Exception as exc:  # the image is stored: the result must still name it
                result.error = analysis_failed(result, exc)
        return result
    finally:
        if owned_work:
            shutil.rmtree(work, ignore_errors=True)


def analysis_failed(result: CaptureResult, exc: Exception) -> str:
    """The capture's error when the evidence is stored but its analysis or report failed:
    the result keeps ``image_ref``, so no image is left that nothing refers to."""
    from forensics.errors import CsiError

    if not isinstance(exc, CsiError):  # a bug in csi, not a property of the evidence
        log.error("capture %s: analysis crashed", result.request_id, exc_info=exc)
    detail = str(exc) if isinstance(exc, CsiError) else f"{type(exc).__name__}: {exc}"
    return (f"the evidence is stored as {result.image_ref}, but its analysis failed: {detail}; "
            f"analyze it again with `csi pull {result.image_ref} -f FILE` "
            "then `csi analyze FILE --save`")


def _checkpoint(request: CaptureRequest, settings: Settings, work: str,
                result: CaptureResult, say: Step) -> tuple[str, str]:
    target = request.target
    if target.backend == "podman":
        from forensics.capture import podman
        from forensics.paths import csi_home

        say("checkpoint", f"podman container {target.container}")
        # under the csi home, not the work dir: a kept archive (or one whose push failed)
        # must outlive this run
        archives = settings.archive_dir or str(csi_home() / "archives")
        local = podman.checkpoint(target.container, archives)
        result.timeline["checkpoint requested"] = _iso(local.requested_at)
        result.timeline["checkpoint written"] = _iso(local.written_at)
        return local.path, ""
    done = checkpoint_kubernetes(request, settings, result, say)
    if not os.path.isfile(done.path_on_node):
        raise CaptureError(
            f"the checkpoint is on node {done.node} at {done.path_on_node}, not on this machine",
            why="the local executor can only collect archives written where it runs",
            hint="run `csi step collect-push` on that node (the csi-capture workflow does), "
                 "or run the receiver as a DaemonSet on the nodes",
            permanent=True)
    return done.path_on_node, done.node


def checkpoint_kubernetes(request: CaptureRequest, settings: Settings, result: CaptureResult,
                          say: Step) -> CheckpointResult:
    """Ask the node's kubelet (through the API server's node proxy) for a checkpoint.

    Resolves the pod (and its node) first; records both clocks in ``result.timeline``.
    The archive stays on the node: collecting it is the caller's business.
    """
    from forensics.capture.kube import connect
    from forensics.capture.kubelet import ApiServerProxy, KubeletClient

    target = request.target
    with connect(settings.kubeconfig, settings.context) as kube:
        namespace = target.namespace or kube.namespace
        if target.container_id and not target.container:
            pod = kube.find_container_by_id(namespace, target.pod, target.container_id)
        else:
            pod = kube.resolve_pod(target.pod, namespace, target.container or None)
        container = target.container or pod.containers[0]
        say("checkpoint", f"{namespace}/{pod.pod}/{container} on node {pod.node}")
        client = KubeletClient(ApiServerProxy(kube), checkpoint_dir=settings.checkpoint_dir)
        done = client.checkpoint(pod.node, namespace, pod.pod, container, request.timeout_s)
    result.timeline["checkpoint requested"] = _iso(done.requested_at)
    result.timeline["checkpoint written"] = _iso(done.written_at)
    return done


def push(request: CaptureRequest, settings: Settings, archive: str, node: str,
         result: CaptureResult, say: Step, *, delete_source: bool | None = None) -> None:
    """Store the hashed archive (``result.archive_sha256``) as a checkpoint image.

    Fills ``image_ref`` (pinned by digest) and ``manifest_digest``; ``delete_source``
    (default: ``not request.keep_node_copy``) removes the archive after a verified push.
    """
    from forensics.storage.api import push_archive

    say("push", request.registry or "the OCI layout in the csi home")
    alert = request.trigger.alert
    pushed = push_archive(
        archive, request.registry, backend=settings.registry_backend,
        sha256=result.archive_sha256, alert_rule=alert.rule if alert else "", node=node,
        delete_source=(not request.keep_node_copy) if delete_source is None else delete_source,
        progress=settings.progress,
    )
    if pushed.archive_sha256 != result.archive_sha256:
        raise CaptureError(f"the registry stored {pushed.archive_sha256}, the capture hashed "
                           f"{result.archive_sha256}", why="the archive changed in transit")
    # registries: pinned by digest; an OCI layout is addressed by name, and the pull
    # below checks that the manifest it finds is the one pushed
    result.image_ref = pushed.target if pushed.target.startswith("oci:") else pushed.pinned
    result.manifest_digest = pushed.manifest_digest
    if pushed.source_deleted:
        result.archive_path = ""
    result.timeline["pushed"] = _iso(datetime.now(UTC))


def analyze_stored(request: CaptureRequest, settings: Settings, work: str, node: str,
                   result: CaptureResult, say: Step, *, captured_by: str = "local"
                   ) -> StoredReport:
    """Analyze the copy pulled back from storage (it must be the archive captured) and
    store the signed report; ``result`` gets the report id, verdict and timeline."""
    from forensics.report.publish import StoredReport
    from forensics.report.store import ReportStore
    from forensics.storage.api import pull_archive

    say("pull", result.image_ref)
    copy = os.path.join(work, f"pulled-{result.archive_sha256[:16]}.tar")
    pulled = pull_archive(result.image_ref, copy, backend=settings.registry_backend,
                          overwrite=True, progress=settings.progress)
    started = datetime.now(UTC)
    say("analyze", copy)
    if pulled.digest != result.manifest_digest:
        raise CaptureError(f"{result.image_ref} now names manifest {pulled.digest}, not the "
                           f"{result.manifest_digest} pushed",
                           why="the image was replaced after the push")
    # the analysis runs in a memory-limited worker: a hostile checkpoint costs this
    # capture, never the receiver (forensics/analysis/worker.py)
    from forensics.analysis.worker import run_in_worker

    done = run_in_worker("forensics.orchestration.analyze_job:analyze_pulled", {
        "copy": copy, "pulled_sha256": pulled.sha256, "request": request.to_dict(),
        "result": result.to_dict(), "node": node,
        "captured_by": captured_by, "started": _iso(started)})
    result.timeline["analyzed"] = done["timeline"]["analyzed"]
    say("report", "")
    result.report_id, result.verdict = done["report_id"], done["verdict"]
    result.timeline["reported"] = done["timeline"]["reported"]
    stored = StoredReport(result.report_id, ReportStore().directory(result.report_id),
                          ReportStore().resolve(result.report_id))
    os.unlink(copy)
    return stored

