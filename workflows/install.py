"""``csi workflow install``: create or update the csi-capture WorkflowTemplate in a cluster.

Through the Kubernetes API (the kubeconfig's identity, or the pod's service
account), as ``kubectl apply`` would for this one object: create it, and on
409 (it exists) replace it with the existing ``resourceVersion``.

Or through the Argo Server's workflow-templates API (:func:`install_via_argo`,
``csi workflow install --argo-server URL``), for those who hold an Argo token
rather than a kubeconfig: create, and on 409 update with the current
``resourceVersion``.
"""

from __future__ import annotations

from typing import Any

from forensics.capture.errors import CaptureError
from forensics.orchestration.argo import ArgoSettings

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "workflowtemplates"


def install(document: dict[str, Any], kubeconfig: str | None = None,
            context: str | None = None) -> str:
    """Create or replace the template; return ``created`` or ``updated``."""
    from kubernetes.client import CustomObjectsApi
    from kubernetes.client.exceptions import ApiException

    from forensics.capture.kube import connect

    namespace = str(document["metadata"]["namespace"])
    name = str(document["metadata"]["name"])
    with connect(kubeconfig, context) as kube:
        api = CustomObjectsApi(kube.api_client)
        try:
            api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, document)
            return "created"
        except ApiException as exc:
            if exc.status != 409:
                raise _error(exc, namespace) from None
        try:
            current = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            body = {**document, "metadata": {**document["metadata"], "resourceVersion":
                                             current["metadata"]["resourceVersion"]}}
            api.replace_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, body)
        except ApiException as exc:
            raise _error(exc, namespace) from None
    return "updated"


def _error(exc: Any, namespace: str) -> CaptureError:
    status = int(exc.status or 0)
    hint = {401: "log in again or refresh the kubeconfig's credentials",
            403: f"grant create/get/update on workflowtemplates.argoproj.io in {namespace}",
            404: "is Argo Workflows installed (its CRDs) and the namespace created?"}
    return CaptureError(f"installing the WorkflowTemplate in {namespace} failed: HTTP {status}",
                        why=str(exc.reason), hint=hint.get(status, ""),
                        permanent=not (status >= 500 or status == 429), status=status)


def install_via_argo(document: dict[str, Any], settings: ArgoSettings) -> str:
    """Create or update the template through the Argo Server; ``created`` or ``updated``."""
    from hera.exceptions import AlreadyExists
    from hera.workflows.models import (
        WorkflowTemplate,
        WorkflowTemplateCreateRequest,
        WorkflowTemplateUpdateRequest,
    )

    from forensics.orchestration.argo import argo_errors, service

    namespace = settings.namespace
    name = str(document["metadata"]["name"])
    body = {**document, "metadata": {**document["metadata"], "namespace": namespace}}
    with service(settings) as api:
        with argo_errors(settings, "create", "workflowtemplates"):
            try:
                api.create_workflow_template(WorkflowTemplateCreateRequest(
                    namespace=namespace, template=WorkflowTemplate(**body)),
                    namespace=namespace)
                return "created"
            except AlreadyExists:
                pass  # 409: it exists, update it
        with argo_errors(settings, "get", "workflowtemplates"):
            current = api.get_workflow_template(name, namespace=namespace)
        version = current.metadata.resource_version
        body["metadata"]["resourceVersion"] = version
        with argo_errors(settings, "update", "workflowtemplates"):
            api.update_workflow_template(name, WorkflowTemplateUpdateRequest(
                name=name, namespace=namespace, template=WorkflowTemplate(**body)),
                namespace=namespace)
    return "updated"
