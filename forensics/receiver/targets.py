"""Which container an alert names: a :class:`~forensics.orchestration.request.Target`, or why none.

Kubernetes: ``k8s.ns.name`` + ``k8s.pod.name`` + ``container.name``, the node
from ``hostname`` (the node name under Falco's Helm chart). When only
``container.id`` is known, the target carries it and an empty container name:
the capture pipeline finds the container through the pod's
``status.containerStatuses[].containerID``. Podman: ``container.name``, else
``container.id``. Whether the pod really exists is for the pipeline to find
out (this module never calls an API); its failure is recorded on the capture.

Every name and id an alert gives is checked with :mod:`forensics.names`
before it becomes a target: alert fields are the attacker's (a container
"name" of ``--latest`` once made podman checkpoint another container), so a
value Kubernetes or podman would never have given makes the alert
``unresolved`` with the reason, and it is never journaled as a capture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from forensics.names import (
    container_id_problem,
    container_problem,
    namespace_problem,
    node_problem,
    pod_problem,
    podman_name_problem,
)
from forensics.orchestration.request import Backend, Target
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
    process), ``unresolved`` (container fields are ``null``, missing, or not a
    name or id Kubernetes/podman would give).
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
        invalid = _invalid((podman_name_problem, "container.name", name),
                           (container_id_problem, "container.id", container_id))
        if invalid:
            return invalid
        return Target(backend="podman", container=name or container_id,
                      container_id=container_id)
    namespace, pod = alert.text("k8s.ns.name"), alert.text("k8s.pod.name")
    invalid = _invalid((namespace_problem, "k8s.ns.name", namespace),
                       (pod_problem, "k8s.pod.name", pod),
                       (container_problem, "container.name", name),
                       (container_id_problem, "container.id", container_id),
                       (node_problem, "hostname (the node)", alert.hostname))
    if invalid:
        return invalid
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


def _invalid(*checks: tuple[Callable[[object, str], str], str, str]) -> Unresolved | None:
    """``unresolved`` naming the first given field that is no valid name or id."""
    for check, field, value in checks:
        problem = check(value, field) if value else ""
        if problem:
            return Unresolved("unresolved", f"unresolved target: {problem}")
    return None
