"""``csi analyze``: run the analyzers over a checkpoint archive."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import click

from forensics.alert import MAX_BYTES, Alert, InvalidAlert, InvalidJson, decode_alert
from forensics.cli.common import open_checkpoint, stdout, warn
from forensics.cli.output import dump, output_option
from forensics.errors import CsiError, UsageError


def load_alert(path: str) -> Alert:
    """A Falco alert (Falco json_output or falcosidekick's forward) from a file, read and
    checked as the receiver reads one (at most :data:`~forensics.alert.MAX_BYTES`)."""
    try:
        with open(path, "rb") as f:
            body = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the alert", why=exc.strerror or str(exc)) from None
    if len(body) > MAX_BYTES:
        raise UsageError(f"{path}: the alert is larger than {MAX_BYTES} bytes",
                         why="Falco's alerts are a few KiB", hint="give one alert's JSON")
    try:
        return decode_alert(body)
    except InvalidJson as exc:
        raise UsageError(f"{path}: the alert is not JSON", why=str(exc)) from None
    except InvalidAlert as exc:
        raise UsageError(f"{path}: not a Falco alert", why=str(exc)) from None


@click.command()
@click.argument("archive", required=False)
@click.option("--alert", "alert_path", type=click.Path(dir_okay=False),
              help="The Falco alert (JSON) that led to the capture.")
@click.option("--yara", "yara_files", multiple=True, type=click.Path(dir_okay=False),
              help="Extra YARA rules file (repeatable).")
@click.option("--analyzer", "names", multiple=True, help="Run only these analyzers (repeatable).")
@output_option("md")
@click.option("--reveal", is_flag=True,
              help="Show secrets in clear: environment values, passwords in command lines "
                   "(redacted by default, shown by a keyed fingerprint).")
@click.option("--list", "list_only", is_flag=True, help="List the analyzers and exit.")
@click.option("--save", is_flag=True,
              help="Also write a signed report (JSON, HTML, Markdown) to the report store.")
@click.option("--reason", help="Why you analyse this archive (recorded in the saved report).")
def analyze(archive: str | None, alert_path: str | None, yara_files: tuple[str, ...],
            names: tuple[str, ...], fmt: str, reveal: bool, list_only: bool, save: bool,
            reason: str | None) -> None:
    """What a checkpoint shows: dropped binaries, reverse shells, persistence, secrets, IOCs."""
    if list_only:
        from forensics.analysis.runner import list_analyzers

        for name, version, description in list_analyzers():
            click.echo(f"{name:<12} {version:<5} {description}")
        return
    if archive is None:
        raise click.UsageError("give an ARCHIVE (or --list)")
    for path in yara_files:
        if not os.path.isfile(path):
            raise UsageError(f"{path}: no such YARA rules file")
    if reason is not None and not save:
        raise UsageError("--reason is recorded in a saved report: add --save")
    if save and reveal:
        raise UsageError("--save with --reveal", why="reports never hold secrets in clear")
    alert = load_alert(alert_path) if alert_path else None
    started = datetime.now(UTC)
    with local_archive(archive) as (path, pulled), \
            open_checkpoint(path, hash_cache=False) as ckpt:  # evidence: always re-hash
        # imported once the archive's sha256 is under way: hashing is the longest
        # single task of an analysis, and it runs beside these imports
        from forensics.analysis.base import Options
        from forensics.analysis.runner import analyze as run_analysis
        from forensics.views.findings_text import findings_markdown, findings_tree

        options = Options(alert=alert, yara_rules=list(yara_files), reveal=reveal)
        analysis = run_analysis(ckpt, options, list(names))
        from forensics.analysis.redact import Redactor, redact_analysis

        result = redact_analysis(analysis.to_dict(), Redactor(reveal=reveal))
        if save:
            from dataclasses import replace

            from forensics.report.provenance import Provenance
            from forensics.report.publish import report_analysis

            provenance = Provenance.manual(reason=reason, alert=options.alert)
            if pulled is not None:  # what the image says of its capture joins the custody
                provenance = replace(
                    provenance, registry_ref=archive, manifest_digest=pulled.digest,
                    archive_sha256_at_capture=pulled.annotations.get("dev.csi.archive.sha256"))
            stored = report_analysis(analysis, provenance, analysis_started=started)
            click.echo(f"csi: report {stored.id} saved in {stored.directory}", err=True)
    if fmt in ("json", "yaml"):
        dump(result, fmt)
    elif fmt == "md":
        click.echo(findings_markdown(result), nl=False)
    else:
        stdout().print(findings_tree(result))
    warn(result.get("warnings", []))


@contextlib.contextmanager
def local_archive(arg: str) -> Iterator[tuple[str, Any]]:
    """A file as it is; a registry (``HOST/REPO[:TAG|@DIGEST]``) or OCI layout (``oci:DIR:NAME``)
    reference pulled to a temporary file, its digest verified while streaming."""
    if os.path.exists(arg) or not (arg.startswith("oci:") or "/" in arg):
        yield arg, None
        return
    from forensics.storage.api import pull_archive
    from forensics.storage.reference import parse_target

    try:
        parse_target(arg)
    except CsiError:
        yield arg, None  # neither a file nor a reference: opening it says why
        return
    from forensics.archive.tempfiles import removed_on_signals

    # the pulled archive is removed on SIGTERM/SIGHUP too (they raise while inside)
    with removed_on_signals(), tempfile.TemporaryDirectory(prefix="csi-analyze-") as tmp:
        click.echo(f"csi: pulling {arg}", err=True)
        pulled = pull_archive(arg, os.path.join(tmp, "archive.tar"))
        yield pulled.path, pulled
