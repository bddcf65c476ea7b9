"""``csi policy test`` and ``csi serve``'s one-line start-up errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forensics.cli.main import main
from tests.receiver.conftest import FALCO, HOST, NULLS, PAYMENTS, SHOP, UNKNOWN_POD


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("name", "decision", "why"), [
    (SHOP, "capture", "matched Falco rule 'Drop and execute new binary in container'"),
    (PAYMENTS, "capture", "'high-value-rules' matched"),
    (UNKNOWN_POD, "capture", "'critical-workload-alerts' matched"),
    (HOST, "ignore", "host process (container.id=host)"),
    (NULLS, "ignore", "unresolved target"),
])
def test_policy_test_prints_the_decision_and_why(name: str, decision: str, why: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["policy", "test", str(FALCO / name)], capsys)
    assert code == 0 and err == ""
    assert f"decision:    {decision}\n" in out and why in out
    assert "guards:      not applied here" in out


def test_policy_test_target_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(["policy", "test", str(FALCO / UNKNOWN_POD)], capsys)
    assert "target:      kubernetes k8s/default/kubecon, container name unknown on node " \
           "falco-xczjd (container id ee97d9c4186f)" in out
    code, out, _ = run(["policy", "test", str(FALCO / SHOP), "-o", "json"], capsys)
    data = json.loads(out)
    assert code == 0 and data["action"] == "capture" and data["target"]["pod"] == \
        "shop-frontend-7d9c6b5f4-x2x9q"
    assert data["policy"] == "default-policy.yaml (packaged)"


def test_policy_test_with_a_policy_file(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("rules:\n  - name: nothing\n    match: {rules: [none]}\n"
                      "    action: capture\ndefault_action: notify-only\n")
    code, out, _ = run(["policy", "test", str(FALCO / SHOP), "--policy", str(policy)], capsys)
    assert code == 0 and "decision:    notify-only" in out
    assert "no policy rule matched (nothing: rule name not listed)" in out


def test_policy_test_errors_are_one_line(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "alert.json"
    bad.write_text('{"priority": "Critical"}')
    code, _, err = run(["policy", "test", str(bad)], capsys)
    assert code == 1 and err == "csi: error: required field 'rule' is missing\n"
    policy = tmp_path / "p.yaml"
    policy.write_text("rules: [{name: a, action: freeze}]\n")
    code, _, err = run(["policy", "test", str(FALCO / SHOP), "--policy", str(policy)], capsys)
    assert code == 2 and "is not an action" in err and err.count("\n") == 1


@pytest.mark.parametrize(("argv", "message"), [
    (["--executor", "argo"], "executor 'argo' needs the Argo Server: set argo_server"),
    ([], "no authentication configured"),
    (["--listen", "nowhere"], "is not HOST:PORT"),
    (["--token-file", "/nonexistent/token"], "token_file /nonexistent/token: cannot read it"),
    (["--policy", "/nonexistent/policy.yaml"], "cannot read the policy"),
])
def test_serve_start_up_errors_are_one_line(argv: list[str], message: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CSI_HOME", str(tmp_path))
    token = tmp_path / "token"
    token.write_text("0123456789abcdef0123")
    if argv[:1] in (["--executor"], ["--listen"], ["--policy"]):
        argv = [*argv, "--token-file", str(token)]
    code, _, err = run(["serve", *argv], capsys)
    assert code == 2 and message in err and err.startswith("csi: error: ")
    assert err.count("\n") == 1
