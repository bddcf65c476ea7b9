"""No serve setting names a module to import: the capture function is injected by code only."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from forensics.errors import UsageError
from forensics.receiver.config import ServeConfig, load_serve_config


def test_serve_config_has_no_run_capture_setting() -> None:
    assert "run_capture" not in {f.name for f in dataclasses.fields(ServeConfig)}


def test_csi_run_capture_in_the_environment_is_ignored() -> None:
    config = load_serve_config(None, {}, {"CSI_RUN_CAPTURE": "os:system",
                                          "CSI_ALLOW_UNAUTHENTICATED": "true"})
    assert config == load_serve_config(None, {}, {"CSI_ALLOW_UNAUTHENTICATED": "true"})


def test_run_capture_in_the_config_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "csi.yaml"
    path.write_text("serve:\n  run_capture: os:system\n")
    with pytest.raises(UsageError) as caught:
        load_serve_config(str(path), {}, {})
    assert str(caught.value).startswith(f"config {path}: unknown serve setting(s) run_capture "
                                        "(known: ")
