"""A HOSTILE registry on 127.0.0.1: a test peer that attacks csi's registry client.

It speaks just enough of the OCI Distribution API (``/v2/``, manifests,
blobs, a Bearer token realm) to lead the client into each attack of issue
11 item 11. It is *not* a registry double for happy paths (those use the
real docker-registry in :mod:`tests.capture.servers`).

Modes (``HostileRegistry(mode)``):

- ``endless-manifest``: the manifest never ends (no Content-Length);
- ``huge-manifest-length``: the manifest's answer announces ``Content-Length: 10**12``;
- ``endless-500``: every manifest GET is a 500 whose body never ends;
- ``endless-token``: a Bearer challenge whose token realm answers forever;
- ``oversized-layer``: the layer is served with many more bytes than its
  descriptor's size (no Content-Length);
- ``slow-loris``: the layer is sent one byte every ``drip`` seconds;
- ``slow-headers``: the manifest's status line and headers, one byte per ``drip``;
- ``negative-size``: the layer descriptor says ``"size": -1``;
- ``wrong-digest``: the layer's bytes (of the right length) hash to another digest;
- ``huge-content-length``: the layer's answer announces ``Content-Length: 10**12``;
- ``gzip-bomb``: a gzip layer (32 KiB, honest digest) that expands to 32 MiB, said to be
  a re-compressed archive (``dev.csi.archive.sha256`` differs), so csi decompresses it;
- ``endless-redirect``: the layer's GET is a 307 to storage whose body never ends;
- ``black-hole-upload``: a push's upload is accepted, then its body is never read nor
  answered (for up to 30 s).

``requests`` counts the requests per path; ``sent`` the body bytes written.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
REPO = "hostile/ckpt"
LAYER = os.urandom(338 * 1024)  # what the descriptor describes (a 338 KB "archive")
LAYER_DIGEST = "sha256:" + hashlib.sha256(LAYER).hexdigest()
BOMB = gzip.compress(bytes(32 << 20), compresslevel=9)  # 32 KiB of gzip, 32 MiB of zeros
BOMB_DIGEST = "sha256:" + hashlib.sha256(BOMB).hexdigest()
CONFIG = b"{}"
CONFIG_DIGEST = "sha256:" + hashlib.sha256(CONFIG).hexdigest()
MODES = ("endless-manifest", "huge-manifest-length", "endless-500", "endless-token",
         "oversized-layer", "slow-loris", "slow-headers", "negative-size", "wrong-digest",
         "huge-content-length", "gzip-bomb", "black-hole-upload", "endless-redirect")
_BLOCK = b"A" * (1 << 16)


def manifest(size: object = 338 * 1024) -> bytes:
    if size == "bomb":
        return json.dumps({
            "schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": CONFIG_DIGEST, "size": len(CONFIG)},
            "layers": [{"mediaType": MEDIA_LAYER + "+gzip", "digest": BOMB_DIGEST,
                        "size": len(BOMB)}],
            "annotations": {"dev.csi.archive.sha256": "0" * 64},
        }).encode()
    return json.dumps({
        "schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": CONFIG_DIGEST, "size": len(CONFIG)},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": LAYER_DIGEST, "size": size}],
    }).encode()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _endless(self, status: int, content_type: str, head: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Connection", "close")
        self.end_headers()
        self._write(head)
        while self._write(_BLOCK):
            pass

    def _write(self, data: bytes) -> bool:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:  # the client gave up: what csi must do
            return False
        self.server.sent += len(data)
        return True

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", headers.pop("length", str(len(body))))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self._write(body)

    def do_HEAD(self) -> None:
        self._send(404 if self.server.mode == "black-hole-upload" else 200, b"")

    def do_POST(self) -> None:
        self._count()
        self._send(202, b"", Location=f"/v2/{REPO}/blobs/uploads/hole")

    def do_PUT(self) -> None:
        self._count()
        time.sleep(30)  # never read, never answered: csi must give up first

    do_PATCH = do_PUT

    def _count(self) -> None:
        path = self.path.split("?")[0]
        with self.server.lock:
            self.server.requests[path] = self.server.requests.get(path, 0) + 1

    def do_GET(self) -> None:
        srv, mode, path = self.server, self.server.mode, self.path.split("?")[0]
        self._count()
        if path == "/token":
            self._endless(200, "application/json", b'{"token": "')
        elif mode == "endless-token" and "Authorization" not in self.headers:
            self._send(401, b'{"errors":[]}', WWW_Authenticate=f'Bearer realm='
                       f'"http://127.0.0.1:{srv.server_port}/token",service="hostile"')
        elif path == "/v2/":
            self._send(200, b"{}")
        elif path.startswith(f"/v2/{REPO}/manifests/"):
            self._manifest(mode)
        elif path == f"/v2/{REPO}/blobs/{LAYER_DIGEST}":
            self._blob(mode)
        elif path == f"/storage/{LAYER_DIGEST}":
            self._send(200, LAYER, "application/octet-stream")
        elif path == f"/v2/{REPO}/blobs/{BOMB_DIGEST}":
            self._send(200, BOMB, "application/octet-stream")
        else:
            self._send(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"no"}]}')

    def _manifest(self, mode: str) -> None:
        if mode == "endless-manifest":
            self._endless(200, MEDIA_MANIFEST, b'{"schemaVersion": 2, "layers": [], "x": "')
        elif mode == "huge-manifest-length":
            self._send(200, manifest(), MEDIA_MANIFEST, length=str(10**12))
        elif mode == "endless-500":
            self._endless(500, "text/plain", b"internal error ")
        elif mode == "slow-headers":
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n":
                if not self._write(bytes([byte])):
                    return
                time.sleep(self.server.drip)
        else:
            size = {"negative-size": -1, "gzip-bomb": "bomb"}.get(mode, len(LAYER))
            self._send(200, manifest(size), MEDIA_MANIFEST)

    def _blob(self, mode: str) -> None:
        if mode == "endless-redirect":
            self.send_response(307)
            self.send_header("Location", f"/storage/{LAYER_DIGEST}")
            self.send_header("Connection", "close")
            self.end_headers()
            while self._write(_BLOCK):
                pass
        elif mode == "oversized-layer":
            self._endless(200, "application/octet-stream", LAYER)
        elif mode == "slow-loris":
            self.send_response(200)
            self.send_header("Content-Length", str(len(LAYER)))
            self.end_headers()
            for byte in LAYER:
                if not self._write(bytes([byte])):
                    return
                time.sleep(self.server.drip)
        elif mode == "wrong-digest":
            self._send(200, bytes(len(LAYER)), "application/octet-stream")
        elif mode == "huge-content-length":
            self._send(200, LAYER, "application/octet-stream", length=str(10**12))
        else:
            self._send(200, LAYER, "application/octet-stream")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, mode: str, drip: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = mode
        self.drip = drip
        self.requests: dict[str, int] = {}
        self.sent = 0
        self.lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # csi hanging up on this peer is the point


class HostileRegistry:
    """``with HostileRegistry("endless-manifest") as reg: reg.ref`` (plain HTTP)."""

    def __init__(self, mode: str, drip: float = 2.0) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.server = _Server(mode, drip)
        self.host = f"127.0.0.1:{self.server.server_port}"
        self.ref = f"{self.host}/{REPO}:latest"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                        name=f"hostile-registry-{mode}")

    @property
    def requests(self) -> dict[str, int]:
        return dict(self.server.requests)

    @property
    def sent(self) -> int:
        return self.server.sent

    def __enter__(self) -> HostileRegistry:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
