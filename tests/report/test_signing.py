"""Ed25519 over canonical JSON: the key is made once, safely, and a change names itself."""

from __future__ import annotations

import copy
import multiprocessing
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from forensics.report.errors import ReportError
from forensics.report.signing import (
    KEY_FILE,
    SigningKey,
    check_signature,
    load_signing_key,
    sign,
    signing_payload,
)
from tests.conftest import PAYMENTS
from tests.report.conftest import Built


def test_key_is_made_on_first_use_private_and_reused(home: Path) -> None:
    first = load_signing_key(home)
    path = home / KEY_FILE
    assert first.origin == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_signing_key(home).fingerprint == first.fingerprint
    assert first.fingerprint.startswith("sha256:") and len(first.fingerprint) == 71


def _fingerprint(home: str) -> str:
    return load_signing_key(Path(home)).fingerprint


def test_two_processes_making_the_key_at_once_agree(home: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        prints = pool.map(_fingerprint, [str(home)] * 8)
    assert len(set(prints)) == 1
    assert [p.name for p in (home / KEY_FILE).parent.iterdir()] == [KEY_FILE.name]


def test_key_from_a_secret_or_a_path(home: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    expected = SigningKey(private, "").fingerprint
    monkeypatch.setenv("CSI_SIGNING_KEY_PEM", pem.decode())
    assert load_signing_key(home).fingerprint == expected
    monkeypatch.delenv("CSI_SIGNING_KEY_PEM")
    (tmp_path / "k.pem").write_bytes(pem)
    monkeypatch.setenv("CSI_SIGNING_KEY", str(tmp_path / "k.pem"))
    assert load_signing_key(home).fingerprint == expected
    assert not (home / KEY_FILE).exists()
    monkeypatch.setenv("CSI_SIGNING_KEY", str(tmp_path / "missing.pem"))
    with pytest.raises(ReportError, match="no signing key there"):
        load_signing_key(home)
    (tmp_path / "rsa.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    monkeypatch.setenv("CSI_SIGNING_KEY", str(tmp_path / "rsa.pem"))
    with pytest.raises(ReportError, match="not an unencrypted PEM private key"):
        load_signing_key(home)


def test_signature_verifies_and_names_what_changed(built: dict[str, Built],
                                                   key: SigningKey) -> None:
    signed = sign(built[PAYMENTS].document, key)
    check = check_signature(signed)
    assert (check.ok, check.fingerprint, check.problems) == (True, key.fingerprint, [])
    assert signing_payload(signed).startswith(b"csi:csi.report\0{")

    shell = next(i for i, f in enumerate(signed["findings"])
                 if f["rule"] == "process.reverse-shell")
    tampered = copy.deepcopy(signed)
    tampered["findings"][shell]["pid"] = 10
    tampered["custody"]["archive"]["sha256"] = "0" * 64
    problems = check_signature(tampered).problems
    assert problems == [
        "report: /custody/archive/sha256 differs from what was signed",
        f"report: /findings/{shell} (process.reverse-shell, /bin/busybox, pid 10) differs from "
        "what was signed",
        f"report: Ed25519 signature by {key.fingerprint} does NOT verify"]

    dropped = copy.deepcopy(signed)
    dropped["findings"].pop()
    assert check_signature(dropped).problems[0] == (
        f"report: /findings/{len(signed['findings']) - 1} was signed but is missing")

    forged = copy.deepcopy(signed)
    forged["signature"]["value"] = sign(forged, key)["signature"]["value"][:-4] + "AAA="
    assert "every part matches its signed digest: the signature block was altered" in \
        check_signature(forged).problems[0]


def test_re_signing_with_another_key_shows_another_fingerprint(built: dict[str, Built],
                                                               key: SigningKey) -> None:
    other = SigningKey(Ed25519PrivateKey.generate(), "other")
    check = check_signature(sign(built[PAYMENTS].document, other))
    assert check.ok and check.fingerprint == other.fingerprint != key.fingerprint
