"""Blob uploads that survive interruptions.

``POST /v2/<name>/blobs/uploads/`` opens a session; the archive then goes
up in one ``PUT …?digest=`` (digest known: the fastest, what ``curl -T``
does) or in ``PATCH`` requests with ``Content-Range`` (digest not known
yet: it is computed from the same bytes as they are sent, then given in
the closing ``PUT``). After each acknowledged request the session URL and
offset are written to a journal under ``$CSI_HOME/uploads``; after a
failure, in this process or a later one, ``GET`` on the session URL says
how many bytes the registry holds (its ``Range``) and the upload continues
from there. A registry that refuses the old session (distribution 2.x
does once a request was cut off mid-body) gets a new one from byte 0. The
registry verifies the digest when the upload is closed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forensics.storage.base import Progress
from forensics.storage.client import RegistryClient
from forensics.storage.errors import (
    DigestMismatchError,
    RegistryError,
    RegistryUnavailableError,
)
from forensics.storage.limits import RegistryTooSlowError
from forensics.storage.streams import FileWindow, hash_prefix

OCTETS = {"Content-Type": "application/octet-stream"}


@dataclass
class Uploaded:
    sha256: str
    sent: int = 0  # archive bytes sent by this call
    resumed_from: int = 0  # bytes an earlier session had already delivered
    existed: bool = False


class Journal:
    """Where interrupted uploads are remembered: one small JSON file per upload."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        return self.directory / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"

    def load(self, key: str) -> tuple[str, int] | None:
        try:
            doc = json.loads(self._path(key).read_text())
            return str(doc["location"]), int(doc["offset"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, key: str, location: str, offset: int) -> None:
        with contextlib.suppress(OSError):
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self._path(key).with_suffix(".tmp")
            tmp.write_text(json.dumps({"key": key, "location": location, "offset": offset}))
            os.replace(tmp, self._path(key))

    def clear(self, key: str) -> None:
        with contextlib.suppress(OSError):
            self._path(key).unlink()


def file_identity(path: str) -> str:
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


class Uploader:
    """Uploads blobs into the repository of ``client``."""

    def __init__(self, client: RegistryClient, journal: Journal | None = None, *,
                 chunk_size: int = 0, progress: Progress | None = None) -> None:
        self.client = client
        self.journal = journal
        self.chunk_size = chunk_size
        self.progress = progress

    def exists(self, digest: str) -> int | None:
        """The blob's size when the repository has it, else None."""
        resp = self.client.request("HEAD", f"blobs/{digest}", push=True, expect=(200, 404),
                                   what=f"HEAD blob {digest[:19]}")
        if resp.status_code != 200:
            return None
        length = resp.headers.get("Content-Length", "").strip()
        return int(length) if length.isdigit() and len(length) < 20 else -1

    def _start(self) -> str:
        resp = self.client.request("POST", "blobs/uploads/", push=True, expect=(202,),
                                   what="start upload", retries=1)
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError("start upload: the registry gave no upload location")
        return location

    def _status(self, location: str, recorded: int) -> tuple[str, int] | None:
        """(location, bytes held) of an open session, or None if the registry dropped it."""
        resp = self.client.request("GET", location, push=True, expect=(204, 200, 400, 404),
                                   what="upload status", retries=1)
        if resp.status_code in (400, 404):
            return None
        last = resp.headers.get("Range", "0-0").partition("-")[2]
        held = int(last) + 1 if last.isdigit() and not (last == "0" and recorded == 0) else 0
        return resp.headers.get("Location") or location, held

    def _closed(self, resp: Any, digest: str, what: str) -> None:
        got = resp.headers.get("Docker-Content-Digest")
        if got and got != digest:
            raise DigestMismatchError(f"{what}: the registry stored {got}, expected {digest}")

    def put_bytes(self, data: bytes, digest: str, what: str) -> None:
        """A small blob (config) in one monolithic upload, unless already there."""
        if self.exists(digest) == len(data):
            return
        resp = self.client.request("PUT", self._start(), push=True, params={"digest": digest},
                                   data=data, headers=OCTETS, expect=(201,), what=what)
        self._closed(resp, digest, what)

    def put_file(self, path: str, size: int, sha256: str | None) -> Uploaded:
        """Upload ``path`` (``size`` bytes); ``sha256`` None means compute it on the way."""
        if sha256 and self.exists(f"sha256:{sha256}") == size:
            return Uploaded(sha256, existed=True)
        key = f"{self.client.host}/{self.client.ref.repository}|{file_identity(path)}"
        saved = self.journal.load(key) if self.journal else None
        result = Uploaded(sha256 or "")
        failures = 0
        while True:
            try:
                return self._attempt(path, size, sha256, key, saved, result)
            except RegistryTooSlowError:
                raise  # as in RegistryClient.request: a too slow registry is not retried
            except RegistryUnavailableError as exc:
                failures += 1
                saved = self.journal.load(key) if self.journal else None
                if failures >= max(1, self.client.options.retries):
                    raise RegistryUnavailableError(
                        exc.what, why=exc.why,
                        hint=f"the archive is untouched at {path}; run the push again to "
                        "resume") from None
                time.sleep(self.client.options.backoff * (2 ** (failures - 1)))

    def _attempt(self, path: str, size: int, sha256: str | None, key: str,
                 saved: tuple[str, int] | None, result: Uploaded) -> Uploaded:
        status = self._status(*saved) if saved else None
        if status is None:
            location, offset = self._start(), 0
        else:
            location, offset = status
            if offset > size:
                location, offset = self._start(), 0
            result.resumed_from = max(result.resumed_from, offset)
        if self.journal:
            self.journal.save(key, location, offset)
        hasher = None if sha256 else hash_prefix(path, offset)
        while offset < size:
            if sha256 and not self.chunk_size:  # digest known: one PUT closes the upload
                resp = self._send("PUT", location, path, offset, size - offset, size, None,
                                  params={"digest": f"sha256:{sha256}"}, expect=(201,))
                result.sent += size - offset
                self._finish(resp, key, sha256)
                return result
            length = size - offset if not self.chunk_size else min(self.chunk_size,
                                                                   size - offset)
            headers = {**OCTETS, "Content-Range": f"{offset}-{offset + length - 1}"}
            resp = self._send("PATCH", location, path, offset, length, size, hasher,
                              headers=headers, expect=(202,))
            location = resp.headers.get("Location") or location
            offset += length
            result.sent += length
            if self.journal:
                self.journal.save(key, location, offset)
        digest = sha256 or (hasher.hexdigest() if hasher else hashlib.sha256().hexdigest())
        resp = self.client.request("PUT", location, push=True, retries=1, expect=(201,),
                                   params={"digest": f"sha256:{digest}"}, headers=OCTETS,
                                   data=b"", what="close upload")
        self._finish(resp, key, digest)
        result.sha256 = digest
        return result

    def _send(self, method: str, location: str, path: str, offset: int, length: int,
              total: int, hasher: Any, *, expect: tuple[int, ...], **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", OCTETS)
        with FileWindow(path, offset, length, hasher=hasher, progress=self.progress,
                        progress_base=offset, progress_total=total) as body:
            try:
                return self.client.request(method, location, push=True, retries=1,
                                           data=body, headers=headers, expect=expect,
                                           size=length,
                                           what=f"upload {os.path.basename(path)}", **kwargs)
            except RegistryError as exc:
                if "DIGEST_INVALID" in exc.why:
                    raise DigestMismatchError(
                        f"{path}: the registry computed another sha256 than the one given",
                        why=exc.why, hint="the capture-time digest is wrong or the archive "
                        "changed; push again without --sha256") from None
                raise

    def _finish(self, resp: Any, key: str, sha256: str) -> None:
        self._closed(resp, f"sha256:{sha256}", "upload")
        if self.journal:
            self.journal.clear(key)
