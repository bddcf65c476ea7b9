"""A DOUBLE of the Kubernetes API server (no API server can run on this machine).

It stands in for kube-apiserver for csi's tests and speaks the same HTTP and
JSON for what csi uses: bearer-token authentication (401 ``Status``
otherwise), RBAC decided by the :class:`~tests.doubles.cluster.Cluster`
table (403 ``Status`` with the API server's exact message), ``GET`` of pods
and nodes (the objects, or a 404 ``Status``), and the node proxy
``/api/v1/nodes/{node}/proxy/{path}`` forwarded to the node's kubelet double
with the API server's own kubelet-client certificate
(``kube-apiserver-kubelet-client``): the kubelet's status and body pass
through, an unreachable kubelet is a 503 ``Status``.
"""

from __future__ import annotations

import json
import ssl
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from tests.doubles.cluster import Cluster

STATUS_JSON = "application/json"


def status(code: int, reason: str, message: str, details: dict[str, str] | None = None
           ) -> web.Response:
    """A ``metav1.Status`` failure, serialized as the API server does."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure", "message": message, "reason": reason}
    if details is not None:
        body["details"] = details
    body["code"] = code
    return web.Response(status=code, text=json.dumps(body, separators=(",", ":")) + "\n",
                        content_type=STATUS_JSON)


def forbidden(user: str, verb: str, resource: str, name: str, namespace: str = ""
              ) -> web.Response:
    kind = resource.split("/")[0]
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    return status(403, "Forbidden", f'{kind} "{name}" is forbidden: User "{user}" cannot '
                  f'{verb} resource "{resource}" in API group "" {scope}',
                  {"name": name, "kind": kind})


def not_found(kind: str, name: str) -> web.Response:
    return status(404, "NotFound", f'{kind} "{name}" not found', {"name": name, "kind": kind})


class KubeApiDouble:
    """The aiohttp app of the API server double. ``kubelet_ssl`` is the client TLS context
    (CA + the kube-apiserver-kubelet-client certificate) for the node proxy."""

    def __init__(self, cluster: Cluster, kubelet_ssl: ssl.SSLContext | None) -> None:
        self.cluster = cluster
        self.kubelet_ssl = kubelet_ssl
        self.requests: list[tuple[str, str, str]] = []  # (method, raw path, user)
        self.app = web.Application(middlewares=[self._authenticate])
        self.app.router.add_get("/api/v1/namespaces/{ns}/pods/{pod}", self.get_pod)
        self.app.router.add_get("/api/v1/nodes/{node}", self.get_node)
        self.app.router.add_route("*", "/api/v1/nodes/{node}/proxy/{path:.*}", self.proxy)
        # Argo's WorkflowTemplate custom resource (what `csi workflow install` writes)
        self.templates: dict[tuple[str, str], dict[str, Any]] = {}
        base = "/apis/argoproj.io/v1alpha1/namespaces/{ns}/workflowtemplates"
        self.app.router.add_post(base, self.create_template)
        self.app.router.add_get(base + "/{name}", self.get_template)
        self.app.router.add_put(base + "/{name}", self.replace_template)
        self.app.router.add_route("*", "/{tail:.*}", self.unknown)

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        user = self.cluster.user_of(request.headers.get("Authorization"))
        self.requests.append((request.method, request.raw_path, user or ""))
        if user is None:
            return status(401, "Unauthorized", "Unauthorized")
        response: web.StreamResponse = await handler(request)
        return response

    def _user(self, request: web.Request) -> str:
        return self.cluster.user_of(request.headers.get("Authorization")) or ""

    async def unknown(self, request: web.Request) -> web.Response:
        return status(404, "NotFound", "the server could not find the requested resource",
                      {})

    async def get_pod(self, request: web.Request) -> web.Response:
        ns, name, user = request.match_info["ns"], request.match_info["pod"], self._user(request)
        if not self.cluster.allowed(user, "get", "pods"):
            return forbidden(user, "get", "pods", name, ns)
        pod = self.cluster.pods.get((ns, name))
        if pod is None:
            return not_found("pods", name)
        return web.json_response(pod.to_object())

    async def get_node(self, request: web.Request) -> web.Response:
        name, user = request.match_info["node"], self._user(request)
        if not self.cluster.allowed(user, "get", "nodes"):
            return forbidden(user, "get", "nodes", name)
        node = self.cluster.nodes.get(name)
        return web.json_response(node.to_object()) if node else not_found("nodes", name)

    def _template_denied(self, request: web.Request, verb: str) -> web.Response | None:
        user = self._user(request)
        if self.cluster.allowed(user, verb, "workflowtemplates"):
            return None
        name = request.match_info.get("name", "")
        return status(403, "Forbidden", f'workflowtemplates.argoproj.io "{name}" is forbidden: '
                      f'User "{user}" cannot {verb} resource "workflowtemplates" in API group '
                      f'"argoproj.io" in the namespace "{request.match_info["ns"]}"',
                      {"name": name, "group": "argoproj.io", "kind": "workflowtemplates"})

    async def create_template(self, request: web.Request) -> web.Response:
        if (denied := self._template_denied(request, "create")) is not None:
            return denied
        body = await request.json()
        ns, name = request.match_info["ns"], str(body["metadata"]["name"])
        if (ns, name) in self.templates:
            return status(409, "AlreadyExists", f'workflowtemplates.argoproj.io "{name}" '
                          "already exists", {"name": name, "group": "argoproj.io",
                                             "kind": "workflowtemplates"})
        body["metadata"].update(namespace=ns, resourceVersion="1")
        self.templates[ns, name] = body
        return web.json_response(body, status=201)

    async def get_template(self, request: web.Request) -> web.Response:
        if (denied := self._template_denied(request, "get")) is not None:
            return denied
        found = self.templates.get((request.match_info["ns"], request.match_info["name"]))
        if found is None:
            return not_found("workflowtemplates.argoproj.io", request.match_info["name"])
        return web.json_response(found)

    async def replace_template(self, request: web.Request) -> web.Response:
        if (denied := self._template_denied(request, "update")) is not None:
            return denied
        key = (request.match_info["ns"], request.match_info["name"])
        body, current = await request.json(), self.templates.get(key)
        if current is None:
            return not_found("workflowtemplates.argoproj.io", key[1])
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            return status(409, "Conflict", "the object has been modified; please apply your "
                          "changes to the latest version and try again")
        body["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
        self.templates[key] = body
        return web.json_response(body)

    async def proxy(self, request: web.Request) -> web.StreamResponse:
        name, user = request.match_info["node"], self._user(request)
        verb = {"GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete"}.get(request.method, "create")
        if not self.cluster.allowed(user, verb, "nodes/proxy"):
            return forbidden(user, verb, "nodes/proxy", name)
        node = self.cluster.nodes.get(name)
        if node is None:
            return not_found("nodes", name)
        raw = request.raw_path.split("/proxy", 1)[1] or "/"
        target = URL(f"{node.kubelet_url or 'https://127.0.0.1:10250'}{raw}", encoded=True)
        try:
            async with aiohttp.ClientSession() as session, session.request(
                    request.method, target, data=await request.read(), ssl=self.kubelet_ssl or True,
                    timeout=aiohttp.ClientTimeout(total=600),
                    headers={"Accept": request.headers.get("Accept", "*/*")}) as answer:
                body = await answer.read()
                ctype = answer.headers.get("Content-Type", "")
                return web.Response(status=answer.status, body=body,
                                    headers={"Content-Type": ctype} if ctype else None)
        except aiohttp.ClientConnectionError as exc:
            why = "connect: connection refused" if isinstance(
                exc, aiohttp.ClientConnectorError) else str(exc) or type(exc).__name__
            return status(503, "ServiceUnavailable", f"error trying to reach service: dial tcp "
                          f"{target.host}:{target.port}: {why}")
