"""Pod objects -> what to checkpoint: the node, and the container(s) to take.

Pure functions over the Pod JSON the API server returns (no I/O), used by
:meth:`forensics.capture.kube.Kube.resolve_pod` and
:meth:`~forensics.capture.kube.Kube.find_container_by_id`; every refusal is a
typed :mod:`forensics.capture.errors` error that names what is there instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from forensics.capture.errors import (
    AmbiguousContainer,
    ContainerNotFound,
    ContainerNotRunning,
    PodNotScheduled,
)
from forensics.errors import UsageError

DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


@dataclass(frozen=True)
class PodTarget:
    """A pod resolved for capture: where it runs and which containers to take."""

    node: str
    namespace: str
    pod: str
    uid: str
    containers: list[str]
    container_ids: dict[str, str] = field(default_factory=dict)  # name -> cri-o://<id> ...


def pod_target(pod: Mapping[str, Any], container: str | None = None,
               all_containers: bool = False) -> PodTarget:
    """The :class:`PodTarget` of a Pod object (see :meth:`Kube.resolve_pod`)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    phase = str((pod.get("status") or {}).get("phase") or "Pending")
    if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
        raise PodNotScheduled(ns, name, phase)
    every = [str(c.get("name")) for kind in ("containers", "initContainers",
                                             "ephemeralContainers") for c in spec.get(kind) or []]
    apps = [str(c.get("name")) for c in spec.get("containers") or []] + [
        str(c.get("name")) for c in spec.get("initContainers") or []
        if c.get("restartPolicy") == "Always"]  # native sidecars run beside the app
    states = _states(pod)
    if container and all_containers:
        raise UsageError("give either a container or all containers, not both")
    if container:
        if container not in every:
            raise ContainerNotFound(ns, name, container, available=every)
        state = states.get(container)
        if state is not None and state != "running":
            raise ContainerNotRunning(ns, name, container, state)
        chosen = [container]
    elif all_containers:
        chosen = [c for c in apps if states.get(c, "running") == "running"]
        if not chosen:
            raise ContainerNotRunning(ns, name, ", ".join(apps), "none of them is running")
    else:
        default = str(meta.get("annotations", {}).get(DEFAULT_CONTAINER_ANNOTATION, ""))
        if default in apps:
            return pod_target(pod, default)
        if len(apps) != 1:
            raise AmbiguousContainer(ns, name, apps)
        return pod_target(pod, apps[0])
    return PodTarget(node=str(spec["nodeName"]), namespace=ns, pod=name,
                     uid=str(meta.get("uid", "")), containers=chosen, container_ids=_ids(pod))


def pod_target_by_id(pod: Mapping[str, Any], container_id_prefix: str) -> PodTarget:
    """The :class:`PodTarget` of the container whose runtime id starts with the prefix."""
    meta = pod.get("metadata") or {}
    ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    prefix = container_id_prefix.strip().lower().rpartition("://")[2]
    if not prefix:
        raise UsageError("an empty container id matches nothing")
    ids = _ids(pod)
    matches = [c for c, cid in ids.items() if cid.lower().rpartition("://")[2].startswith(prefix)]
    if not matches:
        known = [f"{c} ({cid.rpartition('://')[2][:12]})" for c, cid in ids.items()]
        raise ContainerNotFound(ns, name, f"with id {prefix}", available=known)
    if len(matches) > 1:
        raise AmbiguousContainer(ns, name, matches)
    return pod_target(pod, matches[0])


def _statuses(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    status = pod.get("status") or {}
    return [s for kind in ("containerStatuses", "initContainerStatuses",
                           "ephemeralContainerStatuses") for s in status.get(kind) or []]


def _ids(pod: Mapping[str, Any]) -> dict[str, str]:
    return {str(s["name"]): str(s["containerID"]) for s in _statuses(pod)
            if s.get("name") and s.get("containerID")}


def _states(pod: Mapping[str, Any]) -> dict[str, str]:
    """Container name -> ``running`` or a description of why not."""
    states: dict[str, str] = {}
    for s in _statuses(pod):
        state = s.get("state") or {}
        if "running" in state:
            states[str(s.get("name"))] = "running"
        elif state:
            kind, detail = next(iter(state.items()))
            reason = (detail or {}).get("reason")
            states[str(s.get("name"))] = f"{kind} ({reason})" if reason else str(kind)
    return states
