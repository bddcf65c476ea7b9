"""Where checkpointctl 1.3 is right (the CRIU 4.1 archive), csi states the same facts.

These tests run the real checkpointctl (Debian trixie's 1.3, installed by
deploy/dev/install-system.sh) and skip, saying so, where it is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from forensics.cli.main import main
from tests.conftest import CRIU41, archive_path

CHECKPOINTCTL = shutil.which("checkpointctl")
pytestmark = pytest.mark.skipif(
    CHECKPOINTCTL is None,
    reason="checkpointctl 1.3 is not installed (deploy/dev/install-system.sh installs it)")

_TREE = re.compile(r"^[\s│├└─]*")


def lines(text: str) -> set[str]:
    """Tree lines without the drawing, trailing blanks or runs of spaces."""
    out = set()
    for line in text.splitlines():
        line = re.sub(r" +", " ", _TREE.sub("", line)).strip()
        if line and not line.startswith("Displaying container checkpoint"):
            out.add(line)
    return out


def checkpointctl(*args: str) -> str:
    assert CHECKPOINTCTL is not None
    return subprocess.run([CHECKPOINTCTL, *args], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture
def criu41(tmp_path: Path) -> str:
    copy = tmp_path / CRIU41
    shutil.copy(archive_path(CRIU41), copy)
    return str(copy)


def test_tree_states_every_fact_checkpointctl_states(
    criu41: str, capsys: pytest.CaptureFixture[str]
) -> None:
    theirs = lines(checkpointctl("inspect", "--all", criu41))
    assert main(["inspect", "--all", "--reveal", criu41]) == 0  # checkpointctl shows secrets
    ours = lines(capsys.readouterr().out)
    assert len(theirs) > 60
    assert theirs - ours == set()


def test_json_values_match(criu41: str, capsys: pytest.CaptureFixture[str]) -> None:
    [theirs] = json.loads(checkpointctl("inspect", "--all", "--format", "json", criu41))
    assert main(["inspect", "--all", "--reveal", "--format", "json", criu41]) == 0
    [ours] = json.loads(capsys.readouterr().out)
    for key in ("container_name", "image", "id", "runtime", "created", "engine",
                "checkpoint_size", "mounts", "file_descriptors"):
        assert _without_csi_extras(ours[key]) == theirs[key], key
    assert {k: ours["statistics"][k] for k in theirs["statistics"]} == theirs["statistics"]
    if "metadata" in theirs:  # checkpointctl omits it for some archives
        assert ours["metadata"]["annotations"] == theirs["metadata"]["annotations"]
    assert _tree(ours["process_tree"]) == _tree(theirs["process_tree"])


def _without_csi_extras(value: Any) -> Any:
    if isinstance(value, list):
        return [_without_csi_extras(v) for v in value]
    if isinstance(value, dict):
        return {k: _without_csi_extras(v) for k, v in value.items() if k != "deleted"}
    return value


def _tree(node: dict[str, Any]) -> list[tuple[Any, ...]]:
    out = [(node["pid"], node["command"], node["cmdline"].rstrip(),  # checkpointctl adds a blank
            node["environment_variables"])]
    for child in sorted(node.get("children", []), key=lambda c: c["pid"]):
        out += _tree(child)
    return out
