"""The kubelet Checkpoint API client (KEP-2008): ``POST /checkpoint/{ns}/{pod}/{container}``.

Two transports answer the same question: :class:`ApiServerProxy` goes
through the API server's node proxy with the kubeconfig's identity (RBAC:
``create`` on ``nodes/proxy``; the API server's own kubelet-client identity
needs ``create`` on ``nodes/checkpoint``), :class:`KubeletDirect` talks to
the kubelet on port 10250 with a client certificate or a bearer token
(``create`` on ``nodes/checkpoint``). :class:`KubeletClient` sends the
request, maps every answer to a typed error from
:mod:`forensics.capture.errors`, retries the temporary ones with exponential
backoff and jitter, and checks the archive path the kubelet returns before
anything trusts it.
"""

from __future__ import annotations

import logging
import posixpath
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from forensics.capture.errors import (
    ApiServerUnreachable,
    BadCheckpointPath,
    BadTimeout,
    CaptureError,
    CheckpointFailed,
    ContainerNotFound,
    CriuUnavailable,
    FeatureGateOff,
    NodeNotFound,
    NodeUnreachable,
    PodNotFound,
    RbacDenied,
    RuntimeUnsupported,
    Unauthorized,
    UnexpectedAnswer,
)
from forensics.capture.kube import (
    FORBIDDEN_MESSAGE,
    Answer,
    Kube,
    api_path,
    describe_network_error,
)
from forensics.names import require_k8s
from forensics.paths import KUBELET_CHECKPOINT_DIR

log = logging.getLogger(__name__)

CHECKPOINT_DIR = KUBELET_CHECKPOINT_DIR
KUBELET_PORT = 10250
DEFAULT_CRI_TIMEOUT = 240.0  # what to wait for an answer when no timeout is given
_ANSWER_MARGIN = 30.0
_TIME = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})"
_KUBELETFORBIDDEN_MESSAGE = re.compile(r"Forbidden \(user=(?P<user>[^,]*), verb=")
_CRI_FAILED = re.compile(r"checkpointing of (?P<target>.+?) failed \((?P<cri>.*)\)\s*$", re.S)
_CRI_TRANSIENT = ("DeadlineExceeded", "context deadline exceeded", "code = Unavailable")


@dataclass(frozen=True)
class CheckpointPath:
    """A checkpoint archive path, taken apart: ``DIR/checkpoint-POD_NS-CTR-TIME.tar``."""

    path: str
    directory: str
    pod: str
    namespace: str
    container: str
    time: datetime  # the kubelet's clock when it named the archive (aware)


def parse_checkpoint_path(path: str, namespace: str, pod: str, container: str, *,
                          directory: str = CHECKPOINT_DIR) -> CheckpointPath:
    """Check that ``path`` is the archive the kubelet should have written, and parse it.

    Raises ``ValueError`` saying why not: it must sit directly in ``directory``
    (no ``..``), be named for exactly this pod/namespace/container, and end in
    an RFC 3339 time (``Z`` or an offset, so with colons) and ``.tar``.
    """
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
        raise ValueError("not an absolute path")
    if posixpath.normpath(path) != path:
        raise ValueError("not a normalized path (.., . or //)")
    head, name = posixpath.split(path)
    if head != posixpath.normpath(directory):
        raise ValueError(f"not directly in the checkpoint directory {directory}")
    prefix = f"checkpoint-{pod}_{namespace}-{container}-"
    if not name.startswith(prefix) or not name.endswith(".tar"):
        raise ValueError(f"the name does not match {prefix}<time>.tar")
    stamp = name[len(prefix):-len(".tar")]
    if not re.fullmatch(_TIME, stamp):
        raise ValueError(f"{stamp!r} is not an RFC 3339 time")
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return CheckpointPath(path, head, pod, namespace, container, when)


@dataclass(frozen=True)
class CheckpointResult:
    """A checkpoint the kubelet wrote: where, and when (both clocks)."""

    node: str
    path_on_node: str
    requested_at: datetime  # csi's clock (UTC), when the successful request was sent
    written_at: datetime  # the kubelet's clock, from the archive's name
    duration: float  # seconds the successful request took
    namespace: str = ""
    pod: str = ""
    container: str = ""
    attempts: int = 1
    transport: str = ""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter for temporary failures, a bounded number of times."""

    attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 20.0

    def delay(self, failed_attempt: int, rng: random.Random) -> float:
        """Seconds to wait after attempt ``failed_attempt`` (1-based): half fixed, half random."""
        cap = min(self.max_delay, self.base_delay * 2.0 ** (failed_attempt - 1))
        return cap / 2 + rng.uniform(0, cap / 2)


class Transport(Protocol):
    """Sends the checkpoint POST to a node's kubelet; answers or raises a temporary error."""

    name: str
    via_proxy: bool

    def post(self, node: str, path: str, query: list[tuple[str, str]],
             timeout: tuple[float, float]) -> Answer: ...


class ApiServerProxy:
    """Through ``/api/v1/nodes/{node}/proxy/…`` with the kubeconfig's credentials."""

    name = "apiserver-proxy"
    via_proxy = True

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def post(self, node: str, path: str, query: list[tuple[str, str]],
             timeout: tuple[float, float]) -> Answer:
        resource = api_path("api", "v1", "nodes", node, "proxy") + path
        try:
            answer = self.kube.request("POST", resource, query=query, timeout=timeout)
        except ApiServerUnreachable as exc:
            if "read timed out" not in exc.why.lower():
                raise
            raise NodeUnreachable(node, f"no answer through the API server within "
                                  f"{timeout[1]:g} s") from None
        status = answer.status_object() if answer.status != 200 else None
        if status is None:  # the kubelet's own answer, passed through
            return answer
        message = str(status.get("message", ""))
        found = FORBIDDEN_MESSAGE.search(message)
        if answer.status == 403 and found and found["res"] == "nodes/proxy":
            raise RbacDenied.proxy(found["user"], node, answer.text)
        if answer.status == 404 and (status.get("details") or {}).get("kind") == "nodes":
            raise NodeNotFound(node, body=answer.text)
        if answer.status in (502, 503, 504):
            raise NodeUnreachable(node, message or f"HTTP {answer.status}",
                                  status=answer.status, body=answer.text)
        raise self.kube.api_error(answer, f"the API server at {self.kube.host}")


class KubeletDirect:
    """Straight to ``https://NODE:10250`` (``url`` may be a template or a function of the node).

    Authenticates with a client certificate (``client_cert``/``client_key``)
    or a bearer token (``token``, or ``token_file`` re-read on each request);
    verifies the kubelet's certificate against ``ca_bundle`` unless ``insecure``.
    """

    name = "kubelet"
    via_proxy = False

    def __init__(self, url: str | Callable[[str], str] = f"https://{{node}}:{KUBELET_PORT}", *,
                 token: str | None = None, token_file: str | None = None,
                 client_cert: str | None = None, client_key: str | None = None,
                 ca_bundle: str | None = None, insecure: bool = False) -> None:
        self.url = url
        self.token, self.token_file = token, token_file
        self.cert = (client_cert, client_key) if client_cert and client_key else client_cert
        self.verify: bool | str = False if insecure else (ca_bundle or True)

    def base_url(self, node: str) -> str:
        return (self.url(node) if callable(self.url) else self.url.format(node=node)).rstrip("/")

    def post(self, node: str, path: str, query: list[tuple[str, str]],
             timeout: tuple[float, float]) -> Answer:
        import requests

        headers = {"Accept": "application/json, */*"}
        token = self.token
        if self.token_file:
            with open(self.token_file, encoding="utf-8") as f:
                token = f.read().strip()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            r = requests.post(self.base_url(node) + path, params=query, headers=headers,
                              timeout=timeout, verify=self.verify, cert=self.cert)
        except requests.exceptions.SSLError as exc:
            raise CaptureError(f"TLS with the kubelet on node {node} failed", why=str(exc),
                               hint="give the kubelet's CA bundle, or (not for evidence) "
                               "the insecure option") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise NodeUnreachable(node, f"{self.base_url(node)}: "
                                  f"{describe_network_error(exc)}") from None
        return Answer(r.status_code, r.content, r.headers.get("Content-Type", ""))


class KubeletClient:
    """Takes checkpoints through one transport, with retries for temporary failures.

    A retry after a timeout may leave two archives on the node (the kubelet
    may have finished the first one after csi stopped waiting): the result
    names the one that was answered; cleanup of the node's checkpoint
    directory is the pipeline's business.
    """

    def __init__(self, transport: Transport, *, retry: RetryPolicy | None = None,
                 checkpoint_dir: str = CHECKPOINT_DIR, connect_timeout: float = 10.0,
                 read_timeout: float | None = None, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        self.transport = transport
        self.retry = retry or RetryPolicy()
        self.checkpoint_dir = checkpoint_dir
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout  # default: the kubelet's timeout and a margin
        self.sleep = sleep
        self.rng = rng or random.Random()

    def checkpoint(self, node: str, namespace: str, pod: str, container: str,
                   timeout_s: int | None = None) -> CheckpointResult:
        """Checkpoint one container; raise a :class:`CaptureError` subclass on failure.

        ``timeout_s`` is the kubelet's (CRI's) timeout in whole seconds; without
        it the kubelet uses its runtime request timeout.
        """
        if timeout_s is not None and (type(timeout_s) is not int or timeout_s <= 0):
            raise BadTimeout(node, timeout_s)
        require_k8s(namespace=namespace, pod=pod, container=container, node=node)
        path = api_path("checkpoint", namespace, pod, container)
        query = [("timeout", str(timeout_s))] if timeout_s is not None else []
        wait = (self.connect_timeout, self.read_timeout or
                float(timeout_s or DEFAULT_CRI_TIMEOUT) + _ANSWER_MARGIN)
        for attempt in range(1, max(1, self.retry.attempts) + 1):
            requested_at = datetime.now(UTC)
            started = time.monotonic()
            try:
                answer = self.transport.post(node, path, query, wait)
                if answer.status != 200:
                    raise self.error(answer, node, namespace, pod, container, timeout_s)
                return self._result(answer, node, namespace, pod, container, requested_at,
                                    time.monotonic() - started, attempt)
            except CaptureError as exc:
                exc.attempts = attempt
                if exc.permanent:
                    raise
                if attempt >= self.retry.attempts:
                    exc.why = f"{exc.why}; gave up after {attempt} attempts" if attempt > 1 \
                        else exc.why
                    raise
                pause = self.retry.delay(attempt, self.rng)
                log.warning("checkpoint of %s/%s/%s on node %s: %s; retry %d/%d in %.1f s",
                            namespace, pod, container, node, exc, attempt,
                            self.retry.attempts - 1, pause)
                self.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def _result(self, answer: Answer, node: str, namespace: str, pod: str, container: str,
                requested_at: datetime, duration: float, attempts: int) -> CheckpointResult:
        try:
            items = answer.json()["items"]
        except (ValueError, KeyError, TypeError):
            raise UnexpectedAnswer(f"the kubelet on node {node}", 200, answer.text) from None
        if not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], str):
            raise BadCheckpointPath(node, str(items), "expected exactly one archive path",
                                    body=answer.text)
        try:
            parsed = parse_checkpoint_path(items[0], namespace, pod, container,
                                           directory=self.checkpoint_dir)
        except ValueError as exc:
            raise BadCheckpointPath(node, items[0], str(exc), body=answer.text) from None
        return CheckpointResult(node, parsed.path, requested_at, parsed.time, duration,
                                namespace, pod, container, attempts, self.transport.name)

    def error(self, answer: Answer, node: str, namespace: str, pod: str, container: str,
              timeout_s: int | None) -> CaptureError:
        """The typed error for a kubelet's (non-200) answer."""
        text, status, via = answer.text, answer.status, self.transport.via_proxy
        first = text.strip()
        if status == 401:
            who = "the API server's kubelet-client credentials" if via else "csi's credentials"
            return Unauthorized(f"the kubelet on node {node} rejected {who} (401 Unauthorized)",
                                why="no client certificate signed by the kubelet's client CA "
                                "and no bearer token it can verify",
                                hint="check the API server's --kubelet-client-certificate "
                                "against the kubelet's clientCAFile" if via else
                                "give a client certificate and key, or a service-account "
                                "token (the kubelet needs authentication.webhook.enabled)",
                                status=401, body=text)
        found = _KUBELETFORBIDDEN_MESSAGE.match(first)
        if status == 403 and found:
            return RbacDenied.kubelet(found["user"], node, via_proxy=via, body=text)
        if status == 404:
            if first == "404 page not found":
                return FeatureGateOff(node, body=text)
            if first == "pod does not exist":
                return PodNotFound(namespace, pod, node=node, body=text)
            if first.startswith("container ") and first.endswith(" does not exist"):
                return ContainerNotFound(namespace, pod, container, node=node, status=404,
                                         body=text)
            if first == "cannot parse value of timeout parameter":
                return BadTimeout(node, timeout_s, body=text)
        failed = _CRI_FAILED.match(first)
        if status == 500 and failed:
            cri, target = failed["cri"], failed["target"]
            if "checkpoint/restore support not available" in cri:
                return CriuUnavailable(node, target, cri, body=text)
            if "unknown method CheckpointContainer" in cri:
                return RuntimeUnsupported(node, target, cri, body=text)
            return CheckpointFailed(node, target, cri, body=text,
                                    permanent=not any(t in cri for t in _CRI_TRANSIENT))
        return UnexpectedAnswer(f"the kubelet on node {node}", status, text)
