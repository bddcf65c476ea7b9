"""Submitting csi-capture through the Argo Server, over real HTTP, against the Argo Server
double (which validates every request against Argo's OpenAPI spec)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from forensics.alert import alert_from_json
from forensics.cli.main import main
from forensics.orchestration import argo
from forensics.orchestration.argo import ArgoServerError, ArgoSettings, ArgoUnreachable
from forensics.orchestration.request import CaptureRequest, Target, Trigger
from tests.doubles.argo_play import failing_script, succeeding_script
from tests.doubles.argo_server import (
    Account,
    ArgoServerDouble,
)
from tests.doubles.server import BackgroundServer
from workflows import capture
from workflows.install import install_via_argo

TOKEN, READER = "t0k3n-admin", "t0k3n-reader"
SUBMIT = "WorkflowService_SubmitWorkflow"
ALERT = {"rule": "Terminal shell in container", "priority": "Warning",
         "time": "2026-11-22T07:09:53.912345678Z", "output_fields": {"k8s.pod.name": "web-1"}}


@pytest.fixture
def double() -> ArgoServerDouble:
    return ArgoServerDouble(accounts={
        TOKEN: Account("system:serviceaccount:csi:csi-receiver"),
        READER: Account("system:serviceaccount:csi:viewer",
                        frozenset({("get", "workflows"), ("list", "workflows")})),
    })


@pytest.fixture
def server(double: ArgoServerDouble) -> Iterator[BackgroundServer]:
    with BackgroundServer(double.app) as running:
        yield running


@pytest.fixture
def settings(server: BackgroundServer) -> ArgoSettings:
    return ArgoSettings(server=server.url, namespace="csi", token=TOKEN)


@pytest.fixture
def installed(settings: ArgoSettings) -> ArgoSettings:
    assert install_via_argo(_document(), settings) == "created"
    return settings


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(argo, "POLL_INTERVAL", 0.0)


def _document() -> dict[str, Any]:
    return capture.build().to_dict()


def _request(uuid: str = "6f1c3a52-8f0e-4d5b-9a43-2d7c1e0b9f11") -> CaptureRequest:
    """A request for ALERT as falcosidekick forwards it (its fingerprint is ``uuid:UUID``)."""
    return CaptureRequest(
        target=Target("kubernetes", "web", "prod", "web-1", "node-1"),
        trigger=Trigger("alert", reason="Terminal shell in container",
                        alert=alert_from_json(ALERT | {"uuid": uuid})))


def _submissions(double: ArgoServerDouble) -> list[Any]:
    return [body for op, body in double.bodies if op == SUBMIT]


def test_the_template_name_is_the_one_rendered() -> None:
    assert argo.TEMPLATE == capture.NAME


def test_install_creates_then_409_then_updates(double: ArgoServerDouble,
                                               installed: ArgoSettings) -> None:
    first = double.templates["csi", "csi-capture"]["metadata"]["resourceVersion"]
    assert install_via_argo(_document(), installed) == "updated"
    calls = [(m, p.split("?")[0], s) for m, p, s in double.requests[-3:]]
    assert calls == [("POST", "/api/v1/workflow-templates/csi", 409),
                     ("GET", "/api/v1/workflow-templates/csi/csi-capture", 200),
                     ("PUT", "/api/v1/workflow-templates/csi/csi-capture", 200)]
    stored = double.templates["csi", "csi-capture"]
    assert stored["metadata"]["resourceVersion"] != first
    assert stored["metadata"]["generation"] == 2
    assert stored["spec"]["entrypoint"] == "main"


def test_recreating_the_template_is_409_with_argos_body(server: BackgroundServer,
                                                       installed: ArgoSettings) -> None:
    answer = requests.post(f"{server.url}/api/v1/workflow-templates/csi",
                           json={"namespace": "csi", "template": _document()},
                           headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert answer.status_code == 409
    assert answer.json() == {"code": 6, "message":
                             'workflowtemplates.argoproj.io "csi-capture" already exists'}


def test_the_double_rejects_a_body_the_spec_rejects(server: BackgroundServer,
                                                    double: ArgoServerDouble,
                                                    installed: ArgoSettings) -> None:
    wrong = {"resourceKind": "WorkflowTemplate", "resourceName": "csi-capture",
             "submitOptions": {"parameters": "pod=web-1", "labels": {"a": "b"}}}
    answer = requests.post(f"{server.url}/api/v1/workflows/csi/submit", json=wrong,
                           headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == 3
    assert "WorkflowSubmitRequest" in body["message"]
    assert "submitOptions.labels" in body["message"]
    assert double.workflows == {}


def test_submission_carries_exact_labels_and_parameters(double: ArgoServerDouble,
                                                        installed: ArgoSettings) -> None:
    request = _request()
    name = argo.submit_capture(request, installed)
    (body,) = _submissions(double)
    label = argo.fingerprint_label(request.trigger.alert_fingerprint)
    assert body == {
        "namespace": "csi", "resourceKind": "WorkflowTemplate", "resourceName": "csi-capture",
        "submitOptions": {
            "generateName": "csi-capture-",
            "labels": f"csi.dev/request-id={request.id},csi.dev/alert-fingerprint={label}",
            "parameters": [
                "namespace=prod", "pod=web-1", "container=web", "node=node-1",
                "reason=Terminal shell in container",
                'alert={"output_fields": {"k8s.pod.name": "web-1"}, "priority": "Warning", '
                '"rule": "Terminal shell in container", '
                '"time": "2026-11-22T07:09:53.912345678Z", '
                '"uuid": "6f1c3a52-8f0e-4d5b-9a43-2d7c1e0b9f11"}']}}
    workflow = double.workflows["csi", name]
    assert name.startswith("csi-capture-")
    assert workflow["metadata"]["labels"] == {
        "csi.dev/request-id": request.id, "csi.dev/alert-fingerprint": label,
        "workflows.argoproj.io/workflow-template": "csi-capture"}
    assert workflow["spec"]["arguments"]["parameters"][:3] == [
        {"name": "namespace", "value": "prod"}, {"name": "pod", "value": "web-1"},
        {"name": "container", "value": "web"}]
    assert len(label) == 40


def test_a_second_submit_of_the_same_alert_creates_nothing(double: ArgoServerDouble,
                                                           installed: ArgoSettings) -> None:
    first = argo.submit_capture(_request(), installed)
    again = argo.submit_capture(_request(), installed)
    assert again == first
    assert len(double.workflows) == 1
    assert len(_submissions(double)) == 1
    other = argo.submit_capture(_request("0" * 32), installed)
    assert other != first and len(double.workflows) == 2


def test_no_token_is_401(server: BackgroundServer, installed: ArgoSettings) -> None:
    raw = requests.get(f"{server.url}/api/v1/workflows/csi", timeout=10)
    assert raw.status_code == 401 and raw.json()["code"] == 16
    with pytest.raises(ArgoServerError) as caught:
        argo.submit_capture(_request(), ArgoSettings(server.url, "csi", token=""))
    assert caught.value.status == 401
    assert "rejected the token" in str(caught.value)
    assert "--argo-token-file" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_token_without_rights_is_403_naming_the_grant(server: BackgroundServer,
                                                        installed: ArgoSettings) -> None:
    with pytest.raises(ArgoServerError) as caught:
        argo.submit_capture(_request(), ArgoSettings(server.url, "csi", token=READER))
    text = str(caught.value)
    assert caught.value.status == 403
    assert 'cannot create resource "workflows"' in text
    assert "grant the token's service account the verb create on workflows.argoproj.io " \
        "in namespace csi" in text


def test_a_missing_template_says_install_it(settings: ArgoSettings) -> None:
    with pytest.raises(ArgoServerError) as caught:
        argo.submit_capture(_request(), settings)
    assert caught.value.status == 404
    assert "run: csi workflow install" in str(caught.value)


def test_an_unreachable_server_is_temporary(server: BackgroundServer) -> None:
    url = server.url
    server.stop()
    with pytest.raises(ArgoUnreachable) as caught:
        argo.submit_capture(_request(), ArgoSettings(url, "csi", token=TOKEN))
    assert caught.value.permanent is False
    assert "cannot reach the Argo Server" in str(caught.value)


def test_follow_reports_every_step_phase(installed: ArgoSettings) -> None:
    name = argo.submit_capture(_request(), installed)
    seen: list[tuple[str, str]] = []
    result = argo.follow(name, installed, lambda step, phase, _: seen.append((step, phase)))
    assert seen == [(step, phase) for step in ("checkpoint", "collect-push", "analyze", "cleanup")
                    for phase in ("Pending", "Running", "Succeeded")]
    assert result.phase == "Succeeded"
    assert result.image_ref == "registry.example/csi/evidence@sha256:" + "ab" * 32
    assert result.report_id == "r-0123456789abcdef"
    assert result.verdict == "malicious"


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _argo_args(settings: ArgoSettings, tmp_path: Path) -> list[str]:
    token = tmp_path / "token"
    token.write_text(settings.token + "\n")
    return ["--via", "argo", "--argo-server", settings.server, "--argo-namespace", "csi",
            "--argo-token-file", str(token)]


def test_cli_install_through_the_argo_server(capsys: pytest.CaptureFixture[str],
                                             settings: ArgoSettings, tmp_path: Path,
                                             double: ArgoServerDouble) -> None:
    args = ["workflow", "install", "--argo-server", settings.server, "--namespace", "csi",
            "--argo-token-file", str(_token_file(tmp_path))]
    assert _cli(capsys, *args) == (0, "workflowtemplate csi/csi-capture created\n", "")
    assert _cli(capsys, *args) == (0, "workflowtemplate csi/csi-capture updated\n", "")
    assert ("csi", "csi-capture") in double.templates


def _token_file(tmp_path: Path) -> Path:
    path = tmp_path / "admin-token"
    path.write_text(TOKEN)
    return path


def test_cli_via_argo_follows_and_prints_the_outcome(
        capsys: pytest.CaptureFixture[str], installed: ArgoSettings, tmp_path: Path,
        double: ArgoServerDouble) -> None:
    code, out, err = _cli(capsys, "capture", "pod", "web-1", "-n", "prod", "-c", "web",
                          "--reason", "responder check", *_argo_args(installed, tmp_path))
    assert code == 0, err
    (name,) = [n for _, n in double.workflows]
    assert out.splitlines() == [
        f"workflow csi/{name} Succeeded",
        "image registry.example/csi/evidence@sha256:" + "ab" * 32,
        "report r-0123456789abcdef (verdict malicious)"]
    lines = [" ".join(line.split()) for line in err.splitlines()]
    assert lines[0] == f"submitted workflow csi/{name}"
    assert lines[1:4] == ["checkpoint Pending", "checkpoint Running", "checkpoint Succeeded"]
    assert lines[-1] == "cleanup Succeeded"
    (body,) = _submissions(double)
    assert "reason=responder check" in body["submitOptions"]["parameters"]
    assert "csi.dev/alert-fingerprint" not in body["submitOptions"]["labels"]


def test_cli_via_argo_no_wait(capsys: pytest.CaptureFixture[str], installed: ArgoSettings,
                              tmp_path: Path, double: ArgoServerDouble) -> None:
    code, out, _ = _cli(capsys, "capture", "pod", "web-1", "-n", "prod", "-c", "web",
                        "--no-wait", *_argo_args(installed, tmp_path))
    (name,) = [n for _, n in double.workflows]
    assert (code, out) == (0, f"workflow csi/{name} Submitted\n")
    assert not any(m == "GET" and "/workflows/csi/" in p for m, p, _ in double.requests)


def test_cli_via_argo_failing_workflow_is_one_line_and_non_zero(
        capsys: pytest.CaptureFixture[str], installed: ArgoSettings, tmp_path: Path,
        double: ArgoServerDouble) -> None:
    double.script = failing_script("Error (exit code 3): registry refused the push")
    code, out, err = _cli(capsys, "capture", "pod", "web-1", "-n", "prod", "-c", "web",
                          *_argo_args(installed, tmp_path))
    (name,) = [n for _, n in double.workflows]
    assert code == 3
    assert out == ""
    last = err.splitlines()[-1]
    assert last == (f"csi: error: workflow csi/{name} Failed: collect-push: Error (exit code 3): "
                    f"registry refused the push (argo logs -n csi {name})")
    lines = [" ".join(line.split()) for line in err.splitlines()]
    assert "collect-push Failed: Error (exit code 3): registry refused the push" in lines
    assert lines[-2] == "cleanup Succeeded"  # the exit handler ran
    assert "analyze Pending" not in lines


def test_cli_via_argo_without_a_server_is_a_usage_error(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARGO_SERVER", raising=False)
    code, _, err = _cli(capsys, "capture", "pod", "web-1", "-n", "prod", "-c", "web",
                        "--via", "argo")
    assert code == 2
    assert err == "csi: error: --via argo needs --argo-server URL (or $ARGO_SERVER)\n"


def test_scripts_are_configurable(double: ArgoServerDouble, installed: ArgoSettings) -> None:
    double.script = succeeding_script(image_ref="r.example/x@sha256:" + "1" * 64,
                                      report_id="r-1")
    name = argo.submit_capture(_request(), installed)
    result = argo.follow(name, installed)
    assert (result.image_ref, result.report_id) == ("r.example/x@sha256:" + "1" * 64, "r-1")
