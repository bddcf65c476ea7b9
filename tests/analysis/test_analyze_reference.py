"""csi analyze REGISTRY-REF: the image is pulled (digest verified), analyzed and reported
with its registry reference and capture-time sha256 in the chain of custody."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forensics.cli.main import main
from tests.conftest import PAYMENTS, archive_path, truth_for


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CSI_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_analyze_an_image_in_an_oci_layout(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    ref = f"oci:{tmp_path / 'layout'}:evidence/payments:case-42"
    assert main(["push", archive_path(PAYMENTS), ref]) == 0
    capsys.readouterr()
    assert main(["analyze", "--format", "json", "--save", "--reason", "case 42", ref]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    sha = truth_for(PAYMENTS)["sha256"]
    assert result["archive"]["sha256"] == sha  # the pulled archive is the original, bytes
    assert result["verdict"] == "critical"
    assert any(f["rule"] == "process.reverse-shell" and f["pid"] == 9
               for f in result["findings"])
    report_id = err.split("csi: report ", 1)[1].split()[0]
    exported = tmp_path / "report.json"
    assert main(["report", "export", report_id, "--format", "json", "-f", str(exported)]) == 0
    capture = json.loads(exported.read_text())["custody"]["capture"]
    assert capture["registry_ref"] == ref
    assert capture["archive_sha256"] == sha  # from the image's dev.csi.archive.sha256
    assert capture["manifest_digest"].startswith("sha256:")
    capsys.readouterr()
    assert main(["report", "verify", report_id]) == 0  # pulls the image back to check it
    assert "verified" in capsys.readouterr().out


def test_a_missing_image_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["analyze", f"oci:{tmp_path / 'nowhere'}:evidence/x:y"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("csi: error:")]) == 1
