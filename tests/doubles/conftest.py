"""Fixtures for the doubles' own tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.doubles.cluster import Container, Pod
from tests.doubles.fixtures import Stack, running_stack
from tests.doubles.kubelet import ReplayCheckpointer

DATA = Path(__file__).resolve().parents[1] / "data" / "checkpoints"
SHOP = DATA / "checkpoint-shop-frontend-7d9c6b5f4-x2x9q_prod-web-2026-11-22T07:09:54Z.tar"
SHOP_POD = "shop-frontend-7d9c6b5f4-x2x9q"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """Both doubles; the shop-frontend pod (container ``web``) on node-1; checkpoints replay
    the real archive of that pod from tests/data."""
    with running_stack(tmp_path, checkpointer=ReplayCheckpointer(SHOP)) as running:
        running.cluster.add_pod(Pod("prod", SHOP_POD, "node-1", [Container("web")]))
        yield running
