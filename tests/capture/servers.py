"""Real docker-registry instances on 127.0.0.1 for the tests (plain, htpasswd, token, TLS).

Each instance has its own config and filesystem storage in a temp dir, and
a fixed ``http.secret`` so that upload sessions survive a restart (as in a
real deployment). The token server is a small in-process HTTP server that
checks Basic credentials and issues RS256 JWTs signed with ``openssl``,
which docker-registry verifies against the certificate in its config.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

REGISTRY = "/usr/bin/docker-registry"
USER, PASSWORD = "responder", "s3cret-Evidence!"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def openssl(*args: str, input_bytes: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=input_bytes, capture_output=True,
                          check=True).stdout


def self_signed(work: Path, name: str, cn: str = "csi-token") -> tuple[Path, Path]:
    """A self-signed key pair (the token signer's: its key ID is all that matters)."""
    key, cert = work / f"{name}.key", work / f"{name}.crt"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
            str(cert), "-days", "2", "-subj", f"/CN={cn}")
    return key, cert


def server_cert(work: Path, ip: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """(CA certificate, server key, server certificate for ``ip``) as a real PKI makes them."""
    ca_key, ca = work / "ca.key", work / "ca.crt"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
            str(ca), "-days", "2", "-subj", "/CN=csi test CA", "-addext",
            "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    key, csr, cert = work / "server.key", work / "server.csr", work / "server.crt"
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
            str(csr), "-subj", f"/CN={ip}")
    ext = work / "server.ext"
    ext.write_text(f"subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid\n"
                   "subjectKeyIdentifier=hash\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return ca, key, cert


def libtrust_key_id(key: Path) -> str:
    """docker/libtrust's key ID: base32 of the first 240 bits of sha256(DER SPKI), 4-grouped."""
    der = openssl("pkey", "-in", str(key), "-pubout", "-outform", "DER")
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class TokenServer:
    """Issues registry tokens to USER:PASSWORD for any requested scope."""

    def __init__(self, work: Path, service: str, issuer: str) -> None:
        self.key, self.cert = self_signed(work, "token-signing", "csi-token")
        self.kid = libtrust_key_id(self.key)
        self.service, self.issuer = service, issuer
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                server.requests.append(self.path)
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                scopes = query.get("scope", [])
                body = json.dumps({"token": server.issue(scopes), "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def issue(self, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":", 2) if scope.count(":") >= 2 else ("", "", "")
            if kind == "repository":
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        claims = {"iss": self.issuer, "sub": USER, "aud": self.service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = openssl("dgst", "-sha256", "-sign", str(self.key),
                            input_bytes=signing_input.encode())
        return f"{signing_input}.{_b64(signature)}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Registry:
    """One docker-registry process; ``restart`` keeps its storage and secret."""

    def __init__(self, work: Path, *, auth: str = "", tls: bool = False,
                 storage: Path | None = None) -> None:
        self.work = work
        self.work.mkdir(parents=True, exist_ok=True)
        self.storage = storage or work / "data"
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.ca: Path | None = None
        self.token: TokenServer | None = None
        self.log = work / "registry.log"
        lines = ["version: 0.1", "log:", "  level: info", "storage:", "  filesystem:",
                 f"    rootdirectory: {self.storage}", "  delete:", "    enabled: true",
                 "http:", f"  addr: {self.host}", "  secret: csi-test-secret"]
        if tls:
            self.ca, key, cert = server_cert(work)
            lines += ["  tls:", f"    certificate: {cert}", f"    key: {key}"]
        if auth == "htpasswd":
            htpasswd = work / "htpasswd"
            htpasswd.write_text(subprocess.run(
                ["htpasswd", "-Bbn", USER, PASSWORD], capture_output=True, text=True,
                check=True).stdout)
            lines += ["auth:", "  htpasswd:", "    realm: csi-test", f"    path: {htpasswd}"]
        elif auth == "token":
            self.token = TokenServer(work, "csi-test-registry", "csi-test-issuer")
            lines += ["auth:", "  token:", f"    realm: {self.token.realm}",
                      "    service: csi-test-registry", "    issuer: csi-test-issuer",
                      f"    rootcertbundle: {self.token.cert}"]
        self.config = work / "config.yml"
        self.config.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"{'https' if self.ca else 'http'}://{self.host}"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([REGISTRY, "serve", str(self.config)], stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"docker-registry did not start: {self.log.read_text()}") \
                        from None
                time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self.token is not None:
            self.token.stop()

    def get(self, path: str, accept: str = "") -> tuple[bytes, dict[str, str]]:
        """An unauthenticated GET on a plain-HTTP registry (for assertions)."""
        req = urllib.request.Request(self.url + path, headers={"Accept": accept} if accept
                                     else {})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.read(), dict(resp.headers)

    def blob_data_path(self, digest: str) -> Path:
        hexpart = digest.removeprefix("sha256:")
        return (self.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart
                / "data")


def have(tool: str) -> bool:
    return shutil.which(tool) is not None or os.path.exists(tool)
