"""The report's JSON Schema (``report.schema.json``, shipped in the package) and validation.

``schema_version`` is an integer: a version adds or changes fields in a way
older readers cannot ignore. csi reads the versions it has a schema for and
says so plainly for others.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from forensics.report.errors import ReportError

SCHEMA_FILE = "report.schema.json"
KNOWN_VERSIONS = (1,)


@functools.cache
def report_schema() -> dict[str, Any]:
    text = resources.files("forensics.report").joinpath(SCHEMA_FILE).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def schema_errors(document: Any) -> list[str]:
    """Every way ``document`` departs from the schema, one line each (empty: it validates)."""
    from jsonschema import Draft202012Validator

    if isinstance(document, dict) and document.get("schema_version") not in KNOWN_VERSIONS:
        return [f"schema_version {document.get('schema_version')!r} is not one this csi knows "
                f"({', '.join(map(str, KNOWN_VERSIONS))}): use a newer csi"]
    validator = Draft202012Validator(report_schema())
    out = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        where = "/" + "/".join(str(p) for p in error.absolute_path)
        message = error.message if len(error.message) <= 200 else error.message[:200] + "…"
        out.append(f"{where}: {message}")
    return out


def validate_report(document: Any) -> None:
    errors = schema_errors(document)
    if errors:
        raise ReportError("the report does not match its schema",
                          why="; ".join(errors[:5]) + (" …" if len(errors) > 5 else ""))
