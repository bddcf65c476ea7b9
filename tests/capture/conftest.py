"""Fixtures: real docker-registry instances (started and stopped here), tool checks."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from forensics.storage.base import RegistryOptions
from tests.capture.servers import REGISTRY, Registry, have
from tests.conftest import archive_path

SMALL = archive_path("podman-nc-listener-criu42.tar")
KUBELET = archive_path(
    "checkpoint-payments-api-5b8f7c9d8-qq7lm_payments-api-2026-11-22T07:10:28Z.tar")
ZSTD = archive_path("podman-busybox-env-criu41.tar.zst")
PLAIN = RegistryOptions(plain_http=True, retries=2, backoff=0.05)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(1 << 20):
            digest.update(data)
    return digest.hexdigest()


def need(tool: str, why: str = "") -> None:
    if not have(tool):
        pytest.skip(f"{tool} is not installed{': ' + why if why else ''} "
                    "(deploy/dev/install-system.sh installs it)")


@pytest.fixture(autouse=True)
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test has its own CSI_HOME and no ambient registry credentials."""
    home = tmp_path / "csi-home"
    monkeypatch.setenv("CSI_HOME", str(home))
    monkeypatch.delenv("CSI_REGISTRY", raising=False)
    for name in ("REGISTRY_AUTH_FILE", "CSI_REGISTRY_PLAIN_HTTP", "CSI_REGISTRY_TLS_VERIFY",
                 "CSI_REGISTRY_CA_FILE", "CSI_REGISTRY_AUTH_FILE", "CSI_REGISTRY_MIN_RATE",
                 "CSI_REGISTRY_RATE_WINDOW", "CSI_REGISTRY_DEADLINE", "CSI_REGISTRY_MAX_MANIFEST",
                 "CSI_REGISTRY_MAX_BLOB", "CSI_MAX_EXPANDED"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "run").mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text("{}")  # podman/buildah need it to exist
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    return home


@pytest.fixture
def archive_copy(tmp_path: Path) -> Path:
    """A private copy of a small real checkpoint (tests may delete it)."""
    dest = tmp_path / "evidence.tar"
    shutil.copyfile(SMALL, dest)
    return dest


def _registry(tmp_path_factory: pytest.TempPathFactory, name: str, **kwargs: object
              ) -> Iterator[Registry]:
    need(REGISTRY, "tests run a real registry")
    if kwargs.get("auth") == "htpasswd":
        need("htpasswd", "apache2-utils makes the bcrypt password file")
    if kwargs.get("auth") == "token" or kwargs.get("tls"):
        need("openssl", "it makes the certificates and signs the tokens")
    reg = Registry(tmp_path_factory.mktemp(name), **kwargs)  # type: ignore[arg-type]
    try:
        yield reg
    finally:
        reg.close()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A plain-HTTP registry shared by the tests (each uses its own repositories)."""
    yield from _registry(tmp_path_factory, "registry")


@pytest.fixture
def own_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry of this test alone (it may be killed and restarted)."""
    yield from _registry(tmp_path_factory, "own-registry")


@pytest.fixture(scope="session")
def htpasswd_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from _registry(tmp_path_factory, "htpasswd-registry", auth="htpasswd")


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from _registry(tmp_path_factory, "token-registry", auth="token")


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from _registry(tmp_path_factory, "tls-registry", tls=True)
