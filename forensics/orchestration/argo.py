"""Run a capture as an Argo Workflow: submit ``csi-capture`` through the Argo Server, follow it.

The Argo Server's REST API is spoken through hera's ``WorkflowsService``
(imported lazily). A submission is idempotent per Falco alert: the Workflow
carries the labels ``csi.dev/alert-fingerprint`` (a label-safe digest of the
alert's fingerprint) and ``csi.dev/request-id``, and :func:`submit_capture`
first looks for a Workflow with that fingerprint label, so a receiver that
restarts and replays its journal does not checkpoint the same container twice.

Argo's errors become :class:`~forensics.capture.errors.CaptureError` s that say
what to do: a missing or wrong token, a missing RBAC right (and which),
a missing template (``csi workflow install``), an unreachable server
(temporary: a retry may help).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forensics.alert import encode_alert
from forensics.capture.errors import CaptureError
from forensics.orchestration.request import CaptureRequest

if TYPE_CHECKING:
    from hera.workflows.service import WorkflowsService

TEMPLATE = "csi-capture"  # workflows.capture.NAME (the core does not import workflows/)
FINGERPRINT_LABEL = "csi.dev/alert-fingerprint"
REQUEST_LABEL = "csi.dev/request-id"
FINAL = ("Succeeded", "Failed", "Error")
POLL_INTERVAL = 2.0  # seconds between two GETs of a followed Workflow
OnStep = Callable[[str, str, str], None]  # step, phase, message


@dataclass(frozen=True)
class ArgoSettings:
    """Where the Argo Server is and how to talk to it."""

    server: str  # https://argo-server.argo:2746
    namespace: str = "csi"
    token: str = ""  # bearer token ("" for an Argo Server in --auth-mode=server)
    verify: bool | str = True  # False: skip TLS verification; a path: that CA bundle


@dataclass(frozen=True)
class Outcome:
    """How a followed Workflow ended, with what its steps reported."""

    name: str
    namespace: str
    phase: str
    message: str = ""
    image_ref: str = ""
    report_id: str = ""
    verdict: str = ""
    failed_step: str = ""

    def to_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items()}


class ArgoServerError(CaptureError):
    """The Argo Server refused or failed a request."""


class ArgoUnreachable(ArgoServerError):
    permanent = False


class WorkflowFailed(ArgoServerError):
    """The capture Workflow ended Failed or Error."""


def read_token(token_file: str | None) -> str:
    """The token from ``token_file``, else ``$ARGO_TOKEN``, else ``""``."""
    if token_file:
        try:
            return Path(token_file).read_text().strip()
        except OSError as exc:
            raise ArgoServerError(f"cannot read the Argo token file {token_file}",
                                  why=exc.strerror or str(exc)) from None
    return os.environ.get("ARGO_TOKEN", "").strip()


def server_url(server: str) -> str:
    """``host:port`` (as ``$ARGO_SERVER`` holds it) or a URL, as a URL ending in ``/``."""
    url = server if re.match(r"^https?://", server) else f"https://{server}"
    return url.rstrip("/") + "/"


def fingerprint_label(fingerprint: str) -> str:
    """A label value (≤ 63 characters, alphanumeric) standing for an alert fingerprint."""
    return hashlib.sha256(fingerprint.encode()).hexdigest()[:40]


def parameters(request: CaptureRequest) -> list[str]:
    """The template's parameters, ``NAME=VALUE``."""
    target, trigger = request.target, request.trigger
    alert = encode_alert(trigger.alert) if trigger.alert is not None else ""
    values = {"namespace": target.namespace, "pod": target.pod, "container": target.container,
              "node": target.node, "reason": trigger.reason, "alert": alert}
    return [f"{k}={v}" for k, v in values.items()]


def labels(request: CaptureRequest) -> dict[str, str]:
    found = {REQUEST_LABEL: request.id}
    if request.trigger.alert_fingerprint:
        found[FINGERPRINT_LABEL] = fingerprint_label(request.trigger.alert_fingerprint)
    return found


def submit_capture(request: CaptureRequest, settings: ArgoSettings) -> str:
    """Submit csi-capture for ``request`` (or find the Workflow already submitted for its
    alert); return the Workflow's name."""
    from hera.workflows.models import SubmitOpts, WorkflowSubmitRequest

    if request.target.backend != "kubernetes":
        raise ArgoServerError("an Argo Workflow captures Kubernetes containers only",
                              hint="capture a Podman container with the local executor")
    wanted = labels(request)
    with service(settings) as api:
        if FINGERPRINT_LABEL in wanted:
            selector = f"{FINGERPRINT_LABEL}={wanted[FINGERPRINT_LABEL]}"
            with argo_errors(settings, "list", "workflows"):
                found = api.list_workflows(namespace=settings.namespace,
                                           label_selector=selector)
            items = [_plain(w)["metadata"] for w in found.items or []]
            if items:  # the oldest, should there be several
                return str(min(items, key=lambda m: (m.get("creationTimestamp", ""),
                                                     m["name"]))["name"])
        body = WorkflowSubmitRequest(
            namespace=settings.namespace, resource_kind="WorkflowTemplate",
            resource_name=TEMPLATE, submit_options=SubmitOpts(
                generate_name=f"{TEMPLATE}-", parameters=parameters(request),
                labels=",".join(f"{k}={v}" for k, v in wanted.items())))
        with argo_errors(settings, "create", "workflows"):
            workflow = api.submit_workflow(body, namespace=settings.namespace)
    return str(workflow.metadata.name)


def follow(name: str, settings: ArgoSettings, on_step: OnStep | None = None, *,
           interval: float | None = None, timeout: float | None = None,
           sleep: Callable[[float], None] | None = None) -> Outcome:
    """Poll the Workflow until its phase is final; report each step's phase changes."""
    seen: dict[str, str] = {}
    deadline = None if timeout is None else time.monotonic() + timeout
    with service(settings) as api:
        while True:
            with argo_errors(settings, "get", "workflows"):
                workflow = api.get_workflow(name, namespace=settings.namespace)
            data = _plain(workflow)
            status = data.get("status") or {}
            for node in (status.get("nodes") or {}).values():
                if node.get("type") != "Pod":
                    continue
                step, phase = str(node.get("displayName", node["name"])), node.get("phase", "")
                if phase and seen.get(node["id"]) != phase:
                    seen[node["id"]] = phase
                    if on_step is not None:
                        on_step(step, phase, str(node.get("message", "")))
            if status.get("phase") in FINAL:
                return outcome(name, settings.namespace, status)
            if deadline is not None and time.monotonic() > deadline:
                raise ArgoServerError(f"workflow {settings.namespace}/{name} did not finish "
                                      f"in {timeout:g} s", why=f"its phase is "
                                      f"{status.get('phase') or 'Pending'}",
                                      hint=f"argo get -n {settings.namespace} {name}",
                                      permanent=False)
            (sleep or time.sleep)(POLL_INTERVAL if interval is None else interval)


def outcome(name: str, namespace: str, status: dict[str, Any]) -> Outcome:
    """What a finished Workflow's status says: phase, outputs, the failed step."""
    steps: dict[str, dict[str, str]] = {}
    failed = ""
    for node in (status.get("nodes") or {}).values():
        if node.get("type") != "Pod":
            continue
        params = (node.get("outputs") or {}).get("parameters") or []
        steps[str(node.get("displayName"))] = {p["name"]: str(p.get("value", "")) for p in params}
        if node.get("phase") in ("Failed", "Error") and not failed:
            failed = f"{node.get('displayName')}: {node.get('message') or node.get('phase')}"
    globals_ = {p["name"]: str(p.get("value", ""))
                for p in (status.get("outputs") or {}).get("parameters") or []}
    analyze = steps.get("analyze", {})
    return Outcome(name=name, namespace=namespace, phase=str(status.get("phase")),
                   message=str(status.get("message", "")),
                   image_ref=globals_.get("csi-image-ref")
                   or steps.get("collect-push", {}).get("image-ref", ""),
                   report_id=analyze.get("report-id", ""), verdict=analyze.get("verdict", ""),
                   failed_step=failed)


def check(result: Outcome) -> Outcome:
    """``result`` if the Workflow succeeded, else :class:`WorkflowFailed`."""
    if result.phase == "Succeeded":
        return result
    where = f"{result.namespace}/{result.name}"
    raise WorkflowFailed(f"workflow {where} {result.phase}",
                         why=result.failed_step or result.message or "no step reported why",
                         hint=f"argo logs -n {result.namespace} {result.name}")


@contextmanager
def service(settings: ArgoSettings) -> Iterator[WorkflowsService]:
    """hera's client for the Argo Server, closed afterwards."""
    from hera.workflows.service import WorkflowsService

    api = WorkflowsService(host=server_url(settings.server), token=settings.token or None,
                           namespace=settings.namespace,
                           verify_ssl=settings.verify)  # type: ignore[arg-type]  # a CA path too
    try:
        yield api
    finally:
        api.session.close()


@contextmanager
def argo_errors(settings: ArgoSettings, verb: str, resource: str) -> Iterator[None]:
    """Turn hera's and requests' exceptions into csi's, with what to do."""
    import requests
    from hera.exceptions import HeraException

    try:
        yield
    except requests.exceptions.SSLError as exc:
        raise ArgoServerError(f"TLS with the Argo Server at {settings.server} failed",
                              why=_short(exc), hint="give its CA with --argo-ca-file, or "
                              "--argo-insecure-skip-verify") from None
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise ArgoUnreachable(f"cannot reach the Argo Server at {settings.server}",
                              why=_short(exc), hint="check --argo-server (or $ARGO_SERVER) "
                              "and the network; a retry may help") from None
    except HeraException as exc:
        raise _from_answer(exc, settings, verb, resource) from None


def _from_answer(exc: Any, settings: ArgoSettings, verb: str, resource: str) -> CaptureError:
    status = int(getattr(exc, "status_code", 0) or 0)
    found = re.search(r"message: `(.*)`$", str(exc), re.S)
    message = " ".join((found.group(1) if found else str(exc)).split())[:400]
    ns = settings.namespace
    if status == 401:
        return ArgoServerError(f"the Argo Server at {settings.server} rejected the token",
                               why=message, status=401, hint="give a valid token with "
                               "--argo-token-file or $ARGO_TOKEN (argo auth token)")
    if status == 403:
        return ArgoServerError(f"the Argo Server denied {verb} on {resource} in namespace {ns}",
                               why=message, status=403,
                               hint=f"grant the token's service account the verb {verb} on "
                               f"{resource}.argoproj.io in namespace {ns} (a Role bound in {ns})")
    if status == 404 and resource == "workflows" and verb == "create":
        return ArgoServerError(f"the WorkflowTemplate {TEMPLATE} is not in namespace {ns}",
                               why=message, status=404, hint=f"run: csi workflow install "
                               f"--namespace {ns} --argo-server {settings.server}")
    temporary = status >= 500 or status == 429
    return ArgoServerError(f"the Argo Server answered HTTP {status} to {verb} {resource}",
                           why=message, status=status, permanent=not temporary,
                           hint="a retry may help" if temporary else "")


def _plain(model: Any) -> dict[str, Any]:
    """A hera model as the JSON the server sent (camelCase keys, no nulls)."""
    data: dict[str, Any] = model.model_dump(by_alias=True, exclude_none=True, mode="json")
    return data


def _short(exc: Exception) -> str:
    text = str(exc)
    found = re.search(r"\] ([^'\]]+)|(\[Errno [^\]]+\][^')]*)", text)
    return (found.group(1) or found.group(2)) if found else text[:200]
