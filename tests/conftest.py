"""Shared fixtures: the real checkpoint archives of tests/data and their truth files."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
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
FINGERPRINT_KEY = "csi-tests-fingerprint-key-0123456789"
LISTENER = "podman-nc-listener-criu42.tar"


def fingerprint(value: str, key: str = FINGERPRINT_KEY) -> str:
    """A secret's keyed fingerprint, computed here independently of forensics.analysis.redact."""
    return "hmac-sha256:" + hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


def masked(value: str, key: str = FINGERPRINT_KEY) -> str:
    """How a redacted value is shown: the start of its fingerprint, no length, no characters."""
    return f"[redacted:{fingerprint(value, key)[12:24]}]"


def truth_for(archive: str) -> dict[str, Any]:
    stem = archive.removesuffix(".zst").removesuffix(".tar")
    return dict(json.loads((TRUTH / f"{stem}.json").read_text()))


def archive_path(archive: str) -> str:
    return str(CHECKPOINTS / archive)


@pytest.fixture(autouse=True, scope="session")
def test_fingerprint_key() -> Iterator[None]:
    """Secrets are fingerprinted under a test key, never a key made in the real home."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CSI_FINGERPRINT_KEY", FINGERPRINT_KEY)
        yield


@pytest.fixture(autouse=True)
def private_hash_cache(tmp_path_factory: pytest.TempPathFactory,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with an empty sha256 cache of its own."""
    monkeypatch.setenv("CSI_CACHE_DIR", str(tmp_path_factory.mktemp("hash-cache")))


@pytest.fixture(params=ARCHIVES)
def archive(request: pytest.FixtureRequest) -> str:
    """Each fixture archive's file name in turn."""
    return str(request.param)
