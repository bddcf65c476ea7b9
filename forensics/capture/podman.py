"""Checkpointing a container on a Podman host (edge machines, no Kubernetes).

``podman container checkpoint --export`` writes the same archive layout the
kubelet produces (uncompressed, as the kubelet writes it); the container
keeps running (``--leave-running``), as after a kubelet checkpoint. Extra
global podman options (storage driver, runtime, cgroup manager) come from
``CSI_PODMAN_FLAGS`` where a host needs them, e.g. this project's test
machines: ``--storage-driver vfs --runtime runc --cgroup-manager cgroupfs
--events-backend file``.

Names come from alerts and responders: each is checked with
:func:`forensics.names.podman_ref_problem` (podman's own rule, so never
``--latest``) and handed to podman after ``--``; the checkpoint itself names
the container by the id ``podman inspect`` gave.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime

from forensics.capture.errors import CaptureError
from forensics.names import container_id_problem, podman_ref_problem, require
from forensics.run import run
from forensics.storage.errors import ToolError

CHECKPOINT_TIMEOUT = 900.0
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class PodmanCheckpoint:
    container: str  # the name podman knows
    container_id: str
    path: str
    requested_at: datetime
    written_at: datetime


def podman_argv(*args: str) -> list[str]:
    return ["podman", *shlex.split(os.environ.get("CSI_PODMAN_FLAGS", "")), *args]


def inspect(container: str) -> dict[str, object]:
    """podman's view of a container; CaptureError when there is no such container.

    :class:`~forensics.names.InvalidName` (before podman runs) when ``container``
    is no podman container name or id.
    """
    require(podman_ref_problem, "podman container name or id", container)
    try:
        done = run(podman_argv("container", "inspect", "--format", "json", "--", container),
                   timeout=60)
    except ToolError as exc:
        if "no such container" in (exc.stderr or str(exc)).lower():
            raise CaptureError(f"podman has no container {container!r}",
                               hint="podman ps lists the running ones") from None
        raise
    data = json.loads(done.stdout or "[]")
    if not data:
        raise CaptureError(f"podman has no container {container!r}")
    info: dict[str, object] = data[0]
    return info


def checkpoint(container: str, directory: str, *, leave_running: bool = True,
               timeout: float = CHECKPOINT_TIMEOUT) -> PodmanCheckpoint:
    """Checkpoint ``container`` into a new archive in ``directory``."""
    info = inspect(container)
    state = info.get("State")
    if not isinstance(state, dict) or not state.get("Running"):
        raise CaptureError(f"podman container {container!r} is not running",
                           why="only a running container can be checkpointed")
    name = str(info.get("Name") or container)
    cid = require(container_id_problem, "container id", str(info.get("Id") or ""))
    requested = datetime.now(UTC)
    stamp = requested.strftime("%Y-%m-%dT%H:%M:%SZ")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.abspath(os.path.join(directory,
                                        f"checkpoint-{_SAFE.sub('_', name)}-{stamp}.tar"))
    argv = podman_argv("container", "checkpoint", f"--export={path}", "--compress", "none",
                       "--tcp-established")
    if leave_running:
        argv.append("--leave-running")
    try:
        run([*argv, "--", cid], timeout=timeout)
    except ToolError as exc:
        with_criu = "criu" in (exc.stderr or "").lower()
        raise CaptureError(
            f"podman could not checkpoint {name}", why=exc.why or str(exc),
            hint="check `criu check` and that CRIU is >= 4.2" if with_criu else "",
        ) from None
    return PodmanCheckpoint(name, cid, path, requested,
                            datetime.now(UTC))
