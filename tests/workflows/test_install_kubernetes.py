"""csi workflow install through the Kubernetes API (the real kubernetes client against the
API server double): create, then on 409 replace with the current resourceVersion."""

from __future__ import annotations

from pathlib import Path

import pytest

from forensics.capture.errors import CaptureError
from forensics.cli.main import main
from tests.doubles.fixtures import running_stack
from workflows import capture
from workflows.install import install


def test_create_then_update_then_forbidden(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with running_stack(tmp_path, checkpointer=None) as stack:
        for verb in ("create", "get", "update"):
            stack.cluster.grant("alice", verb, "workflowtemplates")
        document = capture.build().to_dict()
        namespace = document["metadata"]["namespace"]
        assert install(document, str(stack.kubeconfig)) == "created"
        stored = stack.api.templates[namespace, "csi-capture"]
        assert stored["spec"] == document["spec"]
        assert stored["metadata"]["resourceVersion"] == "1"
        assert main(["workflow", "install", "--kubeconfig", str(stack.kubeconfig)]) == 0
        assert stack.api.templates[namespace, "csi-capture"]["metadata"][
            "resourceVersion"] == "2"  # replaced, with the version it read
        capsys.readouterr()
        stack.cluster.revoke("alice", "update", "workflowtemplates")
        with pytest.raises(CaptureError, match="HTTP 403") as caught:
            install(document, str(stack.kubeconfig))
        assert "grant create/get/update on workflowtemplates.argoproj.io" in str(caught.value)
