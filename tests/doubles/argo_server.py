"""A DOUBLE of the Argo Server (no Argo Server can run on this machine).

It stands in for ``argo server`` for csi's tests and speaks the same HTTP and
JSON for what csi uses, checked against Argo's own OpenAPI (swagger 2.0)
spec (``tests/data/schemas/argo-workflows-v4.1-swagger.json``):

* every request: the path and method must be an operation of the spec (404 /
  405 otherwise), path parameters non-empty, query parameters declared by the
  operation, the ``Authorization: Bearer <token>`` header known (401
  ``{"code":16}`` otherwise), the token's account granted the operation's
  verb on its resource (403 ``{"code":7}`` with the Kubernetes RBAC message;
  the table is :attr:`ArgoServerDouble.accounts`), and the JSON body valid
  against the operation's body schema, ``$ref`` s resolved into the spec's
  definitions (400 ``{"code":3}`` naming the first violation);
* every 200 answer is itself validated against the operation's response
  schema (a mismatch is a bug of the double: 500 ``{"code":13}``);
* errors are grpc-gateway JSON, ``{"code": N, "message": "..."}``.

Implemented: submitting a Workflow from a WorkflowTemplate, getting and
listing (``listOptions.labelSelector``) Workflows, and creating, getting and
updating WorkflowTemplates (409 ``{"code":6}`` on an existing name, a
``resourceVersion`` check on update). Other operations of the spec answer 501
``{"code":12}``.

Submitted Workflows do not run: each GET plays the next frame of a
:class:`~tests.doubles.argo_play.Script` (``Pending`` → ``Running`` → per step
``Pending``/``Running``/``Succeeded`` or ``Failed`` → the exit handler →
``Succeeded``/``Failed``), with ``status.nodes`` per step and output
parameters as Argo reports them.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from aiohttp import web

from tests.doubles.argo_play import Script, play, succeeding_script

SPEC_PATH = Path(__file__).resolve().parents[1] / "data" / "schemas" / \
    "argo-workflows-v4.1-swagger.json"
DEFINITIONS = "#/definitions/"
# Rights: (verb, resource), as RBAC on argoproj.io resources decides them in Argo's client mode.
ALL_RIGHTS = frozenset({(verb, resource) for verb in ("get", "list", "create", "update", "delete")
                        for resource in ("workflows", "workflowtemplates")})
OPERATIONS: dict[str, tuple[str, str]] = {  # operationId -> (verb, resource)
    "WorkflowService_SubmitWorkflow": ("create", "workflows"),
    "WorkflowService_GetWorkflow": ("get", "workflows"),
    "WorkflowService_ListWorkflows": ("list", "workflows"),
    "WorkflowTemplateService_CreateWorkflowTemplate": ("create", "workflowtemplates"),
    "WorkflowTemplateService_GetWorkflowTemplate": ("get", "workflowtemplates"),
    "WorkflowTemplateService_UpdateWorkflowTemplate": ("update", "workflowtemplates"),
}
TEMPLATE_LABEL = "workflows.argoproj.io/workflow-template"



@dataclass(frozen=True)
class Account:
    """Whom a token stands for and what it may do."""

    user: str
    rights: frozenset[tuple[str, str]] = ALL_RIGHTS


class ArgoError(Exception):
    """An Argo gRPC-gateway error answer."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> web.Response:
        return web.json_response({"code": self.code, "message": self.message},
                                 status=self.status)


@cache
def load_spec(path: Path = SPEC_PATH) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(path.read_text())
    return spec


@dataclass(frozen=True)
class Route:
    template: str
    pattern: re.Pattern[str]
    literal_segments: int


def _routes(spec: dict[str, Any]) -> list[Route]:
    routes = []
    for template in spec["paths"]:
        pattern = re.sub(r"\\\{[^}]+\\\}", "([^/]*)", re.escape(template))
        literal = sum(1 for s in template.split("/") if s and not s.startswith("{"))
        routes.append(Route(template, re.compile(f"^{pattern}$"), literal))
    # More literal segments first: /workflows/{namespace}/submit before /{namespace}/{name}.
    return sorted(routes, key=lambda r: -r.literal_segments)


class ArgoServerDouble:
    """The aiohttp app of the Argo Server double.

    ``accounts``: bearer token -> :class:`Account` (change it freely in a test);
    ``script``: the :class:`Script` a Workflow submitted from now on plays.
    """

    def __init__(self, accounts: dict[str, Account] | None = None,
                 script: Script | None = None, spec: dict[str, Any] | None = None) -> None:
        self.spec = spec or load_spec()
        self.accounts = dict(accounts or {})
        self.script = script or succeeding_script()
        self.routes = _routes(self.spec)
        self.templates: dict[tuple[str, str], dict[str, Any]] = {}
        self.workflows: dict[tuple[str, str], dict[str, Any]] = {}
        self.frames: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, str, int]] = []  # (method, path_qs, status)
        self.bodies: list[tuple[str, Any]] = []  # (operationId, JSON body) as received
        self._versions = itertools.count(1000)
        self._names = itertools.count(1)
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._serve)

    # -- the request pipeline ------------------------------------------------------------

    async def _serve(self, request: web.Request) -> web.Response:
        try:
            response = await self._handle(request)
        except ArgoError as exc:
            response = exc.response()
        self.requests.append((request.method, request.path_qs, response.status))
        return response

    async def _handle(self, request: web.Request) -> web.Response:
        template, params = self._match(request.path)
        operation = self.spec["paths"][template].get(request.method.lower())
        if operation is None:
            raise ArgoError(405, 12, "Method Not Allowed")
        op_id = str(operation["operationId"])
        account = self._authenticate(request)
        namespace = params.get("namespace", "")
        self._authorize(account, op_id, namespace)
        body = await self._check_parameters(request, operation, params)
        self.bodies.append((op_id, body))
        handler = getattr(self, "op_" + op_id.split("_", 1)[1], None)
        if op_id not in OPERATIONS or handler is None:
            raise ArgoError(501, 12, f"{op_id} is not implemented by the Argo Server double")
        result: dict[str, Any] = handler(params, request.query, body)
        self._check_response(operation, result)
        return web.json_response(result)

    def _match(self, path: str) -> tuple[str, dict[str, str]]:
        for route in self.routes:
            found = route.pattern.match(path)
            if found:
                names = re.findall(r"\{([^}]+)\}", route.template)
                return route.template, dict(zip(names, found.groups(), strict=True))
        raise ArgoError(404, 5, "Not Found")

    def _authenticate(self, request: web.Request) -> Account:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        account = self.accounts.get(token.strip()) if scheme == "Bearer" else None
        if account is None:
            raise ArgoError(401, 16, "token not valid. see "
                            "https://argo-workflows.readthedocs.io/en/latest/faq/")
        return account

    def _authorize(self, account: Account, op_id: str, namespace: str) -> None:
        verb, resource = OPERATIONS.get(op_id, ("get", "workflows"))
        if (verb, resource) not in account.rights:
            raise ArgoError(403, 7, f'{resource}.argoproj.io is forbidden: User "{account.user}" '
                            f'cannot {verb} resource "{resource}" in API group "argoproj.io" '
                            f'in the namespace "{namespace}"')

    async def _check_parameters(self, request: web.Request, operation: dict[str, Any],
                                params: dict[str, str]) -> Any:
        declared = {p["name"]: p for p in operation.get("parameters", [])}
        for name, value in params.items():
            if not value:
                raise ArgoError(400, 3, f"path parameter {name} is empty")
        for name in request.query:
            if declared.get(name, {}).get("in") != "query":
                raise ArgoError(400, 3, f'unknown query parameter "{name}"')
        body_param = next((p for p in declared.values() if p["in"] == "body"), None)
        if body_param is None:
            return None
        if request.content_type != "application/json":
            raise ArgoError(400, 3, f"unsupported Content-Type {request.content_type!r}")
        try:
            body = json.loads(await request.text())
        except ValueError as exc:
            raise ArgoError(400, 3, f"invalid JSON body: {exc}") from None
        errors = schema_errors(self.spec, body_param["schema"], body)
        if errors:
            raise ArgoError(400, 3, f"request body does not match {_ref_name(body_param)}: "
                            f"{errors[0]}")
        return body

    def _check_response(self, operation: dict[str, Any], result: dict[str, Any]) -> None:
        schema = operation["responses"]["200"]["schema"]
        errors = schema_errors(self.spec, schema, result)
        if errors:
            raise ArgoError(500, 13, f"double bug: response does not match the spec: {errors[0]}")

    # -- WorkflowTemplates ---------------------------------------------------------------

    def op_CreateWorkflowTemplate(self, params: dict[str, str], query: Any,
                                  body: dict[str, Any]) -> dict[str, Any]:
        namespace = params["namespace"]
        template = copy.deepcopy(body.get("template") or {})
        name = str(template.get("metadata", {}).get("name", ""))
        if not name:
            raise ArgoError(400, 3, "WorkflowTemplate.metadata.name is required")
        if (namespace, name) in self.templates:
            raise ArgoError(409, 6, f'workflowtemplates.argoproj.io "{name}" already exists')
        template.setdefault("apiVersion", "argoproj.io/v1alpha1")
        template.setdefault("kind", "WorkflowTemplate")
        template["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()),
                                    resourceVersion=str(next(self._versions)),
                                    creationTimestamp="2026-01-01T00:00:00Z", generation=1)
        self.templates[namespace, name] = template
        return copy.deepcopy(template)

    def op_GetWorkflowTemplate(self, params: dict[str, str], query: Any,
                               body: None) -> dict[str, Any]:
        return copy.deepcopy(self._template(params["namespace"], params["name"]))

    def op_UpdateWorkflowTemplate(self, params: dict[str, str], query: Any,
                                  body: dict[str, Any]) -> dict[str, Any]:
        namespace, name = params["namespace"], params["name"]
        current = self._template(namespace, name)
        template = copy.deepcopy(body.get("template") or {})
        metadata = template.setdefault("metadata", {})
        version = metadata.get("resourceVersion")
        if not version:
            raise ArgoError(400, 3, f'workflowtemplates.argoproj.io "{name}" is invalid: '
                            "metadata.resourceVersion: Invalid value: 0x0: must be specified "
                            "for an update")
        if version != current["metadata"]["resourceVersion"]:
            raise ArgoError(409, 10, 'Operation cannot be fulfilled on workflowtemplates.'
                            f'argoproj.io "{name}": the object has been modified; please apply '
                            "your changes to the latest version and try again")
        template.setdefault("apiVersion", "argoproj.io/v1alpha1")
        template.setdefault("kind", "WorkflowTemplate")
        metadata.update(namespace=namespace, name=name, uid=current["metadata"]["uid"],
                        creationTimestamp=current["metadata"]["creationTimestamp"],
                        resourceVersion=str(next(self._versions)),
                        generation=int(current["metadata"].get("generation", 1)) + 1)
        self.templates[namespace, name] = template
        return copy.deepcopy(template)

    def _template(self, namespace: str, name: str) -> dict[str, Any]:
        template = self.templates.get((namespace, name))
        if template is None:
            raise ArgoError(404, 5, f'workflowtemplates.argoproj.io "{name}" not found')
        return template

    # -- Workflows -----------------------------------------------------------------------

    def op_SubmitWorkflow(self, params: dict[str, str], query: Any,
                          body: dict[str, Any]) -> dict[str, Any]:
        namespace = params["namespace"]
        kind, name = body.get("resourceKind", ""), str(body.get("resourceName", ""))
        if kind not in ("WorkflowTemplate", "workflowtemplate"):
            raise ArgoError(400, 3, f"resourceKind {kind!r} is not supported by the double")
        template = self._template(namespace, name)
        options = body.get("submitOptions") or {}
        arguments = _arguments(template, options.get("parameters") or [])
        labels = _labels(options.get("labels", ""))
        labels[TEMPLATE_LABEL] = name
        generate = options.get("generateName") or f"{name}-"
        wf_name = options.get("name") or f"{generate}{next(self._names):05d}"
        if (namespace, wf_name) in self.workflows:
            raise ArgoError(409, 6, f'workflows.argoproj.io "{wf_name}" already exists')
        workflow = {
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": wf_name, "generateName": generate, "namespace": namespace,
                         "uid": str(uuid.uuid4()), "labels": labels,
                         "resourceVersion": str(next(self._versions)),
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"workflowTemplateRef": {"name": name},
                     "arguments": {"parameters": arguments}},
            "status": {},
        }
        self.workflows[namespace, wf_name] = workflow
        self.frames[namespace, wf_name] = play(wf_name, self.script)
        return copy.deepcopy(workflow)

    def op_GetWorkflow(self, params: dict[str, str], query: Any, body: None) -> dict[str, Any]:
        key = (params["namespace"], params["name"])
        workflow = self.workflows.get(key)
        if workflow is None:
            raise ArgoError(404, 5, f'workflows.argoproj.io "{params["name"]}" not found')
        frames = self.frames[key]
        workflow["status"] = frames.pop(0) if len(frames) > 1 else frames[0]
        return copy.deepcopy(workflow)

    def op_ListWorkflows(self, params: dict[str, str], query: Any,
                         body: None) -> dict[str, Any]:
        selector = _selector(query.get("listOptions.labelSelector", ""))
        items = [copy.deepcopy(w) for (ns, _), w in self.workflows.items()
                 if ns == params["namespace"] and selector(w["metadata"].get("labels", {}))]
        return {"metadata": {"resourceVersion": str(next(self._versions))}, "items": items}


def schema_errors(spec: dict[str, Any], schema: dict[str, Any], value: Any) -> list[str]:
    """Messages of the jsonschema violations of ``value`` (``$ref`` s into the spec)."""
    validator = _validator(json.dumps(schema, sort_keys=True), id(spec), spec)
    found = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(body)'}: {e.message}"
            for e in found]


_VALIDATORS: dict[tuple[str, int], jsonschema.Draft4Validator] = {}


def _validator(schema_text: str, spec_id: int, spec: dict[str, Any]
               ) -> jsonschema.Draft4Validator:
    key = (schema_text, spec_id)
    if key not in _VALIDATORS:
        root = {**json.loads(schema_text), "definitions": spec["definitions"]}
        _VALIDATORS[key] = jsonschema.Draft4Validator(root)
    return _VALIDATORS[key]


def _ref_name(param: dict[str, Any]) -> str:
    return str(param["schema"].get("$ref", "the body schema")).removeprefix(DEFINITIONS)


def _arguments(template: dict[str, Any], given: list[str]) -> list[dict[str, str]]:
    """The template's parameters with the submitted values, as Argo validates them."""
    values: dict[str, str] = {}
    for item in given:
        name, sep, value = item.partition("=")
        if not sep:
            raise ArgoError(400, 3, f"expected parameter of the form: NAME=VALUE. Received: {item}")
        values[name] = value
    declared = template.get("spec", {}).get("arguments", {}).get("parameters", [])
    names = {p["name"] for p in declared}
    for name in values:
        if name not in names:
            raise ArgoError(400, 3, f"spec.arguments.{name} was not supplied by the "
                            "workflow template")
    result = []
    for p in declared:
        value = values.get(p["name"], p.get("value"))
        if value is None:
            raise ArgoError(400, 3, f"spec.arguments.{p['name']}.value is required")
        result.append({"name": p["name"], "value": str(value)})
    return result


def _labels(text: str) -> dict[str, str]:
    labels = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?",
                                       value):
            raise ArgoError(400, 3, f"metadata.labels: Invalid value: {item!r}")
        labels[key] = value
    return labels


def _selector(text: str) -> Any:
    """Equality-based label selector: ``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``."""
    tests = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        if "!=" in item:
            k, v = item.split("!=", 1)
            tests.append(lambda labels, k=k, v=v: labels.get(k) != v)
        elif "=" in item:
            k, v = item.replace("==", "=").split("=", 1)
            tests.append(lambda labels, k=k, v=v: labels.get(k) == v)
        elif item.startswith("!"):
            tests.append(lambda labels, k=item[1:]: k not in labels)
        else:
            tests.append(lambda labels, k=item: k in labels)
    return lambda labels: all(t(labels) for t in tests)
