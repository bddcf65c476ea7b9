"""Registry credentials and the two auth schemes of the Distribution API.

Credentials are looked up as podman/skopeo and docker do, first match wins:
``--authfile``, ``$REGISTRY_AUTH_FILE``, ``$XDG_RUNTIME_DIR/containers/auth.json``,
``$XDG_CONFIG_HOME/containers/auth.json``, ``$DOCKER_CONFIG/config.json``
(``~/.docker/config.json``). Entries may be per host or per repository
(``host/namespace``), carry ``auth`` (base64 user:password), an
``identitytoken``, or name a ``credHelpers``/``credsStore`` helper.

A 401 carries ``WWW-Authenticate``: ``Basic`` (send the credentials) or
``Bearer realm=…,service=…,scope=…`` (fetch a token from the realm, with the
credentials if any, then send the token).
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forensics.storage.errors import RegistryAuthError
from forensics.storage.limits import read_file_capped

_HELPER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

_CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')
_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""
    source: str = ""  # where they came from (never the secret itself)

    def basic_header(self) -> str:
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.password, self.identity_token) if s)


def auth_files(explicit: str | None = None) -> list[Path]:
    """Candidate credential files, in lookup order."""
    files: list[Path] = []
    if explicit:
        return [Path(explicit)]
    if os.environ.get("REGISTRY_AUTH_FILE"):
        files.append(Path(os.environ["REGISTRY_AUTH_FILE"]))
    if os.environ.get("XDG_RUNTIME_DIR"):
        files.append(Path(os.environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    files.append(Path(config_home) / "containers" / "auth.json")
    docker_dir = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    files.append(Path(docker_dir) / "config.json")
    return files


def _normalise_key(key: str) -> str:
    key = re.sub(r"^https?://", "", key.strip()).rstrip("/")
    for suffix in ("/v1", "/v2"):
        key = key.removesuffix(suffix)
    return "docker.io" + key[len(key.split("/")[0]):] if key.split("/")[0] in _HUB_ALIASES \
        else key


def _candidates(registry: str, repository: str) -> list[str]:
    """Keys to try, most specific first: host/ns/repo, host/ns, host."""
    host = "docker.io" if registry in _HUB_ALIASES else registry
    parts = repository.split("/") if repository else []
    keys = [f"{host}/{'/'.join(parts[:i])}" for i in range(len(parts), 0, -1)]
    return [*keys, host]


def _decode_entry(entry: Any, source: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    token = str(entry.get("identitytoken") or "")
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(str(entry["auth"])).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise RegistryAuthError(f"{source}: an 'auth' entry is not base64 user:password",
                                    hint="log in again with podman/docker login") from None
        return Credentials(user, password, token, source)
    if entry.get("username") or token:
        return Credentials(str(entry.get("username") or ""), str(entry.get("password") or ""),
                           token, source)
    return None


def _from_helper(helper: str, host: str, source: str) -> Credentials | None:
    from forensics.names import shown
    from forensics.run import run

    if not _HELPER.fullmatch(helper):  # "x/../../tmp/evil" would run a path, "-" an option
        raise RegistryAuthError(f"{source}: credential helper {shown(helper)} is not a "
                                "program name", hint="credsStore/credHelpers name a "
                                "docker-credential-NAME program on PATH")
    done = run([f"docker-credential-{helper}", "get"], input_text=host, timeout=30)
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        raise RegistryAuthError(f"docker-credential-{helper}: unreadable answer for {host}") \
            from None
    user, secret = str(answer.get("Username") or ""), str(answer.get("Secret") or "")
    if user == "<token>":
        return Credentials(identity_token=secret, source=f"{source} ({helper})")
    return Credentials(user, secret, source=f"{source} ({helper})")


_AUTH_FILE_MAX = 4 << 20  # an auth.json holds a few entries


def find_credentials(registry: str, repository: str = "", *,
                     auth_file: str | None = None) -> Credentials | None:
    """The credentials for ``registry`` (and ``repository``), or None (anonymous)."""
    wanted = _candidates(registry, repository)
    for path in auth_files(auth_file):
        try:
            raw = read_file_capped(path, _AUTH_FILE_MAX)
            if raw is None:
                raise RegistryAuthError(f"{path}: larger than {_AUTH_FILE_MAX} bytes",
                                        hint="this is not a credentials file")
            text = raw.decode("utf-8", "replace")
        except FileNotFoundError:
            if auth_file:
                raise RegistryAuthError(f"{path}: no such auth file") from None
            continue
        except OSError as exc:
            raise RegistryAuthError(f"{path}: cannot read", why=exc.strerror or "") from None
        try:
            doc = json.loads(text) if text.strip() else {}
        except ValueError as exc:
            raise RegistryAuthError(f"{path}: not valid JSON", why=str(exc)) from None
        if not isinstance(doc, dict):
            continue
        auths = {_normalise_key(k): v for k, v in (doc.get("auths") or {}).items()}
        for key in wanted:
            creds = _decode_entry(auths.get(key), str(path))
            if creds is not None:
                return creds
        helpers = {_normalise_key(k): v for k, v in (doc.get("credHelpers") or {}).items()}
        host = wanted[-1]
        helper = helpers.get(host) or doc.get("credsStore")
        if helper:
            return _from_helper(str(helper), registry, str(path))
    return None


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="…",service="…"`` -> ("bearer", {"realm": …, "service": …})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
              for m in _CHALLENGE_PARAM.finditer(rest)}
    return scheme.lower(), params
