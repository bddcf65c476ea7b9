"""issue 12 item 4, the CLI's conventions: the kubectl plugin says ``kubectl csi``,
``csi completion`` prints click's scripts, which complete through the real script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from forensics.cli.main import main

BIN = Path(sys.executable).parent


def _script(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{path} is not installed (pip install -e . makes it)")
    return str(path)


def test_kubectl_plugin_help_says_kubectl_csi() -> None:
    plugin = _script("kubectl-csi")
    top = subprocess.run([plugin, "--help"], capture_output=True, text=True, timeout=60)
    assert top.returncode == 0 and top.stdout.startswith("Usage: kubectl csi [OPTIONS] COMMAND")
    sub = subprocess.run([plugin, "inspect", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert sub.stdout.startswith("Usage: kubectl csi inspect [OPTIONS] ARCHIVES...")
    fast = subprocess.run([plugin, "memparse", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert fast.stdout.startswith("usage: kubectl csi memparse ")
    plain = subprocess.run([_script("csi"), "--help"], capture_output=True, text=True,
                           timeout=60)
    assert plain.stdout.startswith("Usage: csi [OPTIONS] COMMAND")


@pytest.mark.parametrize(("shell", "marker"), [
    ("bash", "_CSI_COMPLETE=bash_complete"), ("zsh", "#compdef csi"),
    ("fish", "_CSI_COMPLETE=fish_complete")])
def test_completion_prints_the_shell_script(capsys: pytest.CaptureFixture[str], shell: str,
                                            marker: str) -> None:
    assert main(["completion", shell]) == 0
    assert marker in capsys.readouterr().out


def test_completion_of_an_unknown_shell_is_a_usage_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "tcsh"]) == 2
    assert "'tcsh' is not one of 'bash', 'zsh', 'fish'" in capsys.readouterr().err


def test_bash_completion_script_completes_commands_and_options() -> None:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    csi = _script("csi")
    script = subprocess.run([csi, "completion", "bash"], capture_output=True, text=True,
                            timeout=60, check=True).stdout
    probe = (f"{script}\nCOMPREPLY=(); COMP_WORDS=(csi ins); COMP_CWORD=1; _csi_completion csi\n"
             "printf '%s\\n' \"${COMPREPLY[@]}\"\n"
             "COMPREPLY=(); COMP_WORDS=(csi completion ''); COMP_CWORD=2; _csi_completion csi\n"
             "printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60,
                          env=env)
    assert done.stdout.split() == ["inspect", "bash", "zsh", "fish"], done.stderr
