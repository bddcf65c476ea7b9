"""``csi step checkpoint|collect-push|analyze|cleanup``: one step of the csi-capture workflow.

Each step's container runs one of these. Outputs go one file per name into
``--output-dir`` (Argo reads them with ``valueFrom.path``) and, as one JSON
object, to stdout. Exit status: 0 done; 75 (EX_TEMPFAIL) a temporary failure
(unreachable API server, kubelet or registry, timeouts, 5xx): the workflow's
retry strategy retries only that; any other non-zero status is permanent
(2 usage or archive, 3 capture or tool, 1 other csi errors, 70 a bug).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from forensics.paths import KUBELET_CHECKPOINT_DIR

log = logging.getLogger("csi.step")
LOG_FORMAT = "%(asctime)s csi step %(levelname)s %(message)s"

if TYPE_CHECKING:
    from forensics.orchestration.pipeline import Settings
    from forensics.orchestration.steps import Outputs, StepInput


_LOG_FORMAT = click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
                           show_default=True, envvar="CSI_LOG_FORMAT",
                           help="Log lines on stderr as text or one JSON object each.")


def _logging(fmt: str) -> None:
    from forensics.receiver.logs import setup_logging

    setup_logging("info", fmt, LOG_FORMAT)


def _target_options(f: Any) -> Any:
    options = [
        click.option("--namespace", required=True, help="The pod's namespace."),
        click.option("--pod", required=True, help="The pod's name."),
        click.option("--container", required=True, help="The container to checkpoint."),
        click.option("--node", default="", help="The pod's node (checked, when given)."),
        click.option("--reason", default="", help="Why (recorded in the report)."),
        click.option("--alert", default="", help="The Falco alert JSON, if any."),
        click.option("--registry", default="",
                     help="Push to REPO (default: $CSI_REGISTRY, else the csi home's layout)."),
        click.option("--backend", type=click.Choice(["native", "buildah"]), default="native",
                     show_default=True, help="How to push and pull the checkpoint image."),
        click.option("--checkpoint-dir", default=KUBELET_CHECKPOINT_DIR,
                     show_default=True, help="The kubelet's checkpoint directory."),
        click.option("--kubeconfig", default=None, help="Default: in-cluster service account."),
        click.option("--output-dir", default="", help="Write each output to a file here."),
        _LOG_FORMAT,
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _run(output_dir: str, call: Callable[[], Outputs]) -> None:
    """Run one step; a temporary CsiError becomes exit status 75, outputs go to files."""
    from forensics.cli.common import dump_json
    from forensics.errors import CsiError
    from forensics.orchestration.steps import TemporaryFailure, write_outputs

    name = click.get_current_context().info_name
    log.info("step %s: started", name)
    try:
        outputs = call()
    except CsiError as exc:
        log.info("step %s: failed (%s)", name, "permanent" if exc.permanent else "temporary")
        if not exc.permanent and not isinstance(exc, TemporaryFailure):
            raise TemporaryFailure(exc) from exc
        raise
    if output_dir:
        write_outputs(output_dir, outputs)
    log.info("step %s: done", name)
    dump_json(outputs)


def _context(kw: dict[str, Any]) -> tuple[StepInput, Settings]:
    from forensics.orchestration.pipeline import Settings
    from forensics.orchestration.steps import StepInput
    _logging(kw.pop("log_format"))
    step = StepInput(kw.pop("namespace"), kw.pop("pod"), kw.pop("container"), kw.pop("node"),
                     kw.pop("reason"), kw.pop("alert"), kw.pop("registry"))
    settings = Settings(registry_backend=kw.pop("backend"), kubeconfig=kw.pop("kubeconfig"),
                        checkpoint_dir=kw.pop("checkpoint_dir"), work_dir=kw.pop("work_dir", ""))
    return step, settings


@click.group()
def step() -> None:
    """One step of the csi-capture Argo workflow (exit 75: temporary, retry)."""


@step.command(name="checkpoint")
@_target_options
def checkpoint_cmd(**kw: Any) -> None:
    """Ask the kubelet, through the API server proxy, to checkpoint the container."""
    from forensics.orchestration import steps

    output_dir = kw.pop("output_dir")
    stepin, settings = _context(kw)
    _run(output_dir, lambda: steps.checkpoint(stepin, settings))


@step.command(name="collect-push")
@_target_options
@click.option("--archive", required=True, help="The archive's path on this node.")
def collect_push_cmd(archive: str, **kw: Any) -> None:
    """On the archive's node: hash it and push it as a checkpoint image (kept on the node)."""
    from forensics.orchestration import steps

    output_dir = kw.pop("output_dir")
    stepin, settings = _context(kw)
    _run(output_dir, lambda: steps.collect_push(stepin, settings, archive))


@step.command(name="analyze")
@_target_options
@click.option("--image-ref", required=True, help="The image, pinned by digest.")
@click.option("--manifest-digest", required=True, help="The manifest digest pushed.")
@click.option("--sha256", required=True, help="The archive's sha256 taken at capture.")
@click.option("--size", type=int, default=0, help="The archive's size at capture.")
@click.option("--archive", default="", help="The archive's path on the node (custody).")
@click.option("--checkpoint-requested", default="", help="RFC 3339 time (custody).")
@click.option("--checkpoint-written", default="", help="RFC 3339 time (custody).")
@click.option("--pushed", default="", help="RFC 3339 time (custody).")
@click.option("--workflow", default="", help="The Argo workflow's name (custody).")
@click.option("--report-dir", default="", help="Copy report.json/.html/.md here.")
@click.option("--work-dir", default="", help="Where the pulled copy goes (a temp dir).")
def analyze_cmd(image_ref: str, manifest_digest: str, sha256: str, size: int, archive: str,
                checkpoint_requested: str, checkpoint_written: str, pushed: str,
                workflow: str, report_dir: str, **kw: Any) -> None:
    """Pull by digest, verify the sha256, run the analyzers, write the signed report."""
    import os

    from forensics.orchestration import steps

    output_dir = kw.pop("output_dir")
    stepin, settings = _context(kw)
    record = steps.Pushed(image_ref, manifest_digest, sha256, size, archive,
                          checkpoint_requested, checkpoint_written, pushed)
    reports = report_dir or os.path.join(output_dir or ".", "report")
    _run(output_dir, lambda: steps.analyze(stepin, settings, record, reports,
                                           workflow=workflow))


@step.command(name="cleanup")
@click.option("--archive", default="", help="The archive's path on this node ('' = none).")
@click.option("--image-ref", default="", help="The image pushed ('' = not pushed: keep).")
@click.option("--sha256", default="", help="The archive's sha256 ('' = not pushed: keep).")
@click.option("--backend", type=click.Choice(["native", "buildah"]), default="native",
              show_default=True)
@click.option("--checkpoint-dir", default=KUBELET_CHECKPOINT_DIR, show_default=True)
@click.option("--output-dir", default="", help="Write each output to a file here.")
@_LOG_FORMAT
def cleanup_cmd(archive: str, image_ref: str, sha256: str, backend: str, checkpoint_dir: str,
                output_dir: str, log_format: str) -> None:
    """Delete the node's archive after a verified push; keep it otherwise."""
    from forensics.orchestration import steps
    from forensics.orchestration.pipeline import Settings

    _logging(log_format)
    settings = Settings(registry_backend=backend, checkpoint_dir=checkpoint_dir)
    _run(output_dir, lambda: steps.cleanup(archive, image_ref, sha256, settings))
