"""A DOUBLE of the kubelet's checkpoint endpoint (no kubelet can run on this machine).

It stands in for the kubelet on port 10250 and answers
``POST /checkpoint/{namespace}/{pod}/{container}[?timeout=N]`` exactly as
``pkg/kubelet/server/server.go`` does: no route at all when the
``ContainerCheckpoint`` feature gate is off (Go's ``404 page not found``),
401 ``Unauthorized`` / 403 ``Forbidden (user=…)`` in plain text, 404 ``pod
does not exist`` / ``container X does not exist`` / ``cannot parse value of
timeout parameter``, 500 ``checkpointing of ns/pod/ctr failed (<CRI error>)``
and, on success, 200 ``{"items":["<dir>/checkpoint-<pod>_<ns>-<ctr>-<RFC3339>.tar"]}``.

Users are authenticated by client certificate (CN) or bearer token, and
authorized (``create`` on ``nodes/checkpoint``) from the shared
:class:`~tests.doubles.cluster.Cluster`, as a kubelet does through the API
server. Pods are the cluster's pods on this node.

The checkpoint itself is REAL: :class:`PodmanCheckpointer` finds the podman
container annotated (or labelled) ``io.kubernetes.pod.name|pod.namespace|
container.name`` and runs ``podman container checkpoint --export``, as CRI-O
does with CRIU, into the directory given to the double (standing in for
``/var/lib/kubelet/checkpoints``). :class:`ReplayCheckpointer` copies a real
archive from tests/data instead, for tests of the HTTP path that must also
run where CRIU cannot. ``cri_error`` makes every checkpoint fail with a given
CRI error (:data:`CRIO_NO_CRIU`, :data:`CONTAINERD_OLD`, ...);
:meth:`KubeletDouble.fail_next` scripts transient answers (e.g. 503).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timezone, tzinfo
from pathlib import Path
from typing import Protocol

from aiohttp import web

from tests.doubles.cluster import Cluster, Pod

CRIO_NO_CRIU = "rpc error: code = Unknown desc = checkpoint/restore support not available"
CONTAINERD_OLD = ("rpc error: code = Unimplemented desc = unknown method CheckpointContainer "
                  "for service runtime.v1.RuntimeService")
PODMAN = ("podman", "--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager",
          "cgroupfs", "--events-backend", "file")
_ROUTE = re.compile(r"/checkpoint/([^/]+)/([^/]+)/([^/]+)")
_GO_INT64 = re.compile(r"[+-]?[0-9]+")


class CriError(Exception):
    """The container runtime's error, as the kubelet receives it over CRI."""


class Checkpointer(Protocol):
    def __call__(self, pod: Pod, container: str, dest: Path, timeout: int | None) -> None: ...


def go_rfc3339(when: datetime) -> str:
    """Go's ``time.RFC3339``: seconds, ``Z`` for UTC, else ``+hh:mm``."""
    offset = when.utcoffset()
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{text}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@dataclass
class PodmanCheckpointer:
    """Checkpoints the podman container carrying the pod's Kubernetes annotations."""

    leave_running: bool = True  # as CRI-O: the checkpointed container keeps running
    compress: str = "none"  # CRI-O writes a plain tar

    def find(self, namespace: str, pod: str, container: str) -> str | None:
        ids = _podman("ps", "-q", "--no-trunc").split()
        if not ids:
            return None
        want = {"io.kubernetes.pod.name": pod, "io.kubernetes.pod.namespace": namespace,
                "io.kubernetes.container.name": container}
        for info in json.loads(_podman("container", "inspect", "--", *ids)):
            config = info.get("Config") or {}
            for tags in (config.get("Annotations") or {}, config.get("Labels") or {}):
                if all(tags.get(k) == v for k, v in want.items()):
                    return str(info["Id"])
        return None

    def __call__(self, pod: Pod, container: str, dest: Path, timeout: int | None) -> None:
        cid = self.find(pod.namespace, pod.name, container)
        if cid is None:
            raise CriError(f'rpc error: code = NotFound desc = could not find a running '
                           f'container "{container}" of pod {pod.namespace}/{pod.name}')
        argv = ["container", "checkpoint", f"--export={dest}", f"--compress={self.compress}",
                "--tcp-established", *(["--leave-running"] if self.leave_running else []),
                "--", cid]  # by id, after "--", as every csi call to podman
        try:
            _podman(*argv, timeout=timeout or 240)
        except subprocess.TimeoutExpired:
            raise CriError("rpc error: code = DeadlineExceeded desc = context deadline "
                           "exceeded") from None
        except subprocess.CalledProcessError as exc:
            tail = " ".join((exc.stderr or "").split())[-400:]
            raise CriError(f"rpc error: code = Unknown desc = failed to checkpoint container "
                           f"{cid}: {tail}") from None


@dataclass
class ReplayCheckpointer:
    """Copies a real checkpoint archive to where the kubelet would write a new one."""

    source: Path

    def __call__(self, pod: Pod, container: str, dest: Path, timeout: int | None) -> None:
        shutil.copyfile(self.source, dest)


def _podman(*args: str, timeout: float = 60) -> str:
    done = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout,
                          check=True)
    return done.stdout


def _text(status: int, text: str, *, newline: bool = False) -> web.Response:
    return web.Response(status=status, text=text + ("\n" if newline else ""),
                        content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


class KubeletDouble:
    """The aiohttp app of one node's kubelet double; its knobs may change between requests."""

    def __init__(self, cluster: Cluster, node: str, checkpoint_dir: Path,
                 checkpointer: Checkpointer | None = None, *,
                 reported_dir: str | None = None) -> None:
        self.cluster = cluster
        self.node = node
        self.checkpoint_dir = checkpoint_dir
        self.reported_dir = reported_dir or str(checkpoint_dir)
        self.checkpointer: Checkpointer = checkpointer or PodmanCheckpointer()
        self.feature_gate = True
        self.cri_error: str | None = None
        self.tz: tzinfo = UTC
        self.delay_s = 0.0
        self.scripted: list[tuple[int, str]] = []
        self.requests: list[tuple[str, str, str]] = []  # (method, raw path, user)
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.dispatch)

    def fail_next(self, count: int, status: int = 503, body: str = "service unavailable"
                  ) -> None:
        """Answer the next ``count`` requests with ``status`` and ``body``, then as usual."""
        self.scripted.extend([(status, body)] * count)

    def set_offset(self, hours: int) -> None:
        """Run the kubelet's clock in another time zone (archive names carry the offset)."""
        from datetime import timedelta
        self.tz = timezone(timedelta(hours=hours))

    def user(self, request: web.Request) -> str | None:
        cert = request.transport.get_extra_info("peercert") if request.transport else None
        for rdn in (cert or {}).get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return str(value)
        return self.cluster.user_of(request.headers.get("Authorization"))

    async def dispatch(self, request: web.Request) -> web.Response:
        user = self.user(request)
        self.requests.append((request.method, request.raw_path, user or ""))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.scripted:
            status, body = self.scripted.pop(0)
            return _text(status, body)
        route = _ROUTE.fullmatch(request.path)
        if not self.feature_gate or route is None or request.method != "POST":
            return _text(404, "404 page not found", newline=True)  # Go's ServeMux
        if user is None:
            return _text(401, "Unauthorized")
        if not self.cluster.allowed(user, "create", "nodes/checkpoint"):
            return _text(403, f"Forbidden (user={user}, verb=create, resource=nodes, "
                         "subresource(s)=[checkpoint])")
        ns, name, container = route.groups()
        return await self.checkpoint(ns, name, container, request.query.getall("timeout", []))

    async def checkpoint(self, ns: str, name: str, container: str,
                         timeouts: Sequence[str]) -> web.Response:
        pod = self.cluster.pods.get((ns, name))
        if pod is None or pod.node != self.node:
            return _text(404, "pod does not exist")
        if container not in pod.container_names():
            return _text(404, f"container {container} does not exist")
        timeout: int | None = None
        if timeouts:  # the last value counts, parsed as Go's strconv.ParseInt(v, 10, 64)
            value = timeouts[-1]
            if not _GO_INT64.fullmatch(value) or not -2**63 <= int(value) < 2**63:
                return _text(404, "cannot parse value of timeout parameter")
            timeout = int(value)
        stamp = go_rfc3339(datetime.now(self.tz).replace(microsecond=0))
        file = f"checkpoint-{name}_{ns}-{container}-{stamp}.tar"
        try:
            if self.cri_error:
                raise CriError(self.cri_error)
            await asyncio.to_thread(self.checkpointer, pod, container,
                                    self.checkpoint_dir / file, timeout)
        except CriError as exc:
            return _text(500, f"checkpointing of {ns}/{name}/{container} failed ({exc})")
        return web.json_response({"items": [f"{self.reported_dir}/{file}"]},
                                 dumps=lambda o: json.dumps(o, separators=(",", ":")))
