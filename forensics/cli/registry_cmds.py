"""``csi push`` and ``csi pull``: move checkpoint images by hand."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from forensics.cli.output import dump, output_option
from forensics.cli.progress import transfer_bars

if TYPE_CHECKING:
    from forensics.storage.base import RegistryOptions

# The registry modules (requests, urllib3) are imported inside the commands.


def _access_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by push and pull: backend, TLS, credentials."""
    options = [
        click.option("--backend", type=click.Choice(["native", "buildah"]), default="native",
                     show_default=True, help="native: csi's own OCI client; buildah: the "
                     "buildah/skopeo tools."),
        click.option("--plain-http", is_flag=True, envvar="CSI_REGISTRY_PLAIN_HTTP",
                     help="Talk HTTP, not HTTPS."),
        click.option("--tls-verify/--no-tls-verify", default=True, show_default=True,
                     envvar="CSI_REGISTRY_TLS_VERIFY",
                     help="Verify the registry's certificate (--no-tls-verify also allows "
                     "falling back to HTTP)."),
        click.option("--ca-file", type=click.Path(exists=True, dir_okay=False),
                     envvar="CSI_REGISTRY_CA_FILE",
                     help="CA certificate(s) to verify the registry with."),
        click.option("--cert-file", type=click.Path(exists=True, dir_okay=False),
                     help="Client certificate (mutual TLS)."),
        click.option("--key-file", type=click.Path(exists=True, dir_okay=False),
                     help="Client key (mutual TLS)."),
        click.option("--authfile", type=click.Path(dir_okay=False),
                     envvar="CSI_REGISTRY_AUTH_FILE",
                     help="Credentials file (auth.json / docker config.json); default: "
                     "$REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json, "
                     "~/.docker/config.json."),
        click.option("--creds", metavar="USER[:PASSWORD]", help="Credentials (overrides "
                     "the auth files)."),
        output_option(),
    ]
    return functools.reduce(lambda f, opt: opt(f), reversed(options), func)


def _registry_options(plain_http: bool, tls_verify: bool, ca_file: str | None,
                      cert_file: str | None, key_file: str | None, authfile: str | None,
                      creds: str | None, chunk_size: int = 0) -> RegistryOptions:
    from forensics.storage.base import RegistryOptions

    user = password = None
    if creds is not None:
        user, _, password = creds.partition(":")
        if not user:
            raise click.BadParameter("expected USER[:PASSWORD]", param_hint="--creds")
    return RegistryOptions(tls_verify=tls_verify, ca_file=ca_file, cert_file=cert_file,
                           key_file=key_file, plain_http=plain_http, auth_file=authfile,
                           username=user, password=password, chunk_size=chunk_size)


@click.command()
@click.argument("archive", type=click.Path(exists=True, dir_okay=False))
@click.argument("ref", required=False)
@click.option("--sha256", help="The archive's sha256 if known (e.g. taken at capture); the "
              "registry checks it.")
@click.option("--alert-rule", default="", help="The alert that caused the capture.")
@click.option("--node", default="", help="The node the archive came from.")
@click.option("--chunk-size", type=click.IntRange(min=0), default=0, metavar="BYTES",
              help="Upload in PATCH chunks of this size (resume points); 0: one request.")
@click.option("--delete-source", is_flag=True, help="Delete the archive once the push is "
              "verified (never otherwise).")
@_access_options
def push(archive: str, ref: str | None, sha256: str | None, alert_rule: str, node: str,
         chunk_size: int, delete_source: bool, backend: str, fmt: str, **access: Any) -> None:
    """Store a checkpoint ARCHIVE as an OCI image at REF ([HOST/]REPO[:TAG] or oci:DIR[:NAME]).

    Without REF: $CSI_REGISTRY/checkpoints/NAMESPACE/POD, or the OCI layout in
    $CSI_HOME/oci. The image's one layer is the archive itself (its digest is
    the archive's sha256); the annotations CRI-O, containerd and Podman look
    for are set, with csi's own. The archive is never changed.
    """
    from forensics.storage.api import push_archive

    options = _registry_options(chunk_size=chunk_size, **access)
    with transfer_bars("push") as bars:
        result = push_archive(archive, ref, backend=backend, options=options, sha256=sha256,
                              alert_rule=alert_rule, node=node, delete_source=delete_source,
                              progress=bars)
    if fmt != "text":
        dump({**result.__dict__, "pinned": result.pinned}, fmt)
        return
    click.echo(f"pushed {archive} ({result.size} bytes, sha256:{result.archive_sha256})")
    click.echo(f"  to      {result.target}")
    click.echo(f"  pinned  {result.pinned}")
    if result.resumed_from:
        click.echo(f"  resumed an interrupted upload at byte {result.resumed_from}")
    if result.source_deleted:
        click.echo(f"  deleted {archive} (push verified)")


@click.command()
@click.argument("ref")
@click.option("-f", "--out-file", "output", required=True, type=click.Path(dir_okay=False),
              help="Where to write the archive.")
@click.option("--force", is_flag=True, help="Overwrite the --out-file if it exists.")
@_access_options
def pull(ref: str, output: str, force: bool, backend: str, fmt: str, **access: Any) -> None:
    """Write the checkpoint archive of image REF to --out-file, its digest verified.

    The bytes are checked against the layer digest while they stream, and
    against the image's dev.csi.archive.sha256; the file appears only when
    they matched.

    The registry is not trusted: manifests are read up to 4 MiB, a layer
    stops at its descriptor's size, and a transfer slower than
    $CSI_REGISTRY_MIN_RATE bytes/s (default 10240, averaged over
    $CSI_REGISTRY_RATE_WINDOW s, default 30) or longer than
    $CSI_REGISTRY_DEADLINE s (default 300) plus its size at that rate ends
    with an error.
    """
    from forensics.storage.api import pull_archive

    with transfer_bars("pull") as bars:
        result = pull_archive(ref, output, backend=backend,
                              options=_registry_options(**access), overwrite=force,
                              progress=bars)
    if fmt != "text":
        dump(result.__dict__, fmt)
        return
    how = " (rebuilt from a re-tarred layer)" if result.reassembled else ""
    click.echo(f"pulled {ref} -> {output}{how}")
    click.echo(f"  sha256:{result.sha256}  {result.size} bytes"
               + ("  matches dev.csi.archive.sha256" if result.verified_against_annotation
                  else "  (the image records no archive digest)"))
