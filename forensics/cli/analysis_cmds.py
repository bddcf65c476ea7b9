"""``csi analyze``: run the analyzers over a checkpoint archive."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

import click

from forensics.cli.common import dump_json, open_checkpoint, stdout, warn
from forensics.errors import UsageError


def load_alert(path: str) -> dict[str, Any]:
    """A Falco alert (Falco json_output or falcosidekick's forward) from a file."""
    try:
        with open(path, "rb") as f:
            alert = json.load(f)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the alert", why=exc.strerror or str(exc)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: the alert is not JSON", why=str(exc)) from None
    if not isinstance(alert, dict) or "rule" not in alert:
        raise UsageError(f"{path}: not a Falco alert", why="expected a JSON object with 'rule'")
    return alert


@click.command()
@click.argument("archive", required=False)
@click.option("--alert", "alert_path", type=click.Path(dir_okay=False),
              help="The Falco alert (JSON) that led to the capture.")
@click.option("--yara", "yara_files", multiple=True, type=click.Path(dir_okay=False),
              help="Extra YARA rules file (repeatable).")
@click.option("--analyzer", "names", multiple=True, help="Run only these analyzers (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["tree", "json", "md"]), default="tree",
              show_default=True)
@click.option("--reveal", is_flag=True, help="Show secrets in clear (redacted by default).")
@click.option("--list", "list_only", is_flag=True, help="List the analyzers and exit.")
@click.option("--save", is_flag=True,
              help="Also write a signed report (JSON, HTML, Markdown) to the report store.")
@click.option("--reason", help="Why you analyse this archive (recorded in the saved report).")
def analyze(archive: str | None, alert_path: str | None, yara_files: tuple[str, ...],
            names: tuple[str, ...], fmt: str, reveal: bool, list_only: bool, save: bool,
            reason: str | None) -> None:
    """What a checkpoint shows: dropped binaries, reverse shells, persistence, secrets, IOCs."""
    from forensics.analysis.base import Options
    from forensics.analysis.runner import analyze as run_analysis
    from forensics.analysis.runner import list_analyzers
    from forensics.report.findings import findings_markdown, findings_tree

    if list_only:
        for name, version, description in list_analyzers():
            click.echo(f"{name:<12} {version:<5} {description}")
        return
    if archive is None:
        raise click.UsageError("give an ARCHIVE (or --list)")
    if not os.path.exists(archive) and "/" in archive and ":" in archive.split("/")[-1]:
        raise UsageError(f"{archive}: no such file; pulling checkpoint images from a registry "
                         "is not available in this version", hint="pull it to a file first")
    for path in yara_files:
        if not os.path.isfile(path):
            raise UsageError(f"{path}: no such YARA rules file")
    if reason is not None and not save:
        raise UsageError("--reason is recorded in a saved report: add --save")
    if save and reveal:
        raise UsageError("--save with --reveal", why="reports never hold secrets in clear")
    options = Options(alert=load_alert(alert_path) if alert_path else None,
                      yara_rules=list(yara_files), reveal=reveal)
    started = datetime.now(UTC)
    with open_checkpoint(archive, hash_cache=False) as ckpt:  # evidence: always re-hash
        analysis = run_analysis(ckpt, options, list(names))
        result = analysis.to_dict()
        if save:
            from forensics.report.provenance import Provenance
            from forensics.report.publish import report_analysis

            provenance = Provenance.manual(reason=reason, alert=options.alert)
            stored = report_analysis(analysis, provenance, analysis_started=started)
            click.echo(f"csi: report {stored.id} saved in {stored.directory}", err=True)
    if fmt == "json":
        dump_json(result)
    elif fmt == "md":
        click.echo(findings_markdown(result), nl=False)
    else:
        stdout().print(findings_tree(result))
    warn(result.get("warnings", []))


def register(group: click.Group) -> None:
    group.add_command(analyze)
