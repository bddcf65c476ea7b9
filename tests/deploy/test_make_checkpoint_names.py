"""make-checkpoint.sh refuses a container name podman would read as an option (issue 11)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "dev" / "make-checkpoint.sh"


@pytest.mark.parametrize(("name", "shown"), [
    ("--latest", "--latest"), ("-l", "-l"), ("a\x1b[2Jb", "$'a\\E[2Jb'"), ("a/b", "a/b")])
def test_make_checkpoint_name_latest_is_a_usage_error(tmp_path: Path, name: str,
                                                      shown: str) -> None:
    done = subprocess.run(["bash", str(SCRIPT), "--name", name, "-o", str(tmp_path / "x.tar")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == (f"make-checkpoint: bad --name: {shown} (podman "
                                           "allows [a-zA-Z0-9][a-zA-Z0-9_.-]*)")
    assert "\x1b" not in done.stderr and not (tmp_path / "x.tar").exists()
