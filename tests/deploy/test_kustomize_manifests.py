"""`kubectl kustomize deploy/` renders, and every manifest validates offline against the
Kubernetes schemas (kubernetes-validate) or, for the WorkflowTemplate, Argo's schema."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.workflows.test_render import argo_validator

ROOT = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.30.0"  # the oldest Kubernetes csi supports (the Checkpoint API is on by default)


def rendered() -> list[dict[str, Any]]:
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed")
    done = subprocess.run(["kubectl", "kustomize", str(ROOT / "deploy")], capture_output=True,
                          text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def test_every_manifest_validates() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    documents = rendered()
    kinds = {d["kind"] for d in documents}
    assert {"Namespace", "ServiceAccount", "ClusterRole", "Deployment", "Service",
            "NetworkPolicy", "ConfigMap", "WorkflowTemplate"} <= kinds
    for document in documents:
        if document["apiVersion"].startswith("argoproj.io/"):
            errors = list(argo_validator(document["kind"]).iter_errors(document))
            assert not errors, [e.message for e in errors]
            continue
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)


def test_checkpoint_rbac_is_least_privilege() -> None:
    roles = {d["metadata"]["name"]: d for d in rendered() if d["kind"] == "ClusterRole"}
    rules = {(r["resources"][0], tuple(r["verbs"])) for r in roles["csi-checkpoint"]["rules"]}
    assert rules == {("pods", ("get",)), ("nodes", ("get",)), ("nodes/proxy", ("create",)),
                     ("nodes/checkpoint", ("create",))}
    assert roles["csi-apiserver-kubelet-checkpoint"]["rules"] == [
        {"apiGroups": [""], "resources": ["nodes/checkpoint"], "verbs": ["create"]}]


def test_the_deployed_template_is_the_golden_one() -> None:
    golden = yaml.safe_load((ROOT / "deploy" / "workflows" / "csi-capture.yaml").read_text())
    template = next(d for d in rendered() if d["kind"] == "WorkflowTemplate")
    assert template["spec"] == golden["spec"]
