"""Who may POST alerts: a bearer token, an HMAC signature, or a client certificate.

* **Bearer token** (falcosidekick): ``Authorization: Bearer <token>``, the token
  read from ``token_file``. falcosidekick sends it with
  ``webhook.customheaders: {Authorization: "Bearer <token>"}`` (its custom
  headers are static: it cannot sign bodies).
* **HMAC-SHA256 signature** (a relay or script that can sign):
  ``X-CSI-Signature: sha256=<hex HMAC-SHA256 of the raw body>``, keyed with the
  contents of ``hmac_secret_file``. No timestamp is needed against replays: a
  replayed body has the same fingerprint and is journaled once.
* **mTLS** (Falco's ``http_output``, which has no header option): with
  ``tls_client_ca`` the TLS handshake itself requires a client certificate
  signed by that CA; a connection that completed it is authenticated.

Any configured method suffices. With none configured the receiver refuses to
start unless ``allow_unauthenticated: true`` says so explicitly.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

from forensics.errors import UsageError
from forensics.home import warn_if_readable

SIGNATURE_HEADER = "X-CSI-Signature"
log = logging.getLogger("csi.receiver")
SIGNATURE_PREFIX = "sha256="


def read_secret(path: str, what: str) -> bytes:
    try:
        secret = Path(path).read_bytes().strip()
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot read it", why=exc.strerror or str(exc)
                         ) from None
    warn_if_readable(path, what)  # used all the same (a Secret volume is often 0644)
    if len(secret) < 16:
        raise UsageError(f"{what} {path}: the secret is {len(secret)} bytes; use at least 16")
    return secret


def _octets(header: str) -> bytes:
    """A header value as the bytes that came on the wire (aiohttp decodes them as UTF-8
    with surrogateescape): any bytes compare, none raise."""
    return header.encode("utf-8", "surrogateescape")


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-CSI-Signature`` value for ``body``."""
    return SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Authenticator:
    token: bytes | None = None
    hmac_secret: bytes | None = None
    mtls: bool = False
    allow_unauthenticated: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.token or self.hmac_secret or self.mtls)

    def check(self, authorization: str | None, signature: str | None, body: bytes,
              peer_verified: bool) -> str | None:
        """None if the request is authenticated, else the one-line reason it is not."""
        if not self.enabled:
            return None
        if self.mtls and peer_verified:
            return None
        failure = None
        if self.token and authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(
                    _octets(value.strip()), self.token):
                return None
            failure = "invalid bearer token"
        if self.hmac_secret and signature:
            if hmac.compare_digest(_octets(signature.strip().lower()),
                                   sign(self.hmac_secret, body).encode()):
                return None
            failure = f"invalid {SIGNATURE_HEADER} signature"
        if failure:
            return failure
        wanted = [w for w, on in (("an Authorization: Bearer token", self.token),
                                  (f"an {SIGNATURE_HEADER} signature", self.hmac_secret),
                                  ("a client certificate", self.mtls)) if on]
        return f"authentication required: send {' or '.join(wanted)}"

    @property
    def needs_body(self) -> bool:
        """Whether checking needs the body (HMAC): then the body is read first."""
        return self.hmac_secret is not None


def build_authenticator(token_file: str | None, hmac_secret_file: str | None,
                        client_ca: str | None, allow_unauthenticated: bool) -> Authenticator:
    auth = Authenticator(
        token=read_secret(token_file, "token_file") if token_file else None,
        hmac_secret=read_secret(hmac_secret_file, "hmac_secret_file") if hmac_secret_file
        else None,
        mtls=bool(client_ca), allow_unauthenticated=allow_unauthenticated)
    if not auth.enabled and not allow_unauthenticated:
        raise UsageError("no authentication configured: set token_file, hmac_secret_file or "
                         "tls_client_ca, or allow_unauthenticated: true "
                         "(CSI_ALLOW_UNAUTHENTICATED=true) to accept anyone's alerts")
    return auth


def server_ssl_context(cert: str, key: str, client_ca: str | None) -> ssl.SSLContext:
    """TLS for the listener; with ``client_ca`` a client certificate is required (mTLS)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    warn_if_readable(key, "tls_key")
    try:
        context.load_cert_chain(cert, key)
        if client_ca:
            context.load_verify_locations(cafile=client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise UsageError("cannot load the TLS certificate, key or client CA",
                         why=str(exc)) from None
    return context
