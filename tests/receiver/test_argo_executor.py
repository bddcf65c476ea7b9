"""csi serve --executor argo: each admitted alert becomes one csi-capture Workflow on the
Argo Server (here the Argo Server double, which checks every request against Argo's
OpenAPI spec), labelled with the alert's fingerprint and followed to the end."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import requests

from forensics.orchestration import argo
from forensics.orchestration.argo import ArgoSettings
from forensics.receiver.config import ServeConfig
from tests.doubles.argo_play import failing_script
from tests.doubles.argo_server import Account, ArgoServerDouble
from tests.doubles.server import BackgroundServer
from tests.receiver.conftest import SHOP, ServerThread, alert_bytes, auth_headers, wait_until
from workflows import capture
from workflows.install import install_via_argo

ARGO_TOKEN = "argo-receiver-token-0123"


@pytest.fixture
def argo_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ArgoServerDouble, str]]:
    monkeypatch.setattr(argo, "POLL_INTERVAL", 0.0)
    monkeypatch.setenv("ARGO_TOKEN", ARGO_TOKEN)
    double = ArgoServerDouble(accounts={
        ARGO_TOKEN: Account("system:serviceaccount:csi:csi-receiver")})
    with BackgroundServer(double.app) as running:
        settings = ArgoSettings(server=running.url, namespace="csi", token=ARGO_TOKEN)
        assert install_via_argo(capture.build().to_dict(), settings) == "created"
        yield double, running.url


def run_one(config: ServeConfig) -> dict[str, Any]:
    with ServerThread(config) as server:
        answer = requests.post(server.url + "/falco", data=alert_bytes(SHOP),
                               headers={**auth_headers(), "Content-Type": "application/json"},
                               timeout=10)
        assert answer.status_code == 202

        def finished() -> list[dict[str, Any]]:
            data = requests.get(server.url + "/api/v1/captures", headers=auth_headers(),
                                timeout=10).json()
            caps = data["captures"] if isinstance(data, dict) else data
            return [c for c in caps if c["state"] in ("done", "failed")]

        wait_until(lambda: bool(finished()), 30, "the workflow capture never ended")
        [done] = finished()
        return done


def test_an_alert_becomes_a_followed_workflow(argo_server: tuple[ArgoServerDouble, str],
                                              base_config: ServeConfig) -> None:
    double, url = argo_server
    done = run_one(replace(base_config, executor="argo", argo_server=url))
    assert done["state"] == "done"
    result = done.get("result") or done
    assert result["report_id"] == "r-0123456789abcdef"
    assert result["image_ref"].startswith("registry.example/csi/evidence@sha256:")
    [workflow] = double.workflows.values()  # exactly one Workflow for the alert
    labels = workflow["metadata"]["labels"]
    assert labels["csi.dev/alert-fingerprint"]
    [submitted] = [body for op, body in double.bodies if op == "WorkflowService_SubmitWorkflow"]
    params = dict(p.split("=", 1) for p in submitted["submitOptions"]["parameters"])
    assert (params["namespace"], params["pod"], params["container"]) == (
        "prod", "shop-frontend-7d9c6b5f4-x2x9q", "web")


def test_a_failed_workflow_is_a_failed_capture(argo_server: tuple[ArgoServerDouble, str],
                                               base_config: ServeConfig) -> None:
    double, url = argo_server
    double.script = failing_script("Error (exit code 3)")
    done = run_one(replace(base_config, executor="argo", argo_server=url))
    assert done["state"] == "failed"
    assert "collect-push: Error (exit code 3)" in done["error"]
