"""Capture errors: Kubernetes access and the kubelet Checkpoint API.

Each class is one thing that can go wrong between csi and a node, with a
message that says what happened, why that is likely, and what to do.
``permanent`` tells a caller (the retry loop, an Argo step) whether trying
again can help: only an unreachable API server or kubelet, a timeout and
5xx answers of a proxy are temporary. ``status`` and ``body`` keep the HTTP
answer that led to the error, for the report's chain of custody.
"""

from __future__ import annotations

from forensics.errors import CsiError
from forensics.status import ExitStatus

_CHECKPOINT_RULE = ('{apiGroups: [""], resources: ["nodes/checkpoint"], verbs: ["create"]}')
_PROXY_RULE = '{apiGroups: [""], resources: ["nodes/proxy"], verbs: ["create"]}'


class CaptureError(CsiError):
    """A checkpoint could not be taken (or its target not found)."""

    exit_code = ExitStatus.EXTERNAL

    def __init__(self, what: str, *, why: str = "", hint: str = "",
                 permanent: bool | None = None, status: int | None = None,
                 body: str = "") -> None:
        super().__init__(what, why=why, hint=hint)
        if permanent is not None:
            self.permanent = permanent
        self.status = status
        self.body = body
        self.attempts = 1


class KubeConfigError(CaptureError):
    """No usable kubeconfig, context or in-cluster configuration."""

    exit_code = ExitStatus.USAGE


class ApiServerUnreachable(CaptureError):
    """The Kubernetes API server did not answer (refused, reset, timed out)."""

    permanent = False

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"cannot reach the Kubernetes API server at {host}", why=reason,
                         hint="check the kubeconfig's server address and the network; "
                         "a retry may help")


class Unauthorized(CaptureError):
    """401: credentials missing, wrong or expired (at the API server or a kubelet)."""


class RbacDenied(CaptureError):
    """403: the identity is known but lacks an RBAC rule.

    ``rule`` names what is missing: ``nodes/proxy`` (the caller, at the API
    server), ``nodes/checkpoint`` (at the kubelet; ``apiserver_identity`` when
    the denied user is the API server's own kubelet-client identity, as for
    every request that came through the node proxy), or ``pods``/``nodes``.
    """

    def __init__(self, what: str, *, user: str, verb: str, rule: str,
                 apiserver_identity: bool = False, why: str = "", hint: str = "",
                 status: int | None = 403, body: str = "") -> None:
        super().__init__(what, why=why, hint=hint, status=status, body=body)
        self.user = user
        self.verb = verb
        self.rule = rule
        self.apiserver_identity = apiserver_identity

    @classmethod
    def proxy(cls, user: str, node: str, body: str) -> RbacDenied:
        return cls(f"the API server denied {user!r} the node proxy to node {node}",
                   user=user, verb="create", rule="nodes/proxy",
                   why=f'user "{user}" cannot create resource "nodes/proxy" (RBAC)',
                   hint=f"bind a ClusterRole with the rules {_PROXY_RULE} and "
                   f"{_CHECKPOINT_RULE} to {user}", body=body)

    @classmethod
    def kubelet(cls, user: str, node: str, *, via_proxy: bool, body: str) -> RbacDenied:
        if via_proxy:
            return cls(f"the kubelet on node {node} denied the API server's kubelet-client "
                       f"identity {user!r}", user=user, verb="create", rule="nodes/checkpoint",
                       apiserver_identity=True,
                       why=f"{user} lacks create on nodes/checkpoint: through the node proxy "
                       "the kubelet sees the API server's identity, not yours",
                       hint=f"bind a ClusterRole with the rule {_CHECKPOINT_RULE} to the user "
                       f"{user} (the binding csi documents), or use the direct kubelet "
                       "transport", body=body)
        return cls(f"the kubelet on node {node} denied {user!r}", user=user, verb="create",
                   rule="nodes/checkpoint", why=f"{user} lacks create on nodes/checkpoint",
                   hint=f"bind a ClusterRole with the rule {_CHECKPOINT_RULE} to {user}",
                   body=body)


class PodNotFound(CaptureError):
    """The pod does not exist (at the API server, or on the node's kubelet)."""

    def __init__(self, namespace: str, pod: str, *, node: str = "", status: int | None = 404,
                 body: str = "") -> None:
        if node:
            super().__init__(f"pod {namespace}/{pod} does not exist on node {node}",
                             why="the kubelet does not know it: deleted, or moved to another "
                             "node", hint=f"check: kubectl get pod -n {namespace} {pod} -o wide",
                             status=status, body=body)
        else:
            super().__init__(f"pod {namespace}/{pod} not found",
                             why=f"the API server knows no pod {pod!r} in namespace "
                             f"{namespace!r}", hint="check the name and the namespace (-n); "
                             f"kubectl get pods -n {namespace}", status=status, body=body)
        self.namespace = namespace
        self.pod = pod
        self.node = node


class PodNotScheduled(CaptureError):
    """The pod runs on no node yet (Pending) or any more (Succeeded, Failed)."""

    def __init__(self, namespace: str, pod: str, phase: str) -> None:
        super().__init__(f"pod {namespace}/{pod} is not running on a node (phase {phase})",
                         why="only a running container can be checkpointed",
                         hint=f"kubectl describe pod -n {namespace} {pod}")


class ContainerNotFound(CaptureError):
    """The container is not in the pod's spec (containers, init, ephemeral)."""

    def __init__(self, namespace: str, pod: str, container: str, *,
                 available: list[str] | None = None, node: str = "",
                 status: int | None = None, body: str = "") -> None:
        if available is not None:
            why = f"its containers are: {', '.join(available) or '(none)'}"
            hint = "name one of them with -c"
        else:
            why = f"the kubelet on node {node} does not know it"
            hint = f"list them: kubectl get pod -n {namespace} {pod} " \
                   "-o jsonpath='{.spec.containers[*].name}'"
        super().__init__(f"container {container} does not exist in pod {namespace}/{pod}",
                         why=why, hint=hint, status=status, body=body)
        self.container = container
        self.available = available or []


class AmbiguousContainer(CaptureError):
    """The pod has several containers and none was chosen."""

    exit_code = ExitStatus.USAGE

    def __init__(self, namespace: str, pod: str, containers: list[str]) -> None:
        super().__init__(f"pod {namespace}/{pod} has {len(containers)} containers: "
                         f"{', '.join(containers)}",
                         why="csi checkpoints the container you name",
                         hint="choose one with -c NAME, or all of them with --all-containers")
        self.containers = containers


class ContainerNotRunning(CaptureError):
    """The container exists but is not running (waiting, terminated)."""

    def __init__(self, namespace: str, pod: str, container: str, state: str) -> None:
        super().__init__(f"container {container} of pod {namespace}/{pod} is not running",
                         why=f"its state is {state}",
                         hint="only a running container can be checkpointed")


class NodeNotFound(CaptureError):
    def __init__(self, node: str, *, body: str = "") -> None:
        super().__init__(f"node {node} not found", why="the API server knows no such node",
                         hint="kubectl get nodes", status=404, body=body)


class NodeUnreachable(CaptureError):
    """The kubelet cannot be reached (503 from the proxy, refused, reset, timed out)."""

    permanent = False

    def __init__(self, node: str, reason: str, *, status: int | None = None,
                 body: str = "") -> None:
        super().__init__(f"the kubelet on node {node} cannot be reached", why=reason,
                         hint=f"is the node Ready (kubectl get node {node}) and port 10250 "
                         "reachable? transient failures are retried", status=status, body=body)
        self.node = node


class FeatureGateOff(CaptureError):
    """404 with no route: the kubelet serves no /checkpoint endpoint."""

    def __init__(self, node: str, *, body: str = "") -> None:
        super().__init__(f"node {node} has no kubelet checkpoint endpoint (404 page not found)",
                         why=f"the ContainerCheckpoint feature gate is off on node {node} "
                         "(Kubernetes < 1.30?)",
                         hint="turn it on in the kubelet configuration (featureGates: "
                         "{ContainerCheckpoint: true}; alpha since 1.25, on by default from "
                         "1.30) and restart the kubelet", status=404, body=body)
        self.node = node


class BadTimeout(CaptureError):
    """The checkpoint timeout is not a whole number of seconds."""

    def __init__(self, node: str, value: object, *, body: str = "") -> None:
        super().__init__(f"the kubelet on node {node} cannot parse the timeout {value!r}",
                         why="cannot parse value of timeout parameter",
                         hint="give the timeout as a positive whole number of seconds",
                         status=404 if body else None, body=body)


class CheckpointFailed(CaptureError):
    """500: the container runtime (CRI) failed to checkpoint."""

    def __init__(self, node: str, target: str, cri_error: str, *, why: str = "",
                 hint: str = "", permanent: bool = True, body: str = "") -> None:
        super().__init__(f"checkpoint of {target} on node {node} failed",
                         why=why or cri_error, permanent=permanent, status=500, body=body,
                         hint=hint or "see the container runtime's log on the node "
                         "(journalctl -u crio or -u containerd) and CRIU's dump.log")
        self.node = node
        self.cri_error = cri_error


class CriuUnavailable(CheckpointFailed):
    """CRI-O answers ``checkpoint/restore support not available``."""

    def __init__(self, node: str, target: str, cri_error: str, *, body: str = "") -> None:
        super().__init__(node, target, cri_error, body=body,
                         why=f"CRI-O on node {node} has no CRIU ({cri_error})",
                         hint="install CRIU (4.2 or later on recent kernels) on the node, set "
                         "enable_criu_support = true in [crio.runtime] and restart CRI-O")


class RuntimeUnsupported(CheckpointFailed):
    """containerd < 2.0 does not implement CheckpointContainer."""

    def __init__(self, node: str, target: str, cri_error: str, *, body: str = "") -> None:
        super().__init__(node, target, cri_error, body=body,
                         why=f"containerd on node {node} is older than 2.0 and cannot "
                         f"checkpoint ({cri_error})",
                         hint="upgrade containerd to 2.0 or later, or run CRI-O 1.25+ "
                         "with CRIU on that node")


class BadCheckpointPath(CaptureError):
    """The kubelet's answer names no archive csi can trust."""

    def __init__(self, node: str, path: str, why: str, *, body: str = "") -> None:
        super().__init__(f"the kubelet on node {node} answered an unexpected archive path "
                         f"{path!r}", why=why, hint="csi only fetches archives it can place "
                         "under the kubelet's checkpoint directory; check the kubelet version",
                         status=200, body=body)
        self.path = path


class UnexpectedAnswer(CaptureError):
    """Any other answer: 5xx and 429 are temporary, the rest permanent."""

    def __init__(self, where: str, status: int, body: str) -> None:
        excerpt = " ".join(body.split())[:300] or "(empty body)"
        super().__init__(f"{where} answered HTTP {status}", why=excerpt,
                         hint="a retry may help" if status >= 500 or status == 429 else "",
                         permanent=not (status >= 500 or status == 429), status=status,
                         body=body)
