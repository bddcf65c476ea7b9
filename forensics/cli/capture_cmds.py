"""``csi capture pod|container`` and ``csi gc``: take evidence, keep nodes tidy."""

from __future__ import annotations

from typing import Any

import click

from forensics.cli.output import dump, output_option
from forensics.cli.progress import TransferBars, transfer_bars
from forensics.cli.workflow_cmds import argo_options
from forensics.paths import KUBELET_CHECKPOINT_DIR


def _progress(quiet: bool, bars: TransferBars | None = None) -> Any:
    """One line per pipeline step on stderr (rich when stderr is a terminal); ``bars``
    (on a terminal): each step ends the last transfer's bar, the next one is named
    after the step (push, pull)."""
    if quiet:
        return None
    from forensics.cli.common import stderr
    from forensics.visible import escape

    console = bars.console if bars is not None else stderr()

    def step(name: str, detail: str) -> None:  # detail names the container: not markup
        if bars is not None:
            bars.start(name)
        console.print(f"[bold cyan]{name:>10}[/] {escape(detail)}", highlight=False, markup=True,
                      soft_wrap=True)

    return step


def _finish(results: list[dict[str, Any]], output: str) -> None:
    if output != "text":
        dump(results if len(results) != 1 else results[0], output)
    else:
        for r in results:
            click.echo(f"archive sha256 {r['archive_sha256']} ({r['archive_size']} bytes)")
            click.echo(f"image {r['image_ref']}")
            if r["report_id"]:
                click.echo(f"report {r['report_id']} (verdict {r['verdict']}): "
                           f"csi report show {r['report_id']}")
    failed = [r["error"] for r in results if r.get("error")]
    if failed:  # the image is stored and named above; its analysis failed
        from forensics.capture.errors import CaptureError

        raise CaptureError(failed[0], permanent=True)


def _common(f: Any) -> Any:
    options = [
        click.option("--reason", default="", help="Why (recorded in the report)."),
        click.option("--registry", default=None,
                     help="Push to REPO (default: the OCI layout in the csi home)."),
        click.option("--backend", type=click.Choice(["native", "buildah"]), default="native",
                     show_default=True, help="How to push the checkpoint image."),
        click.option("--analyze/--no-analyze", default=True, show_default=True,
                     help="Analyze the pulled-back copy and save a signed report."),
        click.option("--keep-archive", is_flag=True,
                     help="Keep the archive after a verified push (it is deleted by default)."),
        output_option(dest="output"),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.group()
def capture() -> None:
    """Checkpoint a running container and keep it as evidence."""


@capture.command()
@click.argument("name")
@click.option("-n", "--namespace", default=None, help="Default: the context's namespace.")
@click.option("-c", "--container", default=None, help="Default: the pod's only container.")
@click.option("--all-containers", is_flag=True, help="Checkpoint every container of the pod.")
@click.option("--context", default=None, help="The kubeconfig context to use.")
@click.option("--kubeconfig", default=None, type=click.Path(dir_okay=False))
@click.option("--timeout", "timeout_s", type=click.IntRange(min=1), default=None,
              help="Seconds the kubelet may take to checkpoint.")
@click.option("--checkpoint-dir", default=KUBELET_CHECKPOINT_DIR, show_default=True,
              help="Where the node's kubelet writes checkpoints.")
@click.option("--dry-run", is_flag=True, help="Resolve the pod and say what would happen.")
@click.option("--via", type=click.Choice(["local", "argo"]), default="local", show_default=True,
              help="local: run the pipeline here; argo: submit the csi-capture Workflow.")
@argo_options
@click.option("--argo-namespace", envvar="ARGO_NAMESPACE", default="csi", show_default=True,
              help="Where csi-capture is installed and its Workflows run.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="With --via argo: follow the Workflow until it ends.")
@_common
def pod(name: str, namespace: str | None, container: str | None, all_containers: bool,
        context: str | None, kubeconfig: str | None, timeout_s: int | None,
        checkpoint_dir: str, dry_run: bool, via: str, argo_server: str | None,
        argo_token_file: str | None, argo_ca_file: str | None, argo_insecure_skip_verify: bool,
        argo_namespace: str, wait: bool, reason: str, registry: str | None, backend: str,
        analyze: bool, keep_archive: bool, output: str) -> None:
    """Checkpoint a pod's container(s) through the kubelet Checkpoint API (here, or with
    --via argo as an Argo Workflow in the cluster)."""
    from forensics.capture.kube import connect
    from forensics.names import require_k8s
    from forensics.orchestration.pipeline import Settings, run_capture
    from forensics.orchestration.request import CaptureRequest, Target, Trigger
    from forensics.report.provenance import current_user

    require_k8s(pod=name, namespace=namespace, container=container)  # before any API call

    if via == "argo":
        from forensics.cli.workflow_cmds import argo_settings

        if registry or keep_archive or not analyze:
            from forensics.errors import UsageError

            raise UsageError("--registry, --keep-archive and --no-analyze do not apply to "
                             "--via argo", hint="the csi-capture template and the csi-config "
                             "ConfigMap decide them")
        if not argo_server:
            from forensics.errors import UsageError

            raise UsageError("--via argo needs --argo-server URL (or $ARGO_SERVER)")
        argo_at = argo_settings(argo_server, argo_namespace, argo_token_file, argo_ca_file,
                                 argo_insecure_skip_verify)
        _via_argo(name, namespace, container, all_containers, kubeconfig, context,
                         reason, argo_at, wait=wait, dry_run=dry_run, output=output,
                         progress=_progress(output != "text"))
        return
    with connect(kubeconfig, context) as kube:
        resolved = kube.resolve_pod(name, namespace, container, all_containers)
    containers = resolved.containers if (all_containers or not container) else [container]
    if dry_run:
        plan = [{"node": resolved.node, "namespace": resolved.namespace, "pod": resolved.pod,
                 "container": c, "path": f"/api/v1/nodes/{resolved.node}/proxy/checkpoint/"
                 f"{resolved.namespace}/{resolved.pod}/{c}"} for c in containers]
        if output != "text":
            dump(plan, output)
        else:
            for p in plan:
                click.echo(f"would checkpoint {p['namespace']}/{p['pod']}/{p['container']} "
                           f"on node {p['node']}: POST {p['path']}")
        return
    results = []
    with transfer_bars() as bars:
        settings = Settings(registry_backend=backend, kubeconfig=kubeconfig, context=context,
                            checkpoint_dir=checkpoint_dir, progress=bars)
        for c in containers:
            request = CaptureRequest(
                target=Target("kubernetes", c, resolved.namespace, resolved.pod, resolved.node),
                trigger=Trigger("responder", reason=reason, responder=current_user()),
                registry=registry, analyze=analyze, keep_node_copy=keep_archive,
                timeout_s=timeout_s)
            results.append(run_capture(request, settings,
                                       _progress(output != "text", bars)).to_dict())
    _finish(results, output)


def _via_argo(name: str, namespace: str | None, container: str | None, all_containers: bool,
              kubeconfig: str | None, context: str | None, reason: str, settings: Any, *,
              wait: bool, dry_run: bool, output: str, progress: Any) -> None:
    """Submit csi-capture per container (the pod is resolved through Kubernetes only when
    -n and -c do not name it), then follow each Workflow."""
    from forensics.orchestration import argo
    from forensics.orchestration.request import CaptureRequest, Target, Trigger
    from forensics.report.provenance import current_user

    node = ""
    if namespace and container and not all_containers:
        containers = [container]
    else:
        from forensics.capture.kube import connect

        with connect(kubeconfig, context) as kube:
            resolved = kube.resolve_pod(name, namespace, container, all_containers)
        namespace, node = resolved.namespace, resolved.node
        containers = resolved.containers if (all_containers or not container) else [container]
    requests = [CaptureRequest(target=Target("kubernetes", c, namespace, name, node),
                               trigger=Trigger("responder", reason=reason,
                                               responder=current_user()))
                for c in containers]
    if dry_run:
        for planned in requests:
            click.echo(f"would submit {argo.TEMPLATE} in {settings.namespace} at "
                       f"{settings.server}: {' '.join(argo.parameters(planned)[:4])}")
        return
    results: list[dict[str, str]] = []
    for request in requests:
        workflow = argo.submit_capture(request, settings)
        if progress:
            progress("submitted", f"workflow {settings.namespace}/{workflow}")
        if not wait:
            results.append({"workflow": workflow, "namespace": settings.namespace,
                            "phase": "Submitted"})
            continue

        def on_step(step: str, phase: str, message: str) -> None:
            if progress:
                progress(step, phase + (f": {message}" if message else ""))

        results.append(argo.check(argo.follow(workflow, settings, on_step)).to_dict())
    if output != "text":
        dump(results if len(results) != 1 else results[0], output)
        return
    for r in results:
        click.echo(f"workflow {r['namespace']}/{r.get('name', r.get('workflow'))} {r['phase']}")
        if r.get("image_ref"):
            click.echo(f"image {r['image_ref']}")
        if r.get("report_id"):
            click.echo(f"report {r['report_id']} (verdict {r['verdict']})")


@capture.command(name="container")
@click.argument("name")
@click.option("--runtime", type=click.Choice(["podman"]), default="podman", show_default=True)
@_common
def container_cmd(name: str, runtime: str, reason: str, registry: str | None, backend: str,
                  analyze: bool, keep_archive: bool, output: str) -> None:
    """Checkpoint a container on this Podman host (no Kubernetes)."""
    from forensics.names import podman_ref_problem, require
    from forensics.orchestration.pipeline import Settings, run_capture
    from forensics.orchestration.request import CaptureRequest, Target, Trigger
    from forensics.report.provenance import current_user

    require(podman_ref_problem, "podman container name or id", name)  # before podman runs

    request = CaptureRequest(
        target=Target("podman", name),
        trigger=Trigger("responder", reason=reason, responder=current_user()),
        registry=registry, analyze=analyze, keep_node_copy=keep_archive)
    with transfer_bars() as bars:
        result = run_capture(request, Settings(registry_backend=backend, progress=bars),
                             _progress(output != "text", bars))
    _finish([result.to_dict()], output)


@click.command()
@click.argument("directory", default=KUBELET_CHECKPOINT_DIR,
                type=click.Path(file_okay=False))
@click.option("--max-per-container", type=click.IntRange(min=0), default=None,
              help="Keep at most N archives per pod/container (newest first).")
@click.option("--max-age", default=None, help="Delete archives older than this (30m, 12h, 7d).")
@click.option("--max-total-size", default=None,
              help="Then delete the oldest until the total is under this (500M, 20G).")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
def gc(directory: str, max_per_container: int | None, max_age: str | None,
       max_total_size: str | None, dry_run: bool) -> None:
    """Prune checkpoint archives on a node (the kubelet's directory by default)."""
    from forensics.capture.retention import Policy, parse_age, parse_size, prune

    policy = Policy(max_per_container=max_per_container,
                    max_age=parse_age(max_age) if max_age else None,
                    max_total=parse_size(max_total_size) if max_total_size else None)
    for victim in prune(directory, policy, dry_run=dry_run):
        click.echo(f"{'would delete' if dry_run else 'deleted'} {victim.path} ({victim.why})")
