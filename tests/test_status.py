"""One table of exit statuses (forensics.status.ExitStatus), used by every error class."""

from __future__ import annotations

from forensics.analysis.worker import EXIT_OUT_OF_MEMORY
from forensics.capture.errors import CaptureError
from forensics.errors import CsiError, UsageError
from forensics.orchestration.steps import EX_TEMPFAIL, TemporaryFailure
from forensics.receiver.policy import PolicyError
from forensics.report.errors import ReportNotFound
from forensics.status import ExitStatus
from forensics.storage.errors import RegistryError
from workflows.capture import TEMPFAIL


def test_the_values_shells_and_argo_see() -> None:
    assert {s.name: int(s) for s in ExitStatus} == {
        "OK": 0, "FAILURE": 1, "USAGE": 2, "EXTERNAL": 3, "SOFTWARE": 70, "TEMPFAIL": 75,
        "INTERRUPTED": 130}


def test_errors_carry_their_status() -> None:
    assert CsiError.exit_code == ExitStatus.FAILURE == 1
    assert UsageError.exit_code == PolicyError.exit_code == ReportNotFound.exit_code == 2
    assert CaptureError.exit_code == RegistryError.exit_code == ExitStatus.EXTERNAL == 3
    assert TemporaryFailure.exit_code == EX_TEMPFAIL == TEMPFAIL == 75
    assert EXIT_OUT_OF_MEMORY == 3


def test_the_retry_expression_says_75() -> None:
    assert f"{TEMPFAIL}" == "75"


def test_one_version_everywhere() -> None:
    """pyproject reads forensics.__version__; the image tags in deploy/ and workflows/ follow it."""
    import re
    import tomllib
    from importlib.metadata import version
    from pathlib import Path

    from forensics import __version__
    from workflows.capture import IMAGE

    root = Path(__file__).resolve().parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "forensics.__version__"}
    assert version("csi") == __version__
    assert f"ghcr.io/csi-forensics/csi:{__version__}" == IMAGE
    for manifest in ("deploy/receiver.yaml", "deploy/workflows/csi-capture.yaml"):
        tags = set(re.findall(r"ghcr\.io/csi-forensics/csi:(\S+)", (root / manifest).read_text()))
        assert tags == {__version__}, manifest
