"""An HTTP client for one repository of an OCI Distribution registry.

It authenticates on demand (a 401 challenge: Basic, or a Bearer token from
the realm, cached per scope), retries transient failures (connection
errors, 429, 5xx) with exponential backoff, and turns every failure into a
one-line :mod:`~forensics.storage.errors` error. Every exchange runs
under a :class:`~forensics.storage.limits.Transfer` (deadline,
minimum rate) and every body it reads whole is capped (see :mod:`.limits`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from forensics.storage import auth
from forensics.storage import limits as lim
from forensics.storage.base import RegistryOptions
from forensics.storage.errors import (
    RegistryAuthError,
    RegistryError,
    RegistryStorageFullError,
    RegistryTLSError,
    RegistryUnavailableError,
)
from forensics.storage.reference import ImageRef

TRANSIENT_STATUS = (429, 500, 502, 503, 504)
_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 5
_BLOCKSIZE = 1 << 20
_PLAIN_HTTP_HINTS = ("wrong version number", "record layer failure", "unknown protocol",
                     "packet length too long")


class _Watched:
    """Mixed into a urllib3 connection: the current :class:`~.limits.Transfer` can shut its
    socket down."""

    sock: Any

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        lim.register_socket(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is not None:
            lim.register_socket(self.sock)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, urllib3.connection.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, urllib3.connection.HTTPSConnection):
    pass


class _WatchedHTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _Adapter(HTTPAdapter):
    """Sends bodies in 1 MiB blocks (urllib3's default of 16 KiB costs CPU at 600 MB);
    its connections are watched by the current transfer (deadline, minimum rate)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        if int(str(getattr(urllib3, "__version__", "1")).split(".")[0]) >= 2:
            kwargs["blocksize"] = _BLOCKSIZE
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool,
                                                   "https": _WatchedHTTPSPool}


class _Session(requests.Session):
    """A session that never looks at redirects: even with ``allow_redirects=False``
    requests reads a redirect's body whole, which a hostile registry makes endless.
    :meth:`RegistryClient._send` follows them itself."""

    def get_redirect_target(self, resp: requests.Response) -> None:
        return None


def _registry_errors(resp: requests.Response) -> str:
    """The registry's error messages from a body already read (and capped)."""
    try:
        doc = json.loads(resp.content)
        parts = [f"{e.get('code', '?')}: {e.get('message', '')}"
                 + (f" ({e['detail']})" if e.get("detail") and not isinstance(e["detail"], dict)
                    else "") for e in doc.get("errors", [])]
        if parts:
            return "; ".join(parts)
    except (ValueError, AttributeError, TypeError):
        pass
    text = resp.content.decode("utf-8", "replace").strip()
    text = "".join(c if c.isprintable() else " " for c in text[:300])
    return text or str(resp.reason or "")[:100]


class RegistryClient:
    """Requests to ``https://HOST/v2/REPOSITORY/…`` with auth, retries and errors."""

    def __init__(self, ref: ImageRef, options: RegistryOptions | None = None) -> None:
        self.ref = ref
        self.options = options or RegistryOptions()
        self.host = ref.api_host
        self.scheme = "http" if self.options.plain_http else "https"
        self.session = _Session()
        self.session.mount("https://", _Adapter())
        self.session.mount("http://", _Adapter())
        opts = self.options
        # passed on every request: a session default loses to $REQUESTS_CA_BUNDLE
        self.verify: bool | str = opts.ca_file if (opts.ca_file and opts.tls_verify) \
            else opts.tls_verify
        if opts.cert_file:
            self.session.cert = (opts.cert_file, opts.key_file) if opts.key_file \
                else opts.cert_file
        self.session.headers["User-Agent"] = "csi (forensic checkpoints)"
        self.session.headers["Accept-Encoding"] = "identity"  # bytes as stored: no bombs
        self._creds: auth.Credentials | None = None
        self._creds_loaded = False
        self._authz: dict[str, str] = {}
        if not opts.tls_verify:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    # ------------------------------------------------------------ urls

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.host}"

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        if path.startswith("/"):
            return self.base + path
        return f"{self.base}/v2/{self.ref.repository}/{path}"

    @property
    def secrets(self) -> tuple[str, ...]:
        creds = self.credentials()
        return creds.secrets if creds else ()

    # ------------------------------------------------------------ auth

    def credentials(self) -> auth.Credentials | None:
        if not self._creds_loaded:
            o = self.options
            if o.username is not None:
                self._creds = auth.Credentials(o.username, o.password or "", source="--creds")
            else:
                self._creds = auth.find_credentials(self.ref.registry, self.ref.repository,
                                                    auth_file=o.auth_file)
            self._creds_loaded = True
        return self._creds

    def _authorize(self, challenge: str, scope: str) -> str:
        scheme, params = auth.parse_challenge(challenge)
        creds = self.credentials()
        where = f" (from {creds.source})" if creds and creds.source else ""
        if scheme == "basic":
            if creds is None or not creds.username:
                raise RegistryAuthError(
                    f"{self.host} requires a user name and password; none found",
                    hint=f"log in (podman login {self.ref.registry}) or pass --authfile/--creds")
            return creds.basic_header()
        if scheme != "bearer" or not params.get("realm"):
            raise RegistryAuthError(f"{self.host}: unsupported auth challenge {challenge!r}")
        query = {"scope": scope}
        if params.get("service"):
            query["service"] = params["service"]
        realm = params["realm"][:200]
        transfer = lim.Transfer(self.options.limits, f"token server {realm}")
        try:
            with transfer.active():
                if creds and creds.identity_token:
                    resp = self.session.post(params["realm"], data={
                        **query, "grant_type": "refresh_token", "client_id": "csi",
                        "refresh_token": creds.identity_token}, timeout=self._timeout(),
                        verify=self.verify, stream=True, allow_redirects=False)
                else:
                    resp = self.session.get(
                        params["realm"], params=query, timeout=self._timeout(),
                        verify=self.verify, stream=True, allow_redirects=False,
                        auth=(creds.username, creds.password) if creds and creds.username
                        else None)
                try:
                    cap = self.options.limits.max_token
                    _keep(resp, lim.read_capped(resp.raw, cap, transfer,
                                                f"token server {realm}",
                                                refuse=resp.status_code == 200))
                finally:
                    resp.raw.close()  # a cut answer must not go back to the pool
                    resp.close()
        except requests.exceptions.SSLError as exc:
            raise RegistryTLSError(f"token server {realm}: TLS failed",
                                   why=str(exc.args[0] if exc.args else exc)[:200]) from None
        except _NETWORK_ERRORS as exc:
            transfer.check()
            raise RegistryUnavailableError(f"token server {realm} unreachable",
                                           why=type(exc).__name__) from None
        finally:
            transfer.close()
        transfer.check()
        if resp.status_code in (401, 403):
            raise RegistryAuthError(
                f"{self.host}: the token server refused the credentials{where}",
                why=f"HTTP {resp.status_code}", hint="check the user name and password "
                "(podman login), or that the account may push to this repository")
        if resp.status_code != 200:
            raise RegistryAuthError(f"token server {realm}: HTTP {resp.status_code}",
                                    why=_registry_errors(resp))
        try:
            answer = json.loads(resp.content)
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not token:
            raise RegistryAuthError(f"token server {realm}: no token in the answer")
        if not isinstance(token, str) or not token.isascii() or not token.isprintable():
            raise RegistryAuthError(f"token server {realm}: the token is not printable ASCII")
        return f"Bearer {token}"

    # ------------------------------------------------------------ requests

    def _timeout(self) -> tuple[float, float]:
        return (self.options.connect_timeout, self.options.read_timeout)

    def _send(self, method: str, url: str, scope: str, **kwargs: Any) -> requests.Response:
        """Send, authenticated; follow up to 5 redirects of a GET or HEAD by hand.

        (requests would read a redirect's body whole, and a hostile registry
        makes it endless.) A redirect's body is never read; the registry's
        credentials are not sent to another host (blob storage).
        """
        resp = self._send_authorized(method, url, scope, **kwargs)
        origin = urlsplit(url).netloc
        hops = 0
        while resp.status_code in _REDIRECTS and method in ("GET", "HEAD") \
                and resp.headers.get("Location"):
            target = urljoin(url, resp.headers["Location"])
            resp.raw.close()
            resp.close()
            hops += 1
            if hops > _MAX_REDIRECTS or urlsplit(target).scheme not in ("http", "https"):
                raise RegistryError(f"{method} {origin}: redirected too often or to a "
                                    f"non-HTTP place ({target[:100]!r})",
                                    hint="the registry is misbehaving")
            url = target
            if urlsplit(url).netloc == origin:
                resp = self._send_authorized(method, url, scope, headers=kwargs.get("headers"))
            else:
                resp = self.session.request(method, url, headers=dict(kwargs.get("headers") or {}),
                                            timeout=self._timeout(), verify=self.verify,
                                            stream=True, allow_redirects=False)
        return resp

    def _send_authorized(self, method: str, url: str, scope: str,
                         **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        used = self._authz.get(scope)
        if used:
            headers["Authorization"] = used
        resp = self.session.request(method, url, headers=headers, timeout=self._timeout(),
                                    verify=self.verify, stream=True, allow_redirects=False,
                                    **kwargs)
        if resp.status_code != 401:
            return resp
        challenge = resp.headers.get("WWW-Authenticate", "")
        resp.close()
        if not challenge:
            raise RegistryAuthError(f"{self.host}: 401 Unauthorized without a challenge")
        fresh = self._authorize(challenge, scope)
        if fresh == used:
            raise self._auth_refused()
        self._authz[scope] = fresh
        _rewind(kwargs.get("data"))
        headers["Authorization"] = fresh
        resp = self.session.request(method, url, headers=headers, timeout=self._timeout(),
                                    verify=self.verify, stream=True, allow_redirects=False,
                                    **kwargs)
        if resp.status_code == 401:
            resp.close()
            raise self._auth_refused()
        return resp

    def _auth_refused(self) -> RegistryAuthError:
        creds = self.credentials()
        where = f" from {creds.source}" if creds and creds.source else ""
        return RegistryAuthError(f"{self.host} refused the credentials{where}",
                                 why="401 Unauthorized",
                                 hint="check the user name and password (podman login)")

    def request(self, method: str, path: str, *, push: bool = False,
                expect: tuple[int, ...] = (200,), what: str = "",
                retries: int | None = None, headers: Mapping[str, str] | None = None,
                stream: bool = False, transfer: lim.Transfer | None = None, size: int = 0,
                limit: int | None = None, **kwargs: Any) -> requests.Response:
        """Send one request, authenticated; retry transient failures; raise on others.

        Statuses in ``expect`` are returned (e.g. 404 for an existence check),
        their body read (at most ``limit`` bytes, default the manifest cap;
        more is an error) unless ``stream``: then the caller reads it under
        ``transfer``, which it created and closes. ``size`` (bytes sent or
        expected) scales the deadline of a transfer made here.
        """
        if stream and transfer is None:
            raise ValueError("a streamed request is read under the caller's transfer")
        scope = f"repository:{self.ref.repository}:{'pull,push' if push else 'pull'}"
        attempts = max(1, self.options.retries if retries is None else retries)
        what = what or f"{method} {path}"
        cap = self.options.limits.max_manifest if limit is None else limit
        attempt = 0
        while True:
            failure: RegistryError
            mine = transfer is None
            current = transfer or lim.Transfer(self.options.limits, what, size,
                                               body=kwargs.get("data"))
            try:
                with current.active():
                    resp = self._send(method, self.url(path), scope, headers=headers, **kwargs)
                    if resp.status_code in expect:
                        if stream:
                            return resp
                        if method == "HEAD" or resp.status_code in (204, 304):
                            _keep(resp, b"")  # no body: Content-Length describes the resource
                            resp.close()
                            return resp
                        try:
                            _keep(resp, lim.read_capped(resp.raw, cap, current, what))
                        finally:
                            resp.close()
                        current.check()
                        return resp
                    failure = self._status_error(resp, what, current)
            except requests.exceptions.SSLError as exc:
                current.check()
                text = str(exc).lower()
                if self.scheme == "https" and not self.options.tls_verify and any(
                        h in text for h in _PLAIN_HTTP_HINTS) and not path.startswith("http"):
                    self.scheme = "http"  # --tls-verify=false: plain HTTP allowed, as skopeo
                    continue
                raise self._tls_error(text) from None
            except _NETWORK_ERRORS as exc:
                current.check()  # the watchdog cut it: too slow, not retried
                failure = RegistryUnavailableError(
                    f"{what}: cannot reach {self.host}", why=_why(exc),
                    hint="is the registry running and reachable? the push can be run again")
            finally:
                if mine:
                    current.close()
            attempt += 1
            if not isinstance(failure, RegistryUnavailableError) or attempt >= attempts:
                raise failure
            time.sleep(self.options.backoff * (2 ** (attempt - 1)))
            _rewind(kwargs.get("data"))

    def _tls_error(self, text: str) -> RegistryTLSError:
        if any(h in text for h in _PLAIN_HTTP_HINTS):
            return RegistryTLSError(f"{self.host}: TLS handshake failed",
                                    why="the registry seems to speak plain HTTP",
                                    hint="use --plain-http (or --no-tls-verify)")
        why = "certificate verify failed" if "certificate verify failed" in text else text[:200]
        return RegistryTLSError(f"{self.host}: TLS handshake failed", why=why,
                                hint="pass --ca-file with the registry's CA certificate, "
                                "or --no-tls-verify to skip verification")

    def _status_error(self, resp: requests.Response, what: str,
                      transfer: lim.Transfer) -> RegistryError:
        try:  # only the start of an error body is read: it may be endless
            _keep(resp, lim.read_capped(resp.raw, self.options.limits.max_error_body, transfer,
                                        what, refuse=False))
        finally:
            resp.raw.close()  # never back to the pool: the rest of the body may be unread
            resp.close()
        transfer.check()
        detail = _registry_errors(resp)
        status = resp.status_code
        if "no space left on device" in detail.lower():
            return RegistryStorageFullError(
                f"{what}: the registry's storage is full", why=detail[:300],
                hint="free space on the registry; the archive is kept on this machine")
        if status == 403:
            return RegistryAuthError(f"{what}: access denied by {self.host}", why=detail,
                                     hint="the account may not push or pull this repository")
        if status in TRANSIENT_STATUS:
            return RegistryUnavailableError(f"{what}: {self.host} answered HTTP {status}",
                                            why=detail)
        return RegistryError(f"{what}: {self.host} answered HTTP {status}", why=detail)

    def json(self, resp: requests.Response, what: str) -> dict[str, Any]:
        try:
            doc = json.loads(resp.content)
        except ValueError:
            raise RegistryError(f"{what}: not JSON") from None
        if not isinstance(doc, dict):
            raise RegistryError(f"{what}: not a JSON object")
        return doc

    def close(self) -> None:
        self.session.close()


_NETWORK_ERRORS = (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError)


def _keep(resp: requests.Response, body: bytes) -> None:
    """Make ``body`` (read under a cap) the response's content for ``.content``/``.json()``."""
    resp._content = body
    resp._content_consumed = True  # type: ignore[attr-defined]


def _why(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out",
                   "Connection reset", "Connection aborted", "RemoteDisconnected",
                   "Broken pipe", "No route to host"):
        if marker.lower() in text.lower():
            return marker.lower()
    return type(exc).__name__


def _rewind(body: Any) -> None:
    seek = getattr(body, "seek", None)
    if seek is not None:
        seek(0)
