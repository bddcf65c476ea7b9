"""Redaction of secrets, the one module every output uses (inspect, analyze, the report).

What is a secret: an environment variable whose name says so (``*PASSWORD*``,
``*SECRET*``, ``*TOKEN*``, ``*API_KEY*``, ``AWS_SECRET_ACCESS_KEY``,
``MYSQL_PWD``, …) or whose value has a known credential shape (AWS key ids,
GitHub/Slack tokens, Stripe live keys, private keys); in command lines and
free text, the value of an option named like one (``--password=…``,
``--password …``, ``--api-key …``), ``-p…`` given to mysql-like tools and
``sshpass``, ``NAME=value`` pairs with such a name, and the password of a
URL (``scheme://user:pass@host``).

A redacted value is shown as ``[redacted:<12 hex>]``: the start of its
*fingerprint*, an HMAC-SHA256 under a key made for this installation on first
use (``$CSI_HOME/keys/secret-fingerprint.key``, mode 0600; or the key text in
``$CSI_FINGERPRINT_KEY``, which every pod of one installation should share).
Two reports of one installation show the same fingerprint for the same
secret; nobody without the key can test a guess (``sha256("hunter2")`` is
in every rainbow table; this is not). Neither the value nor its length is kept.

``Redactor(reveal=True)`` changes nothing: for a human who asks (``--reveal``),
never for a stored report. Raw memory (``csi memparse`` hexdumps and
searches) is shown as it is: it is the evidence itself, not a structured view.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

KEY_ENV = "CSI_FINGERPRINT_KEY"
KEY_FILE = Path("keys") / "secret-fingerprint.key"
FINGERPRINT_PREFIX = "hmac-sha256:"
SHOWN_HEX = 12

SECRET_NAME = re.compile(
    r"(PASSW(OR)?D|PASSWD|_PWD$|^PWD_|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL|"
    r"ACCESS_?KEY|AUTH|^STRIPE_|_DSN$|CONN(ECTION)?_?STRING)", re.IGNORECASE)
VALUE_TYPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("aws-access-key-id", re.compile(r"^(AKIA|ASIA)[0-9A-Z]{16}$")),
    ("github-token", re.compile(r"^gh[pousr]_[A-Za-z0-9]{36}$")),
    ("slack-token", re.compile(r"^xox[abprs]-")),
    ("stripe-live-key", re.compile(r"^[sr]k_live_")),
    ("private-key", re.compile(r"-----BEGIN ([A-Z]+ )?PRIVATE KEY-----")),
)
# an option whose value is a secret: --password=x, --db-password x, -api-key x, --token x
SECRET_OPTION = re.compile(
    r"^(?P<opt>--?(?!-)(?!no-)[A-Za-z0-9_.-]*?(passw(or)?d|passwd|pwd|secret|token|api[-_]?key|"
    r"private[-_]?key|credentials?|access[-_]?key)[A-Za-z0-9_.-]*)(?:(?P<eq>=)(?P<value>.*))?$",
    re.IGNORECASE | re.DOTALL)
PASSWORD_P_TOOLS = frozenset((
    "mysql", "mysqldump", "mysqladmin", "mysqlimport", "mysqlshow", "mysqlcheck", "mysqlpump",
    "mysqlslap", "mysqlsh", "mariadb", "mariadb-dump", "mariadb-admin", "mariadb-import",
    "mariadb-show", "mariadb-check", "mariadb-slap", "sshpass"))
URL_CREDENTIALS = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)"
                             r"(?P<password>[^/\s@]+)(?=@)")
NAME_VALUE = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)=(?P<value>.+)$", re.DOTALL)
# Every rule above needs one of these (lower-cased) in the text: most command lines and
# environments have none, and one pass over their joined text lets them through untouched
# (hot path: inspect of 100,000 processes; substring tests beat a case-insensitive regex 10x).
NEEDLES = ("://", "passw", "pwd", "secret", "token", "key", "credential", "auth", "stripe_",
           "_dsn", "conn", "akia", "asia", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "xox",
           "k_live_", "begin", "mysql", "mariadb", "sshpass")


def maybe_secret(text: str) -> bool:
    """False only if no redaction rule can apply to ``text`` (a fast pre-test)."""
    lower = text.lower()
    return any(needle in lower for needle in NEEDLES)


COMMAND_BREAKS = frozenset((";", "|", "||", "&&", "&"))
SPACE = re.compile(r"(\s+)")


def classify(name: str, value: str) -> str | None:
    """The kind of secret an environment entry ``name=value`` holds, or None."""
    for kind, pattern in VALUE_TYPES:
        if pattern.search(value):
            return kind
    if value and SECRET_NAME.search(name):
        return "named-secret"
    return None


# ------------------------------------------------------------------ the key

_keys: dict[str, bytes] = {}


def installation_key(home: Path | None = None) -> bytes:
    """This installation's fingerprint key (made on first use, 0600)."""
    text = os.environ.get(KEY_ENV)
    if text:
        return text.encode()
    from forensics.home import csi_home  # a path fact; the key lives with the others

    path = (home or csi_home()) / KEY_FILE
    cached = _keys.get(str(path))
    if cached is None:
        cached = _keys[str(path)] = _load_or_create(path)
    return cached


def _load_or_create(path: Path) -> bytes:
    import secrets  # lazy: start-up (inspect and show never make a key)
    import tempfile

    from forensics.errors import CsiError
    from forensics.home import private_dir, warn_if_readable

    try:
        key = path.read_bytes()
        warn_if_readable(path, "the secret fingerprint key")
        if len(key) >= 16:
            return key
        raise CsiError(f"{path}: the secret fingerprint key is {len(key)} bytes",
                       hint="remove it and a new one is made (fingerprints then change)")
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise CsiError(f"{path}: cannot read the secret fingerprint key",
                       why=exc.strerror or str(exc)) from None
    try:
        private_dir(path.parent, path.parent.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-fpkey-")  # 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, path)  # fails if another process made the key first
        except FileExistsError:
            pass
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return path.read_bytes()
    except OSError as exc:
        raise CsiError(f"{path}: cannot create the secret fingerprint key",
                       why=exc.strerror or str(exc), hint="check that CSI_HOME is writable"
                       ) from None


# ------------------------------------------------------------------ redaction


class Redactor:
    """Masks secrets in environments, argv lists, free text and JSON-like trees."""

    def __init__(self, key: bytes | None = None, *, reveal: bool = False) -> None:
        self.reveal = reveal
        self._key = key

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = installation_key()
        return self._key

    def fingerprint(self, value: str) -> str:
        digest = hmac.new(self.key, value.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return FINGERPRINT_PREFIX + digest.hexdigest()

    def mask(self, value: str) -> str:
        """``[redacted:<start of the fingerprint>]``; the value itself if revealing."""
        return value if self.reveal or not value else self.masked(value)

    def masked(self, value: str) -> str:
        return f"[redacted:{self.fingerprint(value)[len(FINGERPRINT_PREFIX):][:SHOWN_HEX]}]"

    def shown(self, value: str) -> dict[str, str]:
        """How a secret the analyzer found is recorded: never the value, unless revealed."""
        out = {"redacted": self.masked(value), "fingerprint": self.fingerprint(value)}
        if self.reveal:
            out["value"] = value
        return out

    # -- environments

    def env_value(self, name: str, value: str) -> str:
        if not maybe_secret(name) and not maybe_secret(value):
            return value
        return self.mask(value) if classify(name, value) else self.text(value)

    def env(self, item: str) -> dict[str, Any]:
        """One ``NAME=value`` entry as the report holds it."""
        name, sep, value = item.partition("=")
        if not sep:
            return {"name": item, "value": None, "redacted": False}
        shown = self.env_value(name, value)
        return {"name": name, "value": shown, "redacted": shown != value}

    def env_dict(self, env: dict[str, str]) -> dict[str, str]:
        if self.reveal or not maybe_secret("\0".join(f"{n}={v}" for n, v in env.items())):
            return env
        return {name: self.env_value(name, value) if maybe_secret(f"{name}={value}")
                else value for name, value in env.items()}

    # -- command lines and text

    def argv(self, argv: Iterable[str]) -> list[str]:
        """A command line, its secrets masked (an argument holding a shell line is text)."""
        args = list(argv)
        if self.reveal or not maybe_secret("\0".join(args)):
            return args
        out = self._tokens(args)
        return [self.text(a) if any(c.isspace() for c in a) else o for a, o in zip(args, out,
                                                                                  strict=True)]

    def text(self, value: str) -> str:
        """Free text (a shell line, a Falco output, a finding's summary), its secrets masked."""
        if self.reveal or not value or not maybe_secret(value):
            return value
        if not any(c.isspace() for c in value):
            return self._tokens([value])[0]
        parts = SPACE.split(value)
        words = self._tokens(parts[0::2])
        parts[0::2] = words
        return "".join(parts)

    def _tokens(self, tokens: list[str]) -> list[str]:
        if self.reveal:
            return tokens
        out: list[str] = []
        tool = ""  # the mysql-like tool whose options these are
        secret_next = False
        for token in tokens:
            if secret_next and token and not token.startswith("-"):
                out.append(self.mask(token))
                secret_next = False
                continue
            secret_next = False
            word = token.strip("'\"")
            base = word.rsplit("=", 1)[-1].rsplit("/", 1)[-1]  # command=/usr/bin/mysql
            if base in PASSWORD_P_TOOLS:
                tool = base
            elif token in COMMAND_BREAKS:
                tool = ""
            if tool and len(word) > 2 and word.startswith("-p") and word[2] != "-":
                out.append("-p" + self.mask(word[2:]))  # mysql -phunter2
                continue
            option = SECRET_OPTION.match(word)
            secret_next = bool(option and option["eq"] is None) or (
                tool == "sshpass" and word == "-p")
            out.append(self._token(token))
        return out

    def _token(self, token: str) -> str:
        if "://" in token:
            token = URL_CREDENTIALS.sub(lambda m: m["head"] + self.mask(m["password"]), token)
        option = SECRET_OPTION.match(token)
        if option and option["eq"]:
            return f"{option['opt']}={self.mask(option['value'])}"
        pair = NAME_VALUE.match(token)
        if pair and not token.startswith("-") and classify(pair["name"], pair["value"]):
            return f"{pair['name']}={self.mask(pair['value'])}"
        if any(p.search(token) for _, p in VALUE_TYPES):
            return self.mask(token)
        return token

    # -- trees

    def tree(self, node: Any, argv_keys: frozenset[str] = frozenset(("cmdline", "argv"))
             ) -> Any:
        """A copy of a JSON-like tree with every string's secrets masked (iteratively)."""
        if self.reveal:
            return node
        root: list[Any] = [node]
        stack: list[tuple[Any, Any, Any]] = [(root, 0, node)]
        while stack:
            parent, slot, item = stack.pop()
            if isinstance(item, str):
                parent[slot] = self.text(item)
            elif isinstance(item, dict):
                copy = dict(item)
                parent[slot] = copy
                for k, v in copy.items():
                    if k in argv_keys and isinstance(v, list) and all(
                            isinstance(a, str) for a in v):
                        copy[k] = self.argv(v)
                    elif k in ("environment_variables",) and isinstance(v, dict):
                        copy[k] = self.env_dict({str(n): str(x) for n, x in v.items()})
                    elif k not in ("fingerprint", "redacted"):
                        stack.append((copy, k, v))
            elif isinstance(item, list):
                copy_list = list(item)
                parent[slot] = copy_list
                stack.extend((copy_list, i, v) for i, v in enumerate(copy_list))
        return root[0]

    def processes(self, node: Any) -> Any:
        """Mask, in place, the command lines and environments anywhere in a view's tree
        (keys ``cmdline``, ``argv``, ``environment_variables``); other strings are left."""
        if self.reveal:
            return node
        stack = [node]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(v for v in item if isinstance(v, dict | list))
                continue
            if not isinstance(item, dict):
                continue
            for k, v in item.items():
                if k in ("cmdline", "argv") and isinstance(v, list) and all(
                        isinstance(a, str) for a in v):
                    item[k] = self.argv(v)
                elif k == "cmdline" and isinstance(v, str):
                    item[k] = self.text(v)
                elif k == "environment_variables" and isinstance(v, dict):
                    item[k] = self.env_dict({str(n): str(x) for n, x in v.items()})
                elif isinstance(v, dict | list):
                    stack.append(v)
        return node


UNREDACTED_RECORDS = frozenset(("file", "connection", "secret"))  # paths, addresses; masked


def redact_analysis(result: dict[str, Any], redactor: Redactor | None = None) -> dict[str, Any]:
    """``csi analyze``'s output with the secrets in findings and records masked."""
    redactor = redactor or Redactor()
    if redactor.reveal:
        return result
    records = {kind: items if kind in UNREDACTED_RECORDS else redactor.tree(items)
               for kind, items in (result.get("records") or {}).items()}
    return {**result, "findings": redactor.tree(result.get("findings", [])), "records": records}
