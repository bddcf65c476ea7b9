"""The state both doubles share: nodes, pods, identities and RBAC rules.

A real kubelet learns its pods from the API server and asks the API server
(SubjectAccessReview) whether a user may checkpoint; the doubles read the
same :class:`Cluster` for both. Pod and Node objects are rendered the way
the API server returns them (the fields csi and kubectl read, and the usual
defaults around them).
"""

from __future__ import annotations

import secrets
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

APISERVER_KUBELET_USER = "kube-apiserver-kubelet-client"
CREATED = "2026-11-22T07:00:00Z"


@dataclass
class Container:
    name: str
    kind: str = "containers"  # or initContainers, ephemeralContainers
    restart_policy: str | None = None  # "Always" for a native sidecar
    state: str = "running"  # or "waiting:CrashLoopBackOff", "terminated:Completed"
    runtime: str = "cri-o"
    container_id: str = field(default_factory=lambda: secrets.token_hex(32))
    image: str = "localhost/csi-workload:latest"

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "image": self.image,
                               "imagePullPolicy": "IfNotPresent", "resources": {},
                               "terminationMessagePath": "/dev/termination-log",
                               "terminationMessagePolicy": "File"}
        if self.restart_policy:
            out["restartPolicy"] = self.restart_policy
        return out

    def status(self) -> dict[str, Any]:
        kind, _, reason = self.state.partition(":")
        detail: dict[str, Any] = {"startedAt": CREATED} if kind == "running" else {}
        if reason:
            detail["reason"] = reason
        if kind == "terminated":
            detail["exitCode"] = 0
        return {"name": self.name, "state": {kind: detail}, "ready": kind == "running",
                "restartCount": 0, "image": self.image,
                "imageID": f"{self.image.rsplit(':', 1)[0]}@sha256:{'0' * 64}",
                "containerID": f"{self.runtime}://{self.container_id}",
                "started": kind == "running"}


@dataclass
class Pod:
    namespace: str
    name: str
    node: str
    containers: list[Container]
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    phase: str = "Running"
    annotations: dict[str, str] = field(default_factory=dict)

    def container_names(self) -> list[str]:
        return [c.name for c in self.containers]

    def to_object(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                                "dnsPolicy": "ClusterFirst", "serviceAccountName": "default",
                                "schedulerName": "default-scheduler", "enableServiceLinks": True}
        if self.node:
            spec["nodeName"] = self.node
        statuses: dict[str, list[dict[str, Any]]] = {}
        for c in self.containers:
            spec.setdefault(c.kind, []).append(c.spec())
            if self.node and self.phase != "Pending":
                key = {"containers": "containerStatuses",
                       "initContainers": "initContainerStatuses"}.get(
                    c.kind, "ephemeralContainerStatuses")
                statuses.setdefault(key, []).append(c.status())
        status: dict[str, Any] = {"phase": self.phase, "qosClass": "BestEffort", **statuses}
        if self.node:
            status.update(hostIP="127.0.0.1", podIP="10.244.0.17", startTime=CREATED)
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace,
                                    "uid": self.uid, "resourceVersion": "4711",
                                    "creationTimestamp": CREATED,
                                    "labels": {"app": self.name.split("-")[0]}}
        if self.annotations:
            metadata["annotations"] = dict(self.annotations)
        return {"kind": "Pod", "apiVersion": "v1", "metadata": metadata, "spec": spec,
                "status": status}


@dataclass
class Node:
    name: str
    kubelet_url: str = ""  # set when its kubelet double listens
    runtime_version: str = "cri-o://1.30.3"
    kubelet_version: str = "v1.30.2"

    def to_object(self) -> dict[str, Any]:
        port = int(self.kubelet_url.rsplit(":", 1)[1]) if self.kubelet_url else 10250
        return {"kind": "Node", "apiVersion": "v1",
                "metadata": {"name": self.name, "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS,
                                                                       self.name)),
                             "resourceVersion": "815", "creationTimestamp": CREATED,
                             "labels": {"kubernetes.io/hostname": self.name,
                                        "kubernetes.io/os": "linux"}},
                "spec": {"podCIDR": "10.244.0.0/24"},
                "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                         {"type": "Hostname", "address": self.name}],
                           "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
                           "conditions": [{"type": "Ready", "status": "True",
                                           "reason": "KubeletReady"}],
                           "nodeInfo": {"kubeletVersion": self.kubelet_version,
                                        "containerRuntimeVersion": self.runtime_version,
                                        "operatingSystem": "linux",
                                        "architecture": "amd64"}}}


@dataclass
class Cluster:
    """Nodes, pods, bearer tokens (token -> user) and RBAC (user -> {(verb, resource)})."""

    nodes: dict[str, Node] = field(default_factory=dict)
    pods: dict[tuple[str, str], Pod] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    rbac: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_node(self, name: str) -> Node:
        self.nodes[name] = Node(name)
        return self.nodes[name]

    def add_pod(self, pod: Pod) -> Pod:
        self.pods[(pod.namespace, pod.name)] = pod
        return pod

    def add_user(self, user: str, *rules: tuple[str, str], token: str | None = None) -> str:
        """Grant ``rules`` to ``user``; return a bearer token for it."""
        self.rbac.setdefault(user, set()).update(rules)
        token = token or f"{user}-{secrets.token_hex(8)}"
        self.tokens[token] = user
        return token

    def grant(self, user: str, verb: str, resource: str) -> None:
        self.rbac.setdefault(user, set()).add((verb, resource))

    def revoke(self, user: str, verb: str, resource: str) -> None:
        self.rbac.get(user, set()).discard((verb, resource))

    def allowed(self, user: str, verb: str, resource: str) -> bool:
        return (verb, resource) in self.rbac.get(user, set())

    def user_of(self, authorization: str | None) -> str | None:
        """The user a ``Bearer`` header authenticates, or None."""
        scheme, _, token = (authorization or "").partition(" ")
        return self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
