"""Credentials (auth files, helpers) and real Basic / Bearer-token / TLS registries."""

from __future__ import annotations

import base64
import filecmp
import json
from pathlib import Path

import pytest

from forensics.cli.main import main
from forensics.storage import RegistryOptions, pull_archive, push_archive
from forensics.storage.auth import find_credentials, parse_challenge
from forensics.storage.errors import RegistryAuthError, RegistryTLSError
from tests.capture.conftest import PLAIN, SMALL, need, sha256_file
from tests.capture.servers import PASSWORD, USER, Registry


def _auth_file(path: Path, host: str, user: str = USER, password: str = PASSWORD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    return path


# ------------------------------------------------------------------ lookup


def test_lookup_order_and_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docker = _auth_file(tmp_path / "docker" / "config.json", "https://reg.example:5000/v1/",
                        "docker-user", "d")
    assert find_credentials("reg.example:5000", "a/b") == \
        type(find_credentials("reg.example:5000"))("docker-user", "d", "", str(docker))
    runtime = _auth_file(tmp_path / "run" / "containers" / "auth.json", "reg.example:5000",
                         "runtime-user", "r")
    assert find_credentials("reg.example:5000").source == str(runtime)  # type: ignore[union-attr]
    explicit = tmp_path / "explicit.json"
    explicit.write_text(json.dumps({"auths": {
        "reg.example:5000": {"auth": base64.b64encode(b"host-user:h").decode()},
        "reg.example:5000/team": {"auth": base64.b64encode(b"team-user:t").decode()}}}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(explicit))
    assert find_credentials("reg.example:5000", "team/app").username == "team-user"  # type: ignore[union-attr]
    assert find_credentials("reg.example:5000", "other/app").username == "host-user"  # type: ignore[union-attr]
    assert find_credentials("elsewhere.example") is None
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(RegistryAuthError, match="not valid JSON"):
        find_credentials("reg.example:5000", auth_file=str(tmp_path / "bad.json"))


def test_docker_hub_aliases_and_identity_tokens(tmp_path: Path) -> None:
    path = tmp_path / "docker" / "config.json"
    path.write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {
        "username": "u", "identitytoken": "refresh-me"}}}))
    creds = find_credentials("docker.io", "library/busybox")
    assert creds is not None and (creds.username, creds.identity_token) == ("u", "refresh-me")


def test_challenges_are_parsed() -> None:
    assert parse_challenge('Bearer realm="https://auth.example/token",service="registry.example",'
                           'scope="repository:a/b:pull,push"') == ("bearer", {
                               "realm": "https://auth.example/token",
                               "service": "registry.example",
                               "scope": "repository:a/b:pull,push"})
    assert parse_challenge('Basic realm="csi"') == ("basic", {"realm": "csi"})


# ------------------------------------------------------------------ Basic (htpasswd)


def test_htpasswd_registry_with_auth_file(htpasswd_registry: Registry, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_AUTH_FILE",
                       str(_auth_file(tmp_path / "auth.json", htpasswd_registry.host)))
    result = push_archive(SMALL, f"{htpasswd_registry.host}/evidence/basic:b", options=PLAIN)
    out = tmp_path / "out.tar"
    pull_archive(result.pinned, str(out), options=PLAIN)
    assert filecmp.cmp(out, SMALL, shallow=False)


def test_htpasswd_registry_refuses_wrong_and_missing_credentials(
        htpasswd_registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RegistryAuthError, match="requires a user name and password"):
        push_archive(SMALL, f"{htpasswd_registry.host}/evidence/basic:x", options=PLAIN)
    wrong = RegistryOptions(plain_http=True, username=USER, password="wrong-password-123")
    with pytest.raises(RegistryAuthError, match="refused the credentials from --creds"):
        push_archive(SMALL, f"{htpasswd_registry.host}/evidence/basic:x", options=wrong)
    code = main(["push", SMALL, f"{htpasswd_registry.host}/evidence/basic:x", "--plain-http",
                 "--creds", f"{USER}:wrong-password-123"])
    err = capsys.readouterr().err
    assert code == 3
    assert err.startswith("csi: error: ") and err.count("\n") == 1
    assert "wrong-password-123" not in err and "Traceback" not in err


def test_buildah_backend_with_creds_and_redaction(htpasswd_registry: Registry,
                                                  tmp_path: Path) -> None:
    need("buildah")
    need("skopeo")
    good = RegistryOptions(plain_http=True, username=USER, password=PASSWORD)
    result = push_archive(SMALL, f"{htpasswd_registry.host}/evidence/bud-auth:b", options=good,
                          backend="buildah")
    out = tmp_path / "out.tar"
    pull_archive(result.pinned, str(out), options=good, backend="buildah")
    assert sha256_file(out) == sha256_file(SMALL)
    bad = RegistryOptions(plain_http=True, username=USER, password="not-the-password-42")
    with pytest.raises(RegistryAuthError) as info:
        push_archive(SMALL, f"{htpasswd_registry.host}/evidence/bud-auth:c", options=bad,
                     backend="buildah")
    assert "not-the-password-42" not in str(info.value)
    assert "the archive is untouched at" in str(info.value)


# ------------------------------------------------------------------ Bearer tokens


def test_token_registry_with_docker_config(token_registry: Registry, tmp_path: Path) -> None:
    _auth_file(tmp_path / "docker" / "config.json", token_registry.host)  # DOCKER_CONFIG
    result = push_archive(SMALL, f"{token_registry.host}/evidence/token:t", options=PLAIN)
    out = tmp_path / "out.tar"
    pulled = pull_archive(result.pinned, str(out), options=PLAIN)
    assert pulled.sha256 == sha256_file(SMALL)
    assert token_registry.token is not None
    from urllib.parse import parse_qs, urlparse

    scopes = {parse_qs(urlparse(r).query)["scope"][0] for r in token_registry.token.requests}
    assert scopes == {"repository:evidence/token:pull,push", "repository:evidence/token:pull"}


def test_token_registry_refuses_wrong_credentials(token_registry: Registry) -> None:
    wrong = RegistryOptions(plain_http=True, username=USER, password="nope-nope")
    with pytest.raises(RegistryAuthError, match="token server refused the credentials"):
        push_archive(SMALL, f"{token_registry.host}/evidence/token:x", options=wrong)


# ------------------------------------------------------------------ TLS


def test_tls_registry_needs_its_ca(tls_registry: Registry, tmp_path: Path) -> None:
    ref = f"{tls_registry.host}/evidence/tls:t"
    with pytest.raises(RegistryTLSError, match=r"certificate verify failed.*--ca-file"):
        push_archive(SMALL, ref, options=RegistryOptions(retries=1))
    result = push_archive(SMALL, ref, options=RegistryOptions(ca_file=str(tls_registry.ca)))
    out = tmp_path / "out.tar"
    pull_archive(result.pinned, str(out), options=RegistryOptions(tls_verify=False))
    assert filecmp.cmp(out, SMALL, shallow=False)


def test_tls_registry_through_buildah_with_ca(tls_registry: Registry, tmp_path: Path) -> None:
    need("buildah")
    need("skopeo")
    options = RegistryOptions(ca_file=str(tls_registry.ca))
    result = push_archive(SMALL, f"{tls_registry.host}/evidence/tls-bud:b", options=options,
                          backend="buildah")
    out = tmp_path / "out.tar"
    pull_archive(result.pinned, str(out), options=options)
    assert filecmp.cmp(out, SMALL, shallow=False)


def test_https_to_a_plain_http_registry(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(RegistryTLSError, match=r"plain HTTP.*--plain-http"):
        push_archive(SMALL, f"{registry.host}/evidence/https:h",
                     options=RegistryOptions(retries=1))
    result = push_archive(SMALL, f"{registry.host}/evidence/https:h",
                          options=RegistryOptions(tls_verify=False))  # falls back, as skopeo
    assert result.archive_sha256 == sha256_file(SMALL)
