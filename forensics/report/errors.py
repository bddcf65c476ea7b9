"""Errors of the report layer: building, storing, signing and verifying reports."""

from __future__ import annotations

from forensics.errors import CsiError
from forensics.status import ExitStatus


class ReportError(CsiError):
    """A report cannot be built, stored, found or read."""

    exit_code = ExitStatus.FAILURE


class ReportNotFound(ReportError):
    """No stored report has the ID (or unique ID prefix) asked for."""

    exit_code = ExitStatus.USAGE


class VerificationError(CsiError):
    """A report or its archive does not match what was signed: the evidence was altered.

    ``problems`` lists every mismatch, one readable line each.
    """

    exit_code = ExitStatus.EXTERNAL

    def __init__(self, what: str, problems: list[str]) -> None:
        super().__init__(what, why="; ".join(problems))
        self.problems = problems
