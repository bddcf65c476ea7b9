"""``csi workflow render|install``: the csi-capture Argo WorkflowTemplate."""

from __future__ import annotations

import click

_BACKEND = click.option("--backend", type=click.Choice(["native", "buildah"]), default="native",
                        show_default=True, help="How collect-push pushes (buildah: privileged).")
_IMAGE = click.option("--image", default=None, help="The csi image the steps run.")
_NAMESPACE = click.option("--namespace", default=None, help="Where the template lives.")


@click.group()
def workflow() -> None:
    """The csi-capture Argo WorkflowTemplate (defined in hera, in workflows/)."""


@workflow.command()
@click.option("-o", "--output-dir", default=None, type=click.Path(file_okay=False),
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
@_BACKEND
@_IMAGE
@_NAMESPACE
def install(context: str | None, kubeconfig: str | None, backend: str, image: str | None,
            namespace: str | None) -> None:
    """Create or update the WorkflowTemplate through the Kubernetes API."""
    from workflows import capture
    from workflows.install import install as apply

    document = capture.build(backend, image or capture.IMAGE,
                             namespace or capture.NAMESPACE).to_dict()
    done = apply(document, kubeconfig, context)
    click.echo(f"workflowtemplate {document['metadata']['namespace']}/{capture.NAME} {done}")


def register(group: click.Group) -> None:
    group.add_command(workflow)
