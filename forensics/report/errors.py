"""Errors of the report layer: building, storing, signing and verifying reports."""

from __future__ import annotations

from forensics.errors import CsiError


class ReportError(CsiError):
    """A report cannot be built, stored, found or read."""

    exit_code = 1


class ReportNotFound(ReportError):
    """No stored report has the ID (or unique ID prefix) asked for."""

    exit_code = 2


class VerificationError(CsiError):
    """A report or its archive does not match what was signed: the evidence was altered.

    ``problems`` lists every mismatch, one readable line each.
    """

    exit_code = 3

    def __init__(self, what: str, problems: list[str]) -> None:
        super().__init__(what, why="; ".join(problems))
        self.problems = problems
