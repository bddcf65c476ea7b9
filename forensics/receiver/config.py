"""``csi serve`` settings: defaults < ``csi.yaml`` < ``CSI_*`` environment < flags.

The file is ``--config FILE``, else ``$CSI_CONFIG``, else the default location
``$XDG_CONFIG_HOME/csi/config.yaml`` (``~/.config/csi/config.yaml``) when it
exists (:func:`default_config_file`).

Every setting has one name: the key under ``serve:`` in the config file, the
environment variable ``CSI_<NAME>`` (upper case) and, for the common ones, a
flag ``--<name-with-dashes>``. Example ``csi.yaml``::

    serve:
      listen: 0.0.0.0:2802          # default 127.0.0.1:2802
      executor: local               # local | argo (argo needs argo_server)
      backend: kubernetes           # kubernetes | podman
      policy: /etc/csi/policy.yaml  # default: the packaged default policy
      token_file: /var/run/secrets/csi/token
      hmac_secret_file: /var/run/secrets/csi/hmac
      tls_cert: /etc/csi/tls/tls.crt
      tls_key: /etc/csi/tls/tls.key
      tls_client_ca: /etc/csi/tls/ca.crt    # mTLS for Falco's http_output
      allow_unauthenticated: false
      journal_sync: normal          # normal (survives kill -9) | full (survives power loss)
      journal_retention: 30d        # forget alerts and captures that ended longer ago (0: never)
      header_timeout: 10s           # a connection's request headers must arrive within this
      body_timeout: 30s             # and the request body within this
      max_connections: 1000         # default: RLIMIT_NOFILE less a reserve, at most 1024
      log_format: json              # text (default) | json: one JSON object per line
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from forensics.errors import UsageError
from forensics.paths import KUBELET_CHECKPOINT_DIR
from forensics.receiver.executor import EXECUTORS
from forensics.receiver.journal import SYNC_MODES
from forensics.receiver.logs import LOG_FORMATS

BACKENDS = ("kubernetes", "podman")
_LISTEN = re.compile(r"^(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]*)):(\d{1,5})$")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class ServeConfig:
    listen: str = "127.0.0.1:2802"
    executor: str = "local"
    backend: str = "kubernetes"
    policy: str | None = None  # None: the packaged default policy
    token_file: str | None = None
    hmac_secret_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    allow_unauthenticated: bool = False
    home: str | None = None  # the csi home (CSI_HOME); the journal lives under it
    journal: str | None = None  # default: <home>/receiver/journal.sqlite3
    journal_sync: str = "normal"
    journal_retention: float = 30 * 86400.0  # seconds; 0 keeps everything
    max_body: int = 1024 * 1024
    header_timeout: float = 10.0  # seconds for a request's headers (from open or keep-alive)
    body_timeout: float = 30.0  # seconds for a request's body
    max_connections: int | None = None  # None: from RLIMIT_NOFILE (forensics.receiver.gate)
    registry: str | None = None  # where captures push; None: the OCI layout in the home
    registry_backend: str = "native"  # or "buildah"
    kubeconfig: str | None = None  # kubernetes backend: default kubectl's rules / in-cluster
    context: str | None = None
    checkpoint_dir: str = KUBELET_CHECKPOINT_DIR  # where the node's kubelet writes
    argo_server: str | None = None  # --executor argo: https://argo-server.argo:2746
    argo_namespace: str = "csi"
    argo_token_file: str | None = None  # default: $ARGO_TOKEN
    argo_ca_file: str | None = None
    workers: int | None = None  # local executor threads; default: the policy's max_cluster
    drain_timeout: float = 30.0
    access_log: bool = False
    log_level: str = "info"
    log_format: str = "text"  # or "json": one JSON object per line

    @property
    def host(self) -> str:
        return parse_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return parse_listen(self.listen)[1]

    def home_path(self) -> Path:
        from forensics.paths import csi_home

        return Path(self.home) if self.home else csi_home()

    def journal_path(self) -> Path:
        return Path(self.journal) if self.journal else \
            self.home_path() / "receiver" / "journal.sqlite3"


_FIELDS = {f.name: f for f in fields(ServeConfig)}
_BOOLS = {"allow_unauthenticated", "access_log"}
_INTS = {"max_body", "workers", "max_connections"}
_FLOATS = {"drain_timeout"}
_DURATIONS = {"journal_retention", "header_timeout", "body_timeout"}


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``:PORT`` (all interfaces)."""
    match = _LISTEN.match(text.strip())
    if match is None or int(match.group(3)) > 65535:
        raise UsageError(f"listen address {text!r} is not HOST:PORT (like 127.0.0.1:2802)")
    host = match.group(1) or match.group(2) or "0.0.0.0"
    return host, int(match.group(3))


def _coerce(name: str, value: Any, where: str) -> Any:
    if value is None:
        return None
    try:
        if name in _BOOLS:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE | _FALSE:
                return text in _TRUE
            raise ValueError("not true or false")
        if name in _INTS:
            number = int(value)
            if number < 1 or isinstance(value, bool | float):
                raise ValueError("not a whole number >= 1")
            return number
        if name in _DURATIONS:
            from forensics.units import parse_duration

            return parse_duration(value)
        if name in _FLOATS:
            seconds = float(value)
            if seconds < 0:
                raise ValueError("negative")
            return seconds
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{where}: {value!r} is not valid for {name} ({exc})") from None
    if not isinstance(value, str):
        raise UsageError(f"{where}: {name} must be a string, not {type(value).__name__}")
    return value


def _from_file(path: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"config {path}: cannot read it", why=exc.strerror or str(exc)
                         ) from None
    except yaml.YAMLError as exc:
        raise UsageError(f"config {path}: not valid YAML", why=" ".join(str(exc).split())
                         ) from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("serve", {}), dict):
        raise UsageError(f"config {path}: expected a mapping with a 'serve' section")
    section = data.get("serve") or {}
    unknown = sorted(str(k) for k in section if k not in _FIELDS)
    if unknown:
        raise UsageError(f"config {path}: unknown serve setting(s) {', '.join(unknown)} "
                         f"(known: {', '.join(_FIELDS)})")
    return {k: _coerce(k, v, f"config {path}") for k, v in section.items()}


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    found = {}
    for name in _FIELDS:
        key = f"CSI_{name.upper()}"
        if env.get(key) not in (None, ""):
            found[name] = _coerce(name, env[key], key)
    return found


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/csi`` (a relative XDG_CONFIG_HOME is ignored, as the XDG
    specification says), else ``~/.config/csi``."""
    env = os.environ if env is None else env
    xdg = env.get("XDG_CONFIG_HOME") or ""
    if os.path.isabs(xdg):
        return Path(xdg) / "csi"
    home = env.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".config" / "csi"


def default_config_file(env: Mapping[str, str] | None = None) -> str | None:
    """The default config file, ``config.yaml`` in :func:`config_dir`, if it exists."""
    path = config_dir(env) / "config.yaml"
    return str(path) if path.is_file() else None


def load_serve_config(config_file: str | None = None, flags: Mapping[str, Any] | None = None,
                      env: Mapping[str, str] | None = None) -> ServeConfig:
    """Merge the layers (flags > env > file > defaults) and validate the result.

    The file: ``config_file``, else ``$CSI_CONFIG``, else :func:`default_config_file`."""
    env = os.environ if env is None else env
    config_file = config_file or env.get("CSI_CONFIG") or default_config_file(env)
    merged: dict[str, Any] = _from_file(config_file) if config_file else {}
    merged.update(_from_env(env))
    merged.update({k: _coerce(k, v, f"--{k.replace('_', '-')}")
                   for k, v in (flags or {}).items() if v is not None})
    config = replace(ServeConfig(), **merged)
    validate(config)
    return config


def validate(config: ServeConfig) -> None:
    parse_listen(config.listen)
    for name, value, allowed in (("executor", config.executor, EXECUTORS),
                                 ("backend", config.backend, BACKENDS),
                                 ("journal_sync", config.journal_sync, tuple(SYNC_MODES))):
        if value not in allowed:
            raise UsageError(f"{name} {value!r} is not one of {', '.join(allowed)}")
    if bool(config.tls_cert) != bool(config.tls_key):
        raise UsageError("tls_cert and tls_key go together: set both or neither")
    if config.tls_client_ca and not config.tls_cert:
        raise UsageError("tls_client_ca (mTLS) needs TLS: set tls_cert and tls_key too")
    for name, seconds in (("header_timeout", config.header_timeout),
                          ("body_timeout", config.body_timeout)):
        if seconds <= 0:
            raise UsageError(f"{name} must be more than 0 seconds")
    if config.log_format not in LOG_FORMATS:
        raise UsageError(f"log_format {config.log_format!r} is not {' or '.join(LOG_FORMATS)}")
    if config.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise UsageError(f"log_level {config.log_level!r} is not debug, info, warning or error")
