"""The one duration and size grammar (forensics.units) and the one csi home (forensics.paths)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from forensics import units
from forensics.capture.retention import parse_age
from forensics.capture.retention import parse_size as retention_size
from forensics.errors import UsageError
from forensics.limits import parse_size as limits_size
from forensics.paths import KUBELET_CHECKPOINT_DIR, csi_home
from forensics.receiver.guards import parse_duration as guards_duration
from forensics.report.store import parse_since


@pytest.mark.parametrize(("text", "seconds"), [
    ("30", 30.0), ("250ms", 0.25), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0),
    ("1.5d", 129600.0), ("2w", 1209600.0), (" 5 M ", 300.0), ("0", 0.0), ("12H", 43200.0),
])
def test_every_duration_any_old_parser_accepted(text: str, seconds: float) -> None:
    assert units.parse_duration(text) == seconds
    assert guards_duration(text) == seconds
    assert parse_age(text) == seconds


def test_numbers_from_yaml_are_seconds() -> None:
    assert units.parse_duration(300) == 300.0
    assert units.parse_duration(0.5) == 0.5


@pytest.mark.parametrize("value", ["-5s", "5x", "1e3", "inf", "nan", "", "s", "1.s", "5 m s",
                                   -1, True, None, float("inf"), float("nan")])
def test_negative_and_garbage_durations_are_one_line(value: object) -> None:
    with pytest.raises(ValueError) as caught:
        units.parse_duration(value)
    assert str(caught.value) == (f"{value!r} is not a duration (a number of seconds, or with a "
                                 "unit: 250ms, 30s, 5m, 12h, 1.5d, 2w)")


def test_gc_age_error_names_the_grammar() -> None:
    with pytest.raises(UsageError) as caught:
        parse_age("-3d")
    assert str(caught.value).startswith("cannot read the age '-3d'")
    assert caught.value.hint == units.DURATION_HINT


def test_since_takes_every_duration() -> None:
    now = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    assert parse_since("1.5d", now) == now - timedelta(hours=36)
    assert parse_since("250ms", now) == now - timedelta(milliseconds=250)
    assert parse_since("90", now) == now - timedelta(seconds=90)
    assert parse_since("2026-11-22", now) == datetime(2026, 11, 22, tzinfo=UTC)


@pytest.mark.parametrize(("text", "size"), [
    ("1048576", 1 << 20), ("512M", 512 << 20), ("20G", 20 << 30), ("2GiB", 2 << 30),
    ("1.5T", 3 << 39), ("4kb", 4096), ("0", 0), (" 7 MiB ", 7 << 20),
])
def test_sizes_one_grammar(text: str, size: int) -> None:
    assert units.parse_size(text) == size
    assert limits_size(text) == size
    assert retention_size(text) == size


@pytest.mark.parametrize("text", ["-1G", "lots", "", "1X", "G", "1e9"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        units.parse_size(text)
    assert str(caught.value) == (f"{text!r} is not a size (bytes, or a number with K, M, G or T "
                                 "(1024-based): 512M, 20G, 2GiB)")


@pytest.mark.parametrize(("n", "text"), [
    (None, "?"), (0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (20 << 30, "20.0 GiB"),
    (3 << 40, "3.0 TiB"), (5 << 50, "5120.0 TiB"),
])
def test_human_size(n: int | None, text: str) -> None:
    assert units.human_size(n) == text


def test_one_csi_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from forensics.home import csi_home as report_home
    from forensics.storage import csi_home as registry_home

    assert registry_home is report_home is csi_home
    monkeypatch.setenv("CSI_HOME", str(tmp_path / "h"))
    assert csi_home() == tmp_path / "h"
    monkeypatch.delenv("CSI_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "x"))
    assert csi_home() == tmp_path / "x" / "csi"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert csi_home() == tmp_path / ".local" / "share" / "csi"


def test_one_kubelet_directory() -> None:
    from forensics.archive.listing import DEFAULT_DIR
    from forensics.capture.kubelet import CHECKPOINT_DIR
    from forensics.orchestration.pipeline import Settings
    from forensics.receiver.config import ServeConfig

    assert KUBELET_CHECKPOINT_DIR == "/var/lib/kubelet/checkpoints"
    assert DEFAULT_DIR == CHECKPOINT_DIR == Settings().checkpoint_dir == KUBELET_CHECKPOINT_DIR
    assert ServeConfig().checkpoint_dir == KUBELET_CHECKPOINT_DIR
