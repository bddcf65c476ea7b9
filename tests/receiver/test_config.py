"""``csi serve`` settings: flags > environment > file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from forensics.errors import UsageError
from forensics.receiver.config import ServeConfig, load_serve_config, parse_listen


def test_defaults() -> None:
    config = load_serve_config(None, {}, {})
    assert config == ServeConfig()
    assert (config.host, config.port) == ("127.0.0.1", 2802)
    assert config.executor == "local" and config.backend == "kubernetes"
    assert config.journal_sync == "normal"
    assert config.journal_retention == 30 * 86400


@pytest.mark.parametrize(("text", "seconds"), [("7d", 7 * 86400), ("12h", 43200), ("0", 0)])
def test_journal_retention_is_a_duration(text: str, seconds: float) -> None:
    assert load_serve_config(None, {}, {"CSI_JOURNAL_RETENTION": text}).journal_retention \
        == seconds


def test_precedence(tmp_path: Path) -> None:
    file = tmp_path / "csi.yaml"
    file.write_text("serve:\n  listen: 0.0.0.0:9000\n  backend: podman\n  max_body: 4096\n"
                    "  journal_sync: full\n  allow_unauthenticated: true\n")
    env = {"CSI_LISTEN": "127.0.0.2:9001", "CSI_JOURNAL_SYNC": "normal",
           "CSI_DRAIN_TIMEOUT": "2.5", "CSI_HOME": str(tmp_path)}
    config = load_serve_config(str(file), {"listen": "127.0.0.3:9002", "backend": None}, env)
    assert config.listen == "127.0.0.3:9002"  # flag beats env and file
    assert config.journal_sync == "normal"  # env beats file
    assert config.backend == "podman" and config.max_body == 4096  # file beats defaults
    assert config.allow_unauthenticated is True and config.drain_timeout == 2.5
    assert config.journal_path() == tmp_path / "receiver" / "journal.sqlite3"
    via_env = load_serve_config(None, {}, {"CSI_CONFIG": str(file)})
    assert via_env.listen == "0.0.0.0:9000"


@pytest.mark.parametrize(("text", "host", "port"), [
    ("127.0.0.1:2802", "127.0.0.1", 2802), ("0.0.0.0:80", "0.0.0.0", 80),
    ("[::1]:2802", "::1", 2802), (":2802", "0.0.0.0", 2802), ("localhost:0", "localhost", 0)])
def test_listen_addresses(text: str, host: str, port: int) -> None:
    assert parse_listen(text) == (host, port)


@pytest.mark.parametrize(("flags", "env", "file", "message"), [
    ({"listen": "2802"}, {}, None, "is not HOST:PORT"),
    ({"listen": "h:99999"}, {}, None, "is not HOST:PORT"),
    ({"executor": "k8s"}, {}, None, "executor 'k8s' is not one of local, argo"),
    ({}, {"CSI_BACKEND": "docker"}, None, "backend 'docker'"),
    ({}, {"CSI_MAX_BODY": "big"}, None, "CSI_MAX_BODY: 'big' is not valid for max_body"),
    ({}, {"CSI_ALLOW_UNAUTHENTICATED": "maybe"}, None, "not true or false"),
    ({"tls_cert": "c.pem"}, {}, None, "tls_cert and tls_key go together"),
    ({"tls_client_ca": "ca.pem"}, {}, None, "needs TLS"),
    ({}, {}, "serve:\n  listne: x\n", "unknown serve setting(s) listne"),
    ({}, {}, "serve: [1]\n", "expected a mapping with a 'serve' section"),
    ({}, {}, "serve: {listen: [\n", "not valid YAML"),
    ({}, {}, "serve:\n  max_body: 1.5\n", "not valid for max_body"),
    ({}, {"CSI_JOURNAL_RETENTION": "soon"}, None, "not valid for journal_retention"),
])
def test_bad_settings_are_one_line_errors(tmp_path: Path, flags: dict[str, object],
                                          env: dict[str, str], file: str | None,
                                          message: str) -> None:
    path = None
    if file is not None:
        path = tmp_path / "csi.yaml"
        path.write_text(file)
    with pytest.raises(UsageError) as error:
        load_serve_config(str(path) if path else None, flags, env)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_missing_config_file() -> None:
    with pytest.raises(UsageError, match="cannot read it"):
        load_serve_config("/nonexistent/csi.yaml", {}, {})
