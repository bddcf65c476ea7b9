"""Which container an alert names: a :class:`~forensics.capture.request.Target`, or why none.

Kubernetes: ``k8s.ns.name`` + ``k8s.pod.name`` + ``container.name``, the node
from ``hostname`` (the node name under Falco's Helm chart). When only
``container.id`` is known, the target carries it and an empty container name:
the capture pipeline finds the container through the pod's
``status.containerStatuses[].containerID``. Podman: ``container.name``, else
``container.id``. Whether the pod really exists is for the pipeline to find
out (this module never calls an API); its failure is recorded on the capture.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from forensics.capture.request import Backend, Target
from forensics.receiver.falco import Alert

CONTAINER_FIELDS = ("container.id", "container.name", "k8s.pod.name", "k8s.ns.name")
TARGET_FIELDS = tuple(f.name for f in fields(Target))


def target_dict(target: Target) -> dict[str, Any]:
    """``dataclasses.asdict`` without its deep copies (on the accept path)."""
    return {name: getattr(target, name) for name in TARGET_FIELDS}


@dataclass(frozen=True)
class Unresolved:
    """Why an alert names no container csi may capture.

    ``kind``: ``internal`` (Falco's own events), ``no-container`` (a source such
    as ``k8saudit`` whose events are not about a container), ``host`` (a host
    process), ``unresolved`` (container fields are ``null`` or missing).
    """

    kind: str
    reason: str


def resolve_target(alert: Alert, backend: Backend) -> Target | Unresolved:
    """The alert's container, or the one-line reason it has none."""
    if alert.source == "internal":
        return Unresolved("internal", "internal source: Falco's own event (like dropped "
                          "syscalls) names no container")
    if alert.source != "syscall" and not any(alert.text(f) for f in CONTAINER_FIELDS):
        return Unresolved("no-container", f"source {alert.source!r} names no container "
                          "(only syscall alerts and plugins with container fields can be "
                          "captured)")
    container_id = alert.text("container.id")
    if container_id == "host":
        return Unresolved("host", "host process (container.id=host): csi never checkpoints "
                          "the host")
    name = alert.text("container.name")
    if backend == "podman":
        if not (name or container_id):
            return Unresolved("unresolved", "unresolved target: container.name and "
                              "container.id are both null or missing")
        return Target(backend="podman", container=name or container_id,
                      container_id=container_id)
    namespace, pod = alert.text("k8s.ns.name"), alert.text("k8s.pod.name")
    if not (namespace and pod):
        missing = " and ".join(f for f, v in (("k8s.ns.name", namespace),
                                              ("k8s.pod.name", pod)) if not v)
        where = f"container {container_id}" if container_id else "the process"
        return Unresolved("unresolved", f"unresolved target: {missing} null or missing "
                          f"({where} is in no pod Falco knows)")
    if not (name or container_id):
        return Unresolved("unresolved", f"unresolved target: pod {namespace}/{pod} is known "
                          "but container.name and container.id are both null or missing")
    return Target(backend="kubernetes", namespace=namespace, pod=pod, container=name,
                  node=alert.hostname, container_id=container_id)
