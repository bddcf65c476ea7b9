"""csi gc: prune a node's checkpoint directory; only kubelet-named archives are touched."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from forensics.capture.retention import Policy, parse_age, parse_size, prune
from forensics.cli.main import main
from forensics.errors import UsageError

NOW = time.time()


def archive(folder: Path, pod: str, ctr: str, age_h: float, size: int = 1000) -> Path:
    moment = time.gmtime(NOW - age_h * 3600)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", moment)
    path = folder / f"checkpoint-{pod}_prod-{ctr}-{stamp}.tar"
    path.write_bytes(b"\0" * size)
    os.utime(path, (NOW - age_h * 3600, NOW - age_h * 3600))
    return path


@pytest.fixture
def node(tmp_path: Path) -> dict[str, Path]:
    return {
        "web-new": archive(tmp_path, "web-0", "web", 1),
        "web-mid": archive(tmp_path, "web-0", "web", 5),
        "web-old": archive(tmp_path, "web-0", "web", 50),
        "api-new": archive(tmp_path, "api-0", "api", 2, size=5000),
        "other": tmp_path / "notes.tar",  # not a kubelet name: never touched
    }


def test_max_per_container_keeps_the_newest(node: dict[str, Path], tmp_path: Path) -> None:
    node["other"].write_text("keep me")
    gone = prune(str(tmp_path), Policy(max_per_container=1), now=NOW)
    assert sorted(Path(v.path).name for v in gone) == sorted(
        [node["web-mid"].name, node["web-old"].name])
    assert node["web-new"].exists() and node["api-new"].exists() and node["other"].exists()


def test_max_age_and_total_size(node: dict[str, Path], tmp_path: Path) -> None:
    gone = prune(str(tmp_path), Policy(max_age=parse_age("1d")), now=NOW)
    assert [Path(v.path).name for v in gone] == [node["web-old"].name]
    gone = prune(str(tmp_path), Policy(max_total=parse_size("6K")), now=NOW)
    # 1000 + 1000 + 5000 bytes left: the oldest goes until the rest fits in 6 KiB
    assert [Path(v.path).name for v in gone] == [node["web-mid"].name]


def test_cli_dry_run_deletes_nothing(node: dict[str, Path], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gc", str(tmp_path), "--max-age", "24h", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"would delete {node['web-old']}")
    assert node["web-old"].exists()
    assert main(["gc", str(tmp_path), "--max-age", "24h"]) == 0
    assert not node["web-old"].exists()


def test_bad_values() -> None:
    with pytest.raises(UsageError):
        parse_age("soon")
    with pytest.raises(UsageError):
        parse_size("lots")
    assert parse_size("1.5G") == 1610612736
    assert parse_age("30m") == 1800
