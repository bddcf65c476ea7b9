"""Which signers a verification accepts: the installation's key, trusted keys, or named ones.

A report's signature proves only that the document is intact under the key
embedded in it; anyone can re-sign an altered report with a fresh key. So
``csi report verify`` accepts a signer only if it is trusted:

- by default, this installation's signing key (never created by a
  verification) and every key listed in ``$CSI_HOME/trusted-keys``: one a
  line, as a fingerprint (``sha256:<64 hex>``), a bare 64-hex fingerprint
  or the base64 of a raw Ed25519 public key; ``#`` starts a comment;
- or, when the user names keys (``--key FILE``, ``--key-fingerprint FP``),
  exactly those.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from forensics.home import csi_home
from forensics.report.errors import ReportError
from forensics.report.signing import fingerprint, load_signing_key

TRUSTED_KEYS_FILE = "trusted-keys"
MAX_TRUST_FILE = 1 << 20
_HEX = re.compile(r"^(sha256:)?([0-9a-f]{64})$")


@dataclass(frozen=True)
class Trust:
    """The fingerprints a verification accepts, each with where it came from."""

    keys: dict[str, str] = field(default_factory=dict)  # fingerprint -> origin
    explicit: bool = False  # named by the user: only these
    trusted_file: Path | None = None  # where a user can add a key (default trust)

    def problem(self, signer: str) -> str | None:
        """None if ``signer`` is trusted, else one line saying why not and what to do."""
        if signer in self.keys:
            return None
        if self.explicit:
            named = ", ".join(sorted(self.keys))
            return f"report.json: signed by {signer}, not by the expected key {named}"
        where = f"add it to {self.trusted_file}" if self.trusted_file else "add it to the " \
            "trusted-keys file"
        known = (f"trusted here: {', '.join(f'{fp} ({o})' for fp, o in sorted(self.keys.items()))}"
                 if self.keys else "no key is trusted here: this installation has no signing "
                 "key and no trusted-keys file")
        return (f"report.json: signed by {signer}, which is not a trusted key ({known}); if you "
                f"trust this signer, {where} or give --key-fingerprint {signer}")

    def origin(self, signer: str | None) -> str:
        return self.keys.get(signer or "", "")


def normal_fingerprint(text: str, where: str = "fingerprint") -> str:
    """``sha256:<hex>`` from a fingerprint, with or without its prefix; else a ReportError."""
    match = _HEX.match(text.strip().lower())
    if not match:
        raise ReportError(f"{where}: {text.strip()[:80]!r} is not a key fingerprint",
                          hint="a fingerprint is sha256: and 64 hex digits, as `csi report "
                          "key` prints it")
    return "sha256:" + match.group(2)


def _line_fingerprint(line: str, where: str) -> str:
    if _HEX.match(line.lower()):
        return normal_fingerprint(line, where)
    try:
        raw = base64.b64decode(line, validate=True)
        Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise ReportError(f"{where}: neither a key fingerprint (sha256:<64 hex>) nor a base64 "
                          "Ed25519 public key", hint="fix or remove the line") from None
    return fingerprint(raw)


def read_trusted_keys(path: Path) -> dict[str, str]:
    """The fingerprints listed in a trusted-keys file (none if it does not exist)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_TRUST_FILE + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ReportError(f"{path}: cannot read the trusted keys",
                          why=exc.strerror or str(exc)) from None
    if len(data) > MAX_TRUST_FILE:
        raise ReportError(f"{path}: larger than {MAX_TRUST_FILE} bytes: not a trusted-keys file")
    out = {}
    for number, raw in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line:
            out[_line_fingerprint(line, f"{path}:{number}")] = f"{path.name}:{number}"
    return out


def default_trust(home: Path | None = None) -> Trust:
    """This installation's key (if it has one) and the keys in ``$CSI_HOME/trusted-keys``."""
    home = home or csi_home()
    keys: dict[str, str] = {}
    with contextlib.suppress(ReportError):  # no key yet: nothing of ours to trust
        keys[load_signing_key(home, create=False).fingerprint] = "this installation's key"
    path = home / TRUSTED_KEYS_FILE
    return Trust({**read_trusted_keys(path), **keys}, trusted_file=path)


def key_file_fingerprint(path: Path) -> str:
    """The fingerprint of the Ed25519 key in a PEM file (public or private)."""
    try:
        pem = path.read_bytes()[:MAX_TRUST_FILE]
    except OSError as exc:
        raise ReportError(f"{path}: cannot read the key", why=exc.strerror or str(exc)) from None
    key: object
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            raise ReportError(f"{path}: not a PEM Ed25519 key",
                              hint="`csi report key` prints the public key to give") from None
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise ReportError(f"{path}: not an Ed25519 key")
    return fingerprint(key.public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw))


def explicit_trust(key_files: Iterable[str] = (), fingerprints: Iterable[str] = ()) -> Trust:
    """Exactly the keys the user named."""
    keys = {key_file_fingerprint(Path(f)): f"--key {f}" for f in key_files}
    keys.update({normal_fingerprint(fp, "--key-fingerprint"): "--key-fingerprint"
                 for fp in fingerprints})
    return Trust(keys, explicit=True)
