"""``csi report``: list, show, open, export and verify stored evidence reports.

Reports live in ``$CSI_HOME/reports`` (default ``~/.local/share/csi/reports``);
``csi analyze --save`` and every capture write them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from forensics.cli.common import stdout
from forensics.cli.output import dump, output_option
from forensics.errors import UsageError

if TYPE_CHECKING:
    from forensics.report.store import ReportStore

SEVERITY_CHOICE = click.Choice(["info", "low", "medium", "high", "critical"],
                               case_sensitive=False)
PLAIN_ABOVE = 200  # rows; a longer list is printed as plain aligned text
EXPORT_FILES = {"json": "report.json", "html": "report.html", "md": "report.md"}


def _store() -> ReportStore:
    from forensics.report.store import ReportStore

    return ReportStore()


@click.group()
def report() -> None:
    """Evidence reports: signed JSON of record, HTML and Markdown, chain of custody."""


@report.command("list")
@click.option("--namespace", "-n", help="Only this namespace (shell wildcards allowed).")
@click.option("--pod", help="Only this pod (shell wildcards allowed).")
@click.option("--since", help="Only reports newer than this: 24h, 30m, 7d, 2w, or a date.")
@click.option("--severity", type=SEVERITY_CHOICE,
              help="Only reports whose verdict is at least this severe.")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="Show at most this many (0: all).")
@output_option()
def list_reports(namespace: str | None, pod: str | None, since: str | None,
                 severity: str | None, limit: int, fmt: str) -> None:
    """Stored reports, newest first."""
    from forensics.report.store import parse_since

    try:
        since_time = parse_since(since) if since else None
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None
    store = _store()
    rows, total = store.query(namespace=namespace, pod=pod, since=since_time,
                              min_severity=severity.lower() if severity else None,
                              limit=limit or None)
    if fmt != "text":
        dump([r.to_dict() for r in rows], fmt)
        return
    if not rows:
        click.echo(f"no reports{' match' if total == 0 and store.index_path.exists() else ''} "
                   f"(store: {store.root})")
        return
    from forensics.views.report_terminal import list_lines, list_table

    if len(rows) > PLAIN_ABOVE:  # rich takes about a millisecond a row
        click.echo("\n".join(list_lines(rows, total)))
    else:
        stdout().print(list_table(rows, total))


def _load(report_id: str) -> tuple[dict[str, Any], Path]:
    from forensics.report.errors import ReportError

    store = _store()
    row = store.resolve(report_id)
    folder = store.directory(row.id)
    try:
        return json.loads((folder / "report.json").read_bytes()), folder
    except (OSError, ValueError) as exc:
        raise ReportError(f"report {row.id}: cannot read {folder / 'report.json'}",
                          why=str(exc), hint="`csi report verify` says what is wrong") from None


@report.command()
@click.argument("report_id", metavar="ID")
def show(report_id: str) -> None:
    """A report in the terminal: summary, findings, process tree, network, files, timeline.

    ID is a report's ID, a unique prefix of one, or `latest`.
    """
    from forensics.report.errors import ReportError
    from forensics.views.report_terminal import report_view

    doc, _ = _load(report_id)
    try:
        view = report_view(doc)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ReportError(f"report {report_id} is malformed ({type(exc).__name__}: {exc})",
                          hint="`csi report verify` says what is wrong") from None
    stdout().print(view)


@report.command("open")
@click.argument("report_id", metavar="ID")
def open_report(report_id: str) -> None:
    """Open a report's HTML in the web browser."""
    import webbrowser

    from forensics.report.errors import ReportError

    _, folder = _load(report_id)
    page = (folder / "report.html").resolve()
    if not page.is_file():
        raise ReportError(f"{page}: missing", hint="`csi report verify` says what is wrong")
    if not webbrowser.open(page.as_uri()):
        raise ReportError(f"no web browser to open {page}", hint="open the file yourself, or "
                          "set $BROWSER")
    click.echo(f"opened {page}", err=True)


@report.command()
@click.argument("report_id", metavar="ID")
@click.option("-o", "--output", "--format", "fmt", type=click.Choice(sorted(EXPORT_FILES)),
              default="html", show_default=True, help="Which of the report's files.")
@click.option("-f", "--out-file", "output", type=click.Path(dir_okay=False), required=True,
              help="Where to write it ('-': standard output).")
def export(report_id: str, fmt: str, output: str) -> None:
    """Copy a stored report out, byte for byte (the JSON is the signed original)."""
    from forensics.report.errors import ReportError

    store = _store()
    row = store.resolve(report_id)
    source = store.directory(row.id) / EXPORT_FILES[fmt]
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise ReportError(f"{source}: cannot read", why=exc.strerror or str(exc)) from None
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        Path(output).write_bytes(data)
    except OSError as exc:
        raise UsageError(f"{output}: cannot write", why=exc.strerror or str(exc)) from None
    click.echo(f"report {row.id} ({fmt}) written to {output}", err=True)


@report.command()
@click.argument("target", metavar="ID|FILE")
@click.option("--archive", type=click.Path(dir_okay=False),
              help="The archive's location, if not where the report says it was analysed.")
@click.option("--skip-archive", is_flag=True, help="Do not re-hash the archive.")
@click.option("--key", "key_files", multiple=True, type=click.Path(dir_okay=False),
              help="Accept only a signer whose PEM public (or private) key is in this file.")
@click.option("--key-fingerprint", "fingerprints", multiple=True,
              help="Accept only a signer with this fingerprint (sha256:…).")
@click.option("--json-only", is_flag=True,
              help="Check report.json alone, not the HTML, Markdown and manifest beside it.")
def verify(target: str, archive: str | None, skip_archive: bool, key_files: tuple[str, ...],
           fingerprints: tuple[str, ...], json_only: bool) -> None:
    """Check a report's signature and every hash in its chain of custody.

    ID|FILE is a stored report (ID, unique prefix, `latest`), or a report.json
    file (or the folder holding it) from anywhere. The signer must be this
    installation's key or one in $CSI_HOME/trusted-keys (one fingerprint a
    line), or one named by --key/--key-fingerprint. A stored report must also
    be the one its folder and index row name. Exit status 3 if anything does
    not match, with each mismatch named.
    """
    from forensics.report.errors import VerificationError
    from forensics.report.trust import explicit_trust
    from forensics.report.verify import verify_report
    from forensics.report.verify_store import stored_folder, verify_stored

    trust = explicit_trust(key_files, fingerprints) if key_files or fingerprints else None
    options: dict[str, Any] = {"archive": archive, "check_archive": not skip_archive,
                               "trust": trust, "json_only": json_only}
    store = _store()
    path = Path(target)
    if path.exists():
        folder = stored_folder(store, path)
        if folder is not None:
            result = verify_stored(store, folder, store.get(folder.name), **options)
        else:
            result = verify_report(path / "report.json" if path.is_dir() else path, **options)
    else:
        row = store.resolve(target)
        result = verify_stored(store, store.directory(row.id), row, **options)
    marks = {"ok": "[green]    ok[/]", "failed": "[bold red]FAILED[/]",
             "skipped": "[yellow]  skip[/]"}
    from forensics.visible import escape  # rich's escape, control characters made visible

    console = stdout()
    for check in result.checks:
        console.print(f"{marks[check.status]}  {check.name}: {escape(check.detail)}")
        for problem in check.problems[1:]:
            console.print(f"{'':>8}{escape(problem)}")
    if not result.ok:
        raise VerificationError(f"report {result.subject} FAILED verification", result.problems)
    console.print(f"report {escape(result.subject)}: verified"
                  + (" (report.json only: --json-only)" if json_only else ""))


@report.command()
def key() -> None:
    """This installation's signing key: fingerprint and public key (made if missing)."""
    from forensics.report.signing import load_signing_key

    signing_key = load_signing_key()
    click.echo(f"fingerprint {signing_key.fingerprint}")
    click.echo(f"private key {signing_key.origin}")
    click.echo(signing_key.public_pem(), nl=False)


@report.command()
def reindex() -> None:
    """Rebuild the report index from the report folders, verifying each.

    For a lost or corrupted index (it is moved aside), or folders copied in
    by hand. A folder that fails verification is listed and left out.
    """
    from forensics.report.reindex import reindex as rebuild

    store = _store()
    done = rebuild(store)
    if done.set_aside:
        click.echo(f"the corrupt index was moved aside to {done.set_aside}", err=True)
    for folder, why in done.bad:
        click.echo(f"not indexed: {folder}: {why}", err=True)
    click.echo(f"{len(done.indexed)} report(s) indexed, {len(done.bad)} folder(s) left out "
               f"({store.index_path})")
