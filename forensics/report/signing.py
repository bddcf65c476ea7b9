"""Ed25519 signatures over canonical JSON, and the key that makes them.

The key is, in order: the PEM in ``$CSI_SIGNING_KEY_PEM`` (a Kubernetes
Secret as an environment variable), the PEM file at ``$CSI_SIGNING_KEY``,
or ``$CSI_HOME/keys/report-signing-ed25519.pem``, generated on first use
(mode 0600, created atomically so that two processes never make two keys).

A signed document carries a ``signature`` object: the algorithm, the raw
public key (base64) and its fingerprint, so that it verifies anywhere; the
sha256 of each of its parts (see :func:`~forensics.report.canonical.part_digests`),
so that a failed verification names what changed; and the signature itself
over ``b"csi:" + schema + b"\\0" + JCS(document without signature.value)``.
The embedded key proves the document is intact, not who signed it: compare
the fingerprint with the signer's (``csi report key``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from forensics.home import csi_home, private_dir, warn_if_readable
from forensics.report.canonical import canonical_bytes, part_digests
from forensics.report.errors import ReportError

ALGORITHM = "Ed25519"
CANONICALIZATION = "RFC 8785 (JCS)"
KEY_ENV_PEM = "CSI_SIGNING_KEY_PEM"
KEY_ENV_PATH = "CSI_SIGNING_KEY"
KEY_FILE = Path("keys") / "report-signing-ed25519.pem"


def fingerprint(public_raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(public_raw).hexdigest()


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    origin: str  # where it came from, for messages

    @property
    def public_raw(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.Raw,
                                                      serialization.PublicFormat.Raw)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_raw)

    def public_pem(self) -> str:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _parse(pem: bytes, origin: str) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ReportError(f"{origin}: not an unencrypted PEM private key", why=str(exc)) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ReportError(f"{origin}: not an Ed25519 key",
                          hint="make one with `openssl genpkey -algorithm ed25519`")
    return SigningKey(key, origin)


def default_key_path(home: Path | None = None) -> Path:
    return (home or csi_home()) / KEY_FILE


def load_signing_key(home: Path | None = None, *, create: bool = True) -> SigningKey:
    """The signing key (see the module doc); generated on first use when ``create``."""
    pem = os.environ.get(KEY_ENV_PEM)
    if pem:
        return _parse(pem.encode(), f"${KEY_ENV_PEM}")
    explicit = os.environ.get(KEY_ENV_PATH)
    path = Path(explicit) if explicit else default_key_path(home)
    try:
        key = _parse(path.read_bytes(), str(path))
        warn_if_readable(path, "the report signing key")
        return key
    except FileNotFoundError:
        if explicit or not create:
            raise ReportError(f"{path}: no signing key there") from None
    except OSError as exc:
        raise ReportError(f"{path}: cannot read the signing key",
                          why=exc.strerror or str(exc)) from None
    return _create(path)


def _create(path: Path) -> SigningKey:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        private_dir(path.parent, path.parent.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-key-")
        try:
            with os.fdopen(fd, "wb") as f:  # mkstemp makes it 0600
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, path)  # fails if another process made the key first
        except FileExistsError:
            return _parse(path.read_bytes(), str(path))
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    except OSError as exc:
        raise ReportError(f"{path}: cannot create the signing key",
                          why=exc.strerror or str(exc)) from None
    return SigningKey(key, str(path))


# ------------------------------------------------------------------ signing


def signing_payload(document: dict[str, Any]) -> bytes:
    """The bytes the signature is over: schema name, NUL, JCS without ``signature.value``."""
    signature = {k: v for k, v in document.get("signature", {}).items() if k != "value"}
    body = {**document, "signature": signature}
    return b"csi:" + str(document.get("schema", "")).encode() + b"\0" + canonical_bytes(body)


def sign(document: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """A copy of ``document`` with its ``signature`` object (replacing any earlier one)."""
    body = {k: v for k, v in document.items() if k != "signature"}
    signature = {"algorithm": ALGORITHM, "canonicalization": CANONICALIZATION,
                 "public_key": base64.b64encode(key.public_raw).decode(),
                 "key_fingerprint": key.fingerprint, "digests": part_digests(body)}
    signed = {**body, "signature": signature}
    signature["value"] = base64.b64encode(key.private.sign(signing_payload(signed))).decode()
    return signed


@dataclass(frozen=True)
class SignatureCheck:
    ok: bool
    fingerprint: str | None  # of the embedded public key
    problems: list[str]


def check_signature(document: dict[str, Any], label: str = "report") -> SignatureCheck:
    """Whether ``document`` is exactly what was signed; if not, which parts changed."""
    sig = document.get("signature")
    if not isinstance(sig, dict):
        return SignatureCheck(False, None, [f"{label}: has no signature"])
    problems: list[str] = []
    if sig.get("algorithm") != ALGORITHM:
        problems.append(f"{label}: signature algorithm is {sig.get('algorithm')!r}, "
                        f"not {ALGORITHM}")
    try:
        raw = base64.b64decode(str(sig.get("public_key", "")), validate=True)
        public = Ed25519PublicKey.from_public_bytes(raw)
        value = base64.b64decode(str(sig.get("value", "")), validate=True)
    except (binascii.Error, ValueError):
        return SignatureCheck(False, None, [
            *problems, f"{label}: signature.public_key or signature.value is not valid base64 "
                       "of an Ed25519 key and signature (the signature block was altered)"])
    embedded = fingerprint(raw)
    if sig.get("key_fingerprint") != embedded:
        problems.append(f"{label}: signature.key_fingerprint does not match the embedded "
                        "public key (the signature block was altered)")
    signed = sig.get("digests")
    changed = (diff_digests(document, signed, label) if isinstance(signed, dict)
               else [f"{label}: signature.digests is missing"])
    try:
        public.verify(value, signing_payload(document))
        valid = True
    except InvalidSignature:
        valid = False
    if not valid:
        problems += changed or [f"{label}: the signature does not verify, yet every part "
                                "matches its signed digest: the signature block was altered"]
        problems.append(f"{label}: Ed25519 signature by {embedded} does NOT verify")
    return SignatureCheck(valid and not problems, embedded, problems)


def diff_digests(document: dict[str, Any], signed: dict[str, Any], label: str) -> list[str]:
    """One line per part that differs from, is missing from, or was added to the signed one."""
    current = part_digests({k: v for k, v in document.items() if k != "signature"})
    out = []
    for ptr in sorted(set(signed) | set(current), key=_pointer_order):
        if ptr not in current:
            out.append(f"{label}: {ptr} was signed but is missing")
        elif ptr not in signed:
            out.append(f"{label}: {ptr}{describe(document, ptr)} was added after signing")
        elif current[ptr] != signed[ptr]:
            out.append(f"{label}: {ptr}{describe(document, ptr)} differs from what was signed")
    return out


def _pointer_order(ptr: str) -> list[tuple[int, int | str]]:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in ptr.split("/")]


def resolve(document: Any, ptr: str) -> Any:
    node = document
    for raw in ptr.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return node


def describe(document: dict[str, Any], ptr: str) -> str:
    """What the part at ``ptr`` is now, e.g. `` (process.reverse-shell, pid 9)``."""
    node = resolve(document, ptr)
    if not isinstance(node, dict):
        return ""
    words = [str(node[k]) for k in ("rule", "event", "name", "type", "path", "value")
             if isinstance(node.get(k), str | int)][:2]
    if isinstance(node.get("pid"), int):
        words.append(f"pid {node['pid']}")
    text = ", ".join(words)
    return f" ({text[:120]})" if text else ""
