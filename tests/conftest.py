"""Shared fixtures: the real checkpoint archives of tests/data and their truth files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"
CHECKPOINTS = DATA / "checkpoints"
TRUTH = DATA / "truth"

ARCHIVES = sorted(p.name for p in CHECKPOINTS.iterdir())
PAYMENTS = next(a for a in ARCHIVES if a.startswith("checkpoint-payments-api"))
SHOP = next(a for a in ARCHIVES if a.startswith("checkpoint-shop-frontend"))
CRIU41 = "podman-busybox-env-criu41.tar.zst"
LISTENER = "podman-nc-listener-criu42.tar"


def truth_for(archive: str) -> dict[str, Any]:
    stem = archive.removesuffix(".zst").removesuffix(".tar")
    return dict(json.loads((TRUTH / f"{stem}.json").read_text()))


def archive_path(archive: str) -> str:
    return str(CHECKPOINTS / archive)


@pytest.fixture(autouse=True)
def private_hash_cache(tmp_path_factory: pytest.TempPathFactory,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with an empty sha256 cache of its own."""
    monkeypatch.setenv("CSI_CACHE_DIR", str(tmp_path_factory.mktemp("hash-cache")))


@pytest.fixture(params=ARCHIVES)
def archive(request: pytest.FixtureRequest) -> str:
    """Each fixture archive's file name in turn."""
    return str(request.param)
