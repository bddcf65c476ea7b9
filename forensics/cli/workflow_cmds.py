"""``csi workflow render|install``: the csi-capture Argo WorkflowTemplate."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from forensics.orchestration.argo import ArgoSettings

_BACKEND = click.option("--backend", type=click.Choice(["native", "buildah"]), default="native",
                        show_default=True, help="How collect-push pushes (buildah: privileged).")
_IMAGE = click.option("--image", default=None, help="The csi image the steps run.")
_NAMESPACE = click.option("--namespace", default=None, help="Where the template lives.")


def argo_options(f: Any) -> Any:
    """``--argo-server``, ``--argo-token-file``, TLS options (shared with ``csi capture``)."""
    options = [
        click.option("--argo-server", envvar="ARGO_SERVER", default=None, metavar="URL",
                     help="The Argo Server (https://HOST:2746; env ARGO_SERVER)."),
        click.option("--argo-token-file", default=None, type=click.Path(dir_okay=False),
                     help="A file holding the Argo bearer token (default: env ARGO_TOKEN)."),
        click.option("--argo-ca-file", default=None, type=click.Path(dir_okay=False),
                     help="The CA bundle that signed the Argo Server's certificate."),
        click.option("--argo-insecure-skip-verify", is_flag=True,
                     envvar="ARGO_INSECURE_SKIP_VERIFY",
                     help="Do not verify the Argo Server's TLS certificate."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def argo_settings(server: str, namespace: str, token_file: str | None, ca_file: str | None,
                  insecure: bool) -> ArgoSettings:
    from forensics.orchestration.argo import ArgoSettings, read_token

    verify: bool | str = False if insecure else (ca_file or True)
    return ArgoSettings(server=server, namespace=namespace, token=read_token(token_file),
                        verify=verify)


@click.group()
def workflow() -> None:
    """The csi-capture Argo WorkflowTemplate (defined in hera, in workflows/)."""


@workflow.command()
@click.option("--out-dir", "--output-dir", "output_dir", default=None,
              type=click.Path(file_okay=False),
              help="Write csi-capture.yaml here (default: stdout).")
@_BACKEND
@_IMAGE
@_NAMESPACE
def render(output_dir: str | None, backend: str, image: str | None,
           namespace: str | None) -> None:
    """Write the WorkflowTemplate as YAML (deploy/workflows/ holds the default one)."""
    from workflows import capture

    text = capture.render(backend, image or capture.IMAGE, namespace or capture.NAMESPACE)
    if output_dir is None:
        click.echo(text, nl=False)
        return
    from pathlib import Path

    path = Path(output_dir) / f"{capture.NAME}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    click.echo(str(path))


@workflow.command()
@click.option("--context", default=None, help="The kubeconfig context to use.")
@click.option("--kubeconfig", default=None, type=click.Path(dir_okay=False))
@argo_options
@_BACKEND
@_IMAGE
@_NAMESPACE
def install(context: str | None, kubeconfig: str | None, argo_server: str | None,
            argo_token_file: str | None, argo_ca_file: str | None,
            argo_insecure_skip_verify: bool, backend: str, image: str | None,
            namespace: str | None) -> None:
    """Create or update the WorkflowTemplate through the Kubernetes API (or, with
    --argo-server, through the Argo Server)."""
    from workflows import capture

    ns = namespace or capture.NAMESPACE
    document = capture.build(backend, image or capture.IMAGE, ns).to_dict()
    if argo_server:
        from workflows.install import install_via_argo

        settings = argo_settings(argo_server, ns, argo_token_file, argo_ca_file,
                                 argo_insecure_skip_verify)
        done = install_via_argo(document, settings)
    else:
        from workflows.install import install as apply

        done = apply(document, kubeconfig, context)
    click.echo(f"workflowtemplate {ns}/{capture.NAME} {done}")
