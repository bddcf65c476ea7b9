"""issue 12 item 4: without --config, csi reads $XDG_CONFIG_HOME/csi/config.yaml
(default ~/.config/csi/config.yaml) when it exists."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from forensics.receiver.config import config_dir, default_config_file, load_serve_config
from tests.receiver.serve_process import ROOT


def _write(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.yaml"
    path.write_text(text)
    return path


def test_config_dir_follows_xdg_then_home(tmp_path: Path) -> None:
    assert config_dir({"XDG_CONFIG_HOME": "/etc/xdg-user", "HOME": "/home/a"}) == \
        Path("/etc/xdg-user/csi")
    assert config_dir({"HOME": "/home/a"}) == Path("/home/a/.config/csi")
    # a relative XDG_CONFIG_HOME is ignored (XDG base directory specification)
    assert config_dir({"XDG_CONFIG_HOME": "rel", "HOME": "/home/a"}) == \
        Path("/home/a/.config/csi")
    assert default_config_file({"XDG_CONFIG_HOME": str(tmp_path)}) is None


def test_default_file_is_read_and_loses_to_env_flags_and_explicit_files(tmp_path: Path) -> None:
    path = _write(tmp_path / "xdg" / "csi", "serve:\n  listen: 127.0.0.5:9005\n"
                  "  backend: podman\n")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert default_config_file(env) == str(path)
    config = load_serve_config(None, {}, env)
    assert (config.listen, config.backend) == ("127.0.0.5:9005", "podman")
    assert load_serve_config(None, {"listen": "127.0.0.6:9006"}, env).listen == "127.0.0.6:9006"
    assert load_serve_config(None, {}, {**env, "CSI_LISTEN": "127.0.0.7:9007"}).listen == \
        "127.0.0.7:9007"
    other = tmp_path / "other.yaml"
    other.write_text("serve:\n  listen: 127.0.0.8:9008\n")
    assert load_serve_config(str(other), {}, env).listen == "127.0.0.8:9008"
    assert load_serve_config(None, {}, {**env, "CSI_CONFIG": str(other)}).backend == \
        "kubernetes"
    home = _write(tmp_path / "home" / ".config" / "csi", "serve:\n  executor: local\n"
                  "  listen: 127.0.0.9:9009\n")
    assert default_config_file({"HOME": str(tmp_path / "home")}) == str(home)


def test_csi_serve_reads_the_default_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "xdg" / "csi", "serve:\n  listen: nowhere\n")
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "CSI_HOME": str(tmp_path),
           "PYTHONPATH": str(ROOT)}
    for name in ("CSI_CONFIG", "CSI_LISTEN"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "forensics.cli.main", "serve"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert done.stderr == ("csi: error: listen address 'nowhere' is not HOST:PORT "
                           "(like 127.0.0.1:2802)\n"), done.stderr
    assert path.exists()
