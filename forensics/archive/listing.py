"""Finding checkpoint archives in folders (``csi list``), cheaply.

Only ``config.dump`` and ``spec.dump`` are needed, and both come first in
every engine's archive: the tar is streamed (through any compression) and
reading stops as soon as both are found, so a multi-GiB archive costs a few
kilobytes of reading.
"""

from __future__ import annotations

import os
import re
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, cast

from forensics.archive.metadata import (
    annotations_of,
    container_info,
    kubernetes_identity,
    parse_json_object,
)
from forensics.archive.source import (
    normalise_member_name,
    open_stream,
    sniff_compression,
    zstd_incomplete,
)
from forensics.paths import KUBELET_CHECKPOINT_DIR

DEFAULT_DIR = KUBELET_CHECKPOINT_DIR
_WANTED = ("config.dump", "spec.dump")
MAX_READ = 160 << 20  # bytes of tar read at most to find them
_KUBELET_NAME = re.compile(
    r"^checkpoint-(?P<rest>.+)-(?P<time>\d{4}-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:\d\d))\.tar"
)


@dataclass(frozen=True)
class ListedCheckpoint:
    file: str
    namespace: str | None
    pod: str | None
    container: str
    engine: str
    checkpointed: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_metadata(path: str) -> dict[str, dict[str, Any]]:
    """config.dump and spec.dump of an archive, read by streaming; missing ones are absent."""
    found: dict[str, dict[str, Any]] = {}
    with open_stream(path) as stream, \
            tarfile.open(fileobj=cast(IO[bytes], _Capped(stream)), mode="r|") as tar:
        for info in tar:
            name = normalise_member_name(info.name)
            if name in _WANTED and info.isfile() and info.size <= 64 << 20:
                f = tar.extractfile(info)
                if f is not None:
                    found[name] = parse_json_object(f.read())
            if len(found) == len(_WANTED) or (name or "").startswith("checkpoint/"):
                break
    return found


class _Capped:
    """A stream that refuses to be read past MAX_READ bytes.

    Both metadata files come first and are at most 64 MiB each; a forged pax or
    GNU long-name header claiming gigabytes would otherwise be read into memory
    whole by tarfile's streaming mode.
    """

    def __init__(self, stream: Any) -> None:
        self._stream, self._done = stream, 0

    def read(self, size: int = -1) -> bytes:
        if size < 0 or self._done + size > MAX_READ:
            raise tarfile.ReadError(f"no config.dump and spec.dump in the first "
                                    f"{MAX_READ >> 20} MiB (a forged tar header?)")
        data: bytes = self._stream.read(size)
        self._done += len(data)
        return data


def describe(path: str) -> ListedCheckpoint:
    """Identify one archive; raises ValueError/OSError/TarError if it is not one."""
    meta = read_metadata(path)
    if not meta:
        raise ValueError("no config.dump or spec.dump")
    annotations = annotations_of(meta.get("spec.dump", {}))
    info = container_info(meta.get("config.dump", {}), annotations)
    k8s = kubernetes_identity(annotations)
    when = info.checkpointed
    if not when:
        match = _KUBELET_NAME.match(os.path.basename(path))
        when = match.group("time") if match else _mtime(path)
    return ListedCheckpoint(
        file=os.path.basename(path),
        namespace=k8s.namespace,
        pod=k8s.pod,
        container=k8s.container or info.name,
        engine=info.engine,
        checkpointed=when,
    )


def _zstd_cut(path: str) -> str | None:
    """Why a zstd archive is cut short; None if it is whole or not zstd (a cut gzip or
    plain tar is only found by reading all of it, which ``csi list`` does not do)."""
    try:
        with open(path, "rb") as f:
            if sniff_compression(f.read(8)) != "zstd":
                return None
        return zstd_incomplete(path)
    except OSError:
        return None  # describe() says why the file cannot be read


def _mtime(path: str) -> str:
    moment = datetime.fromtimestamp(os.stat(path).st_mtime, UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def scan(folders: list[str]) -> tuple[list[ListedCheckpoint], list[str]]:
    """The checkpoint archives directly inside ``folders``, newest first, and warnings."""
    found: list[ListedCheckpoint] = []
    warnings: list[str] = []
    for folder in folders:
        try:
            names = sorted(os.listdir(folder))
        except OSError as exc:
            warnings.append(f"{folder}: cannot list ({exc.strerror})")
            continue
        for name in names:
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                continue
            cut = _zstd_cut(path)  # cheap: frame and block headers only
            try:
                found.append(describe(path))
            except (OSError, ValueError, tarfile.TarError, EOFError) as exc:
                if name.startswith("checkpoint-") or name.endswith((".tar", ".tar.zst", ".tar.gz")):
                    why = f"corrupt zstd data: {cut}" if cut else str(exc)
                    warnings.append(f"{path}: not a readable checkpoint archive ({why})")
                continue
            if cut:
                warnings.append(f"{path}: cut short (corrupt zstd data: {cut}); its metadata "
                                "is listed, but its contents are incomplete")
    found.sort(key=lambda c: c.checkpointed, reverse=True)
    return found, warnings
