"""mTLS for Falco's http_output: no client certificate, no TLS handshake."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from forensics.receiver.config import ServeConfig
from tests.receiver.conftest import SHOP, TOKEN, Recorder, ServerThread, alert_bytes

Key = ec.EllipticCurvePrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: Key, issuer: str, issuer_key: Key, *, ca: bool = False,
          server: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
    elif server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: Key | None = None) -> str:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    return str(path)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1, a client of the CA and a rogue client."""
    ca_key, rogue_key = ec.generate_private_key(ec.SECP256R1()), \
        ec.generate_private_key(ec.SECP256R1())
    ca = _cert("csi test CA", ca_key, "csi test CA", ca_key, ca=True)
    rogue_ca = _cert("rogue CA", rogue_key, "rogue CA", rogue_key, ca=True)
    server_key, client_key, other_key = (ec.generate_private_key(ec.SECP256R1())
                                         for _ in range(3))
    return {
        "ca": _write(tmp_path / "ca.pem", ca),
        "rogue_ca": _write(tmp_path / "rogue-ca.pem", rogue_ca),
        "server": _write(tmp_path / "server.pem", _cert("receiver", server_key, "csi test CA",
                                                         ca_key, server=True), server_key),
        "client": _write(tmp_path / "client.pem", _cert("falco", client_key, "csi test CA",
                                                         ca_key), client_key),
        "rogue": _write(tmp_path / "rogue.pem", _cert("falco", other_key, "rogue CA",
                                                       rogue_key), other_key),
    }


def _key(cert: str) -> str:
    return str(Path(cert).with_suffix(".key"))


def test_mtls_requires_a_client_certificate_from_the_ca(base_config: ServeConfig,
                                                        pki: dict[str, str]) -> None:
    config = replace(base_config, token_file=None, tls_cert=pki["server"],
                     tls_key=_key(pki["server"]), tls_client_ca=pki["ca"])
    recorder = Recorder()
    with ServerThread(config, run_capture=recorder) as srv:
        assert srv.url.startswith("https://")
        falco = (pki["client"], _key(pki["client"]))
        reply = requests.post(srv.url + "/falco", data=alert_bytes(SHOP), cert=falco,
                              verify=pki["ca"], timeout=10,
                              headers={"Content-Type": "application/json"})
        assert reply.status_code == 202, reply.text  # the certificate is the authentication
        for cert in (None, (pki["rogue"], _key(pki["rogue"]))):
            with pytest.raises((requests.exceptions.SSLError,
                                requests.exceptions.ConnectionError)):
                requests.post(srv.url + "/falco", data=alert_bytes(SHOP), cert=cert,
                              verify=pki["ca"], timeout=10)
        srv.settled()
        assert len(recorder.requests) == 1


def test_tls_without_client_ca_still_needs_the_token(base_config: ServeConfig,
                                                     pki: dict[str, str]) -> None:
    config = replace(base_config, tls_cert=pki["server"], tls_key=_key(pki["server"]))
    with ServerThread(config, run_capture=Recorder()) as srv:
        plain = requests.post(srv.url + "/falco", data=alert_bytes(SHOP), verify=pki["ca"],
                              timeout=10, headers={"Content-Type": "application/json"})
        assert plain.status_code == 401
        with_token = requests.post(srv.url + "/falco", data=alert_bytes(SHOP), verify=pki["ca"],
                                   timeout=10, headers={"Authorization": f"Bearer {TOKEN}"})
        assert with_token.status_code == 202


def test_tls_handshake_never_started_is_cut_off_at_the_header_timeout(
        base_config: ServeConfig, pki: dict[str, str]) -> None:
    """Issue 11 item 3: a client that opens TLS connections and never sends a ClientHello
    held a descriptor each for 60 s (asyncio's default); now for ``header_timeout``."""
    import socket
    import time

    config = replace(base_config, tls_cert=pki["server"], tls_key=_key(pki["server"]),
                     header_timeout=1.0)
    with ServerThread(config, run_capture=Recorder()) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            started = time.monotonic()
            assert sock.recv(100) == b""
            assert 0.5 < time.monotonic() - started < 4.0
        reply = requests.get(srv.url + "/healthz", verify=pki["ca"], timeout=10)
        assert reply.json() == {"status": "ok"}
