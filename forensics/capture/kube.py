"""Kubernetes access through the official ``kubernetes`` client, kubectl's way.

:func:`connect` finds the configuration as kubectl does: ``--kubeconfig``,
else ``$KUBECONFIG`` (a ``:``-separated list, merged), else
``~/.kube/config``, else the in-cluster service account when running in a
pod; ``--context`` or the current context; the context's namespace as the
default namespace. :class:`Kube` then resolves what to checkpoint:
:meth:`Kube.resolve_pod` (a pod and container names) and
:meth:`Kube.find_container_by_id` (a runtime container id from a Falco alert).

Requests go through the client's own ``ApiClient`` (its credentials, TLS
settings, exec plugins and token refresh) with paths built here, and
answers are read as JSON: the same code serves the node proxy in
:mod:`forensics.capture.kubelet`. ``kubernetes`` is imported lazily: it
costs a few hundred milliseconds that ``csi --help`` should not pay.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from forensics.capture.errors import (
    ApiServerUnreachable,
    CaptureError,
    KubeConfigError,
    NodeNotFound,
    PodNotFound,
    RbacDenied,
    Unauthorized,
    UnexpectedAnswer,
)
from forensics.capture.pods import PodTarget, pod_target, pod_target_by_id
from forensics.names import require_k8s

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_TIMEOUT = 30.0
FORBIDDEN_MESSAGE = re.compile(
    r'User "(?P<user>[^"]*)" cannot (?P<verb>\S+) resource "(?P<res>[^"]*)"')


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, as received."""

    status: int
    body: bytes
    content_type: str = ""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def status_object(self) -> dict[str, Any] | None:
        """The Kubernetes ``Status`` object in the body, if that is what it is."""
        try:
            data = self.json()
        except ValueError:
            return None
        return data if isinstance(data, dict) and data.get("kind") == "Status" else None


def api_path(*parts: str) -> str:
    """``/a/b/c`` with each component percent-quoted (a ``/`` inside one is quoted too)."""
    return "/" + "/".join(quote(p, safe="") for p in parts)


class Kube:
    """One cluster, reached with one identity (a kubeconfig context or a service account)."""

    def __init__(self, api_client: Any, *, context: str, namespace: str) -> None:
        self.api_client = api_client
        self.context = context
        self.namespace = namespace

    @property
    def host(self) -> str:
        return str(self.api_client.configuration.host)

    def close(self) -> None:
        self.api_client.close()

    def __enter__(self) -> Kube:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ requests
    def request(self, method: str, path: str, *, query: Sequence[tuple[str, str]] = (),
                timeout: float | tuple[float, float] | None = DEFAULT_TIMEOUT) -> Answer:
        """Send one request with the context's credentials; any HTTP status is an answer.

        Raises :class:`ApiServerUnreachable` when no answer came back (temporary).
        """
        import urllib3
        from kubernetes.client.exceptions import ApiException

        client = self.api_client
        try:
            _, url, headers, body, post = client.param_serialize(
                method=method, resource_path=path, query_params=list(query) or None,
                header_params={"Accept": "application/json, */*"},
                auth_settings=["BearerToken"])
            response = client.call_api(method, url, header_params=headers, body=body,
                                       post_params=post, _request_timeout=timeout)
            data = response.read()
        except ApiException as exc:  # the client's wrapping of TLS failures (status 0)
            raise CaptureError(f"TLS with the API server at {self.host} failed",
                               why=str(exc.reason).replace("\n", ": "),
                               hint="check the cluster's certificate-authority in the "
                               "kubeconfig") from None
        except urllib3.exceptions.HTTPError as exc:
            raise ApiServerUnreachable(self.host, describe_network_error(exc)) from None
        return Answer(int(response.status), bytes(data or b""),
                      str(response.headers.get("content-type", "")))

    def get(self, path: str, *, kind: str, name: str, namespace: str = "") -> dict[str, Any]:
        """GET a resource as a dict; 401/403/404 and the rest become typed errors."""
        answer = self.request("GET", path)
        if answer.status == 200:
            data = answer.json()
            if isinstance(data, dict):
                return data
        if answer.status == 404 and kind == "pods":
            raise PodNotFound(namespace, name, body=answer.text)
        if answer.status == 404 and kind == "nodes":
            raise NodeNotFound(name, body=answer.text)
        raise self.api_error(answer, f"the API server at {self.host}")

    def api_error(self, answer: Answer, where: str) -> CaptureError:
        """The typed error for an API server's own error answer (a Status object)."""
        status = answer.status_object() or {}
        message = str(status.get("message", "")) or answer.text.strip()
        if answer.status == 401:
            return Unauthorized(f"the API server at {self.host} rejected the credentials of "
                                f"context {self.context!r} (401 Unauthorized)",
                                why="the token or client certificate is missing, wrong or "
                                "expired", hint="log in again or refresh the kubeconfig's "
                                "credentials", status=401, body=answer.text)
        found = FORBIDDEN_MESSAGE.search(message)
        if answer.status == 403 and found:
            user, verb, res = found["user"], found["verb"], found["res"]
            return RbacDenied(f"the API server denied {user!r} to {verb} {res}", user=user,
                              verb=verb, rule=res, why=message,
                              hint=f"grant {verb} on {res} to {user} (RBAC)", body=answer.text)
        return UnexpectedAnswer(where, answer.status, message)

    # ------------------------------------------------------------ resources
    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        require_k8s(namespace=namespace, pod=name)  # never "..": a path part of the URL
        return self.get(api_path("api", "v1", "namespaces", namespace, "pods", name),
                        kind="pods", name=name, namespace=namespace)

    def get_node(self, name: str) -> dict[str, Any]:
        require_k8s(node=name)
        return self.get(api_path("api", "v1", "nodes", name), kind="nodes", name=name)

    def kubelet_url(self, node: str) -> str:
        """``https://ADDRESS:PORT`` of a node's kubelet, as the API server would pick it."""
        obj = self.get_node(node)
        status = obj.get("status") or {}
        port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get(
            "Port") or 10250
        addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
        for kind in ("InternalIP", "Hostname", "ExternalIP"):
            if addresses.get(kind):
                host = str(addresses[kind])
                return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        return f"https://{node}:{port}"

    def resolve_pod(self, name: str, namespace: str | None = None, container: str | None = None,
                    all_containers: bool = False) -> PodTarget:
        """The node and container(s) of pod ``name`` (in the context's namespace by default).

        No ``container``: the pod's only container (or the one kubectl's
        ``kubectl.kubernetes.io/default-container`` annotation names);
        :class:`~forensics.capture.errors.AmbiguousContainer` lists them when
        there are several. ``all_containers``: every running app container and
        native sidecar.
        """
        ns = namespace or self.namespace
        require_k8s(namespace=ns, pod=name, container=container or None)
        return pod_target(self.get_pod(ns, name), container, all_containers)

    def find_container_by_id(self, namespace: str, pod: str,
                             container_id_prefix: str) -> PodTarget:
        """The pod's container whose runtime id starts with the prefix (Falco's 12 digits,
        or a full ``cri-o://…``/``containerd://…`` id)."""
        require_k8s(namespace=namespace, pod=pod, container_id=container_id_prefix)
        return pod_target_by_id(self.get_pod(namespace, pod), container_id_prefix)


_NETWORK_REASON = re.compile(r"\[Errno -?\d+\] [^'\")]+|(?:Read|Connect) timed out|"
                             r"Connection (?:reset|aborted)[^'\")]*")


def describe_network_error(exc: BaseException) -> str:
    """The heart of a connection failure (``[Errno 111] Connection refused``, ``Read timed
    out``), not urllib3's nested reprs."""
    text = str(exc)
    found = _NETWORK_REASON.search(text)
    return found[0].strip() if found else (text or type(exc).__name__)


# ---------------------------------------------------------------- configuration
def connect(kubeconfig: str | None = None, context: str | None = None, *,
            environ: Mapping[str, str] | None = None,
            service_account_dir: str = SERVICE_ACCOUNT_DIR) -> Kube:
    """Connect as kubectl would; :class:`KubeConfigError` says what is missing."""
    env = os.environ if environ is None else environ
    files = _kubeconfig_files(kubeconfig, env)
    if files:
        return _from_kubeconfig(os.pathsep.join(files), context)
    if env.get("KUBERNETES_SERVICE_HOST") and os.path.isfile(
            os.path.join(service_account_dir, "token")):
        if context:
            raise KubeConfigError(f"context {context!r} given, but there is no kubeconfig",
                                  why="inside a pod csi uses the pod's service account",
                                  hint="drop --context, or give --kubeconfig")
        return _in_cluster(service_account_dir, env)
    raise KubeConfigError("no Kubernetes configuration found",
                          why="no --kubeconfig, $KUBECONFIG or ~/.kube/config, and not "
                          "running in a pod", hint="give --kubeconfig FILE or set KUBECONFIG")


def _kubeconfig_files(explicit: str | None, env: Mapping[str, str]) -> list[str]:
    if explicit:
        path = os.path.expanduser(explicit)
        if not os.path.isfile(path):
            raise KubeConfigError(f"kubeconfig {explicit} not found",
                                  hint="check the --kubeconfig path")
        return [path]
    listed = env.get("KUBECONFIG", "")
    if listed:
        files = [os.path.expanduser(p) for p in listed.split(os.pathsep) if p]
        found = [p for p in files if os.path.isfile(p)]
        if not found:
            raise KubeConfigError("no file of $KUBECONFIG exists", why=listed,
                                  hint="fix KUBECONFIG or give --kubeconfig")
        return found
    home = os.path.expanduser("~/.kube/config")
    return [home] if os.path.isfile(home) else []


def _from_kubeconfig(files: str, context: str | None) -> Kube:
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        contexts, current = config.list_kube_config_contexts(config_file=files)
        names = [c["name"] for c in contexts or []]
        chosen = current if context is None else next(
            (c for c in contexts or [] if c["name"] == context), None)
        if chosen is None:
            if context is None:
                raise KubeConfigError(f"kubeconfig {files} has no current context",
                                      hint="give --context NAME or run kubectl config "
                                      "use-context NAME")
            raise KubeConfigError(f"context {context!r} is not in kubeconfig {files}",
                                  why=f"its contexts are: {', '.join(names) or '(none)'}",
                                  hint="give one of them with --context")
        configuration = client.Configuration()
        config.load_kube_config(config_file=files, context=chosen["name"],
                                client_configuration=configuration, persist_config=False)
    except (ConfigException, KeyError, TypeError, ValueError, OSError) as exc:
        raise KubeConfigError(f"cannot use kubeconfig {files}", why=str(exc),
                              hint="check it with kubectl config view") from None
    namespace = (chosen.get("context") or {}).get("namespace") or "default"
    return _make(configuration, context=chosen["name"], namespace=namespace)


def _in_cluster(sa_dir: str, env: Mapping[str, str]) -> Kube:
    from kubernetes import client
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.incluster_config import InClusterConfigLoader

    configuration = client.Configuration()
    try:
        InClusterConfigLoader(os.path.join(sa_dir, "token"), os.path.join(sa_dir, "ca.crt"),
                              environ=env).load_and_set(configuration)
    except (ConfigException, OSError) as exc:
        raise KubeConfigError("cannot use the pod's service account", why=str(exc)) from None
    try:
        with open(os.path.join(sa_dir, "namespace"), encoding="utf-8") as f:
            namespace = f.read().strip() or "default"
    except OSError:
        namespace = "default"
    return _make(configuration, context="in-cluster", namespace=namespace)


def _make(configuration: Any, *, context: str, namespace: str) -> Kube:
    from kubernetes import client

    configuration.retries = False  # csi's own retry loop decides; urllib3 must not retry
    return Kube(client.ApiClient(configuration), context=context, namespace=namespace)
