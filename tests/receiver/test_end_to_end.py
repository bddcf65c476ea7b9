"""Falco alerts to signed reports, with nothing simulated but Falco and the cluster's
control plane: the receiver (real HTTP, its journal and local executor) runs the real
capture pipeline against the Kubernetes API server and kubelet doubles, which checkpoint
real podman containers named like the fixture alerts' pods with CRIU; the archives go to
the OCI layout, come back verified, are analyzed and reported.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from forensics.alert import decode_alert
from forensics.cli.main import main
from forensics.receiver.config import ServeConfig
from forensics.receiver.policy import load_policy
from tests.doubles.fixtures import Stack, Workload, stack_with, workload_or_skip
from tests.receiver.conftest import (
    HOST,
    INTERNAL,
    NULLS,
    PAYMENTS,
    SHOP,
    UNKNOWN_POD,
    ServerThread,
    alert_bytes,
    auth_headers,
    wait_until,
)

PODS = {  # the pods the two fixture alerts name
    SHOP: ("prod", "shop-frontend-7d9c6b5f4-x2x9q", "web", "miner"),
    PAYMENTS: ("payments", "payments-api-5b8f7c9d8-qq7lm", "api", "reverse"),
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, list[Workload]]]:
    tmp = tmp_path_factory.mktemp("e2e")
    with ExitStack() as stack:
        workloads = [stack.enter_context(workload_or_skip(
            tmp, f"csi-e2e-{i}-{tmp.name[-6:]}", pod=pod, namespace=ns, container=ctr,
            mode=mode)) for i, (ns, pod, ctr, mode) in enumerate(PODS.values())]
        running = stack.enter_context(stack_with(tmp / "stack", *workloads))
        yield running, workloads


def test_the_two_fixture_alerts_become_verified_reports(
    cluster: tuple[Stack, list[Workload]], base_config: ServeConfig, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    stack, _ = cluster
    home = tmp_path / "home"
    monkeypatch.setenv("CSI_HOME", str(home))
    node_dir = stack.checkpoint_dirs["node-1"]
    config = replace(base_config, home=str(home), backend="kubernetes",
                     kubeconfig=str(stack.kubeconfig), checkpoint_dir=str(node_dir))
    with ServerThread(config) as server:  # the default run_capture: the real pipeline
        answers = {name: requests.post(server.url + "/falco", data=alert_bytes(name),
                                       headers={**auth_headers(),
                                                "Content-Type": "application/json"},
                                       timeout=10)
                   for name in (SHOP, PAYMENTS, UNKNOWN_POD, HOST, INTERNAL, NULLS)}
        assert {n: a.status_code for n, a in answers.items()} == dict.fromkeys(answers, 202)

        def captures() -> list[dict[str, Any]]:
            reply = requests.get(server.url + "/api/v1/captures", headers=auth_headers(),
                                 timeout=10)
            data = reply.json()
            return list(data["captures"] if isinstance(data, dict) else data)

        wait_until(lambda: len(captures()) >= 3 and all(
            c["state"] in ("done", "failed") for c in captures()), 240, "captures never ended")
        done = {c["target"]["pod"]: c for c in captures() if c["state"] == "done"}
        failed = [c for c in captures() if c["state"] == "failed"]
    assert set(done) == {pod for _, pod, _, _ in PODS.values()}
    assert [c["target"]["pod"] for c in failed] == ["kubecon"]  # the unknown pod: resolved and
    assert "kubecon" in failed[0]["error"]                      # refused, never checkpointed
    assert not any(node_dir.iterdir())  # each node copy deleted after its verified push
    for alert_name, (ns, pod, _ctr, _mode) in PODS.items():
        capture = done[pod]
        report_id = capture["result"]["report_id"] if "result" in capture else capture[
            "report_id"]
        assert main(["report", "verify", report_id]) == 0
        out = tmp_path / f"{pod}.json"
        assert main(["report", "export", report_id, "--format", "json", "-f", str(out)]) == 0
        report = json.loads(out.read_text())
        alert = json.loads(alert_bytes(alert_name))
        text = json.dumps(report)
        assert alert["rule"] in text and pod in text and ns in text
        decided = load_policy().decide(decode_alert(alert_bytes(alert_name)))
        assert (report["trigger"]["kind"], report["trigger"]["policy"],
                report["trigger"]["alert"]["rule"], report["trigger"]["alert"]["time"]) == (
            "alert", decided.rule, alert["rule"], alert["time"])
        assert report["custody"]["capture"]["archive_sha256"] == report["custody"][
            "archive"]["sha256"]
    capsys.readouterr()
