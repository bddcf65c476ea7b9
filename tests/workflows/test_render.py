"""The WorkflowTemplate in deploy/ is what workflows/ renders, and Argo's schema accepts it.

``CSI_REGENERATE=1 pytest tests/workflows`` rewrites the golden YAML.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from forensics.cli.main import main
from workflows import capture

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "deploy" / "workflows" / "csi-capture.yaml"
SCHEMA = ROOT / "tests" / "data" / "schemas" / "argo-workflows-v4.1-jsonschema.json"


def argo_validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = dict(json.loads(SCHEMA.read_text()))
    schema.pop("oneOf", None)
    schema["$ref"] = f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}"
    return jsonschema.Draft202012Validator(schema)


def test_golden_yaml_matches_the_hera_definition() -> None:
    rendered = capture.render()
    if os.environ.get("CSI_REGENERATE") == "1":
        GOLDEN.write_text(rendered)
    assert GOLDEN.read_text() == rendered, (
        "deploy/workflows/csi-capture.yaml drifted from workflows/capture.py: run "
        "CSI_REGENERATE=1 .venv/bin/pytest tests/workflows/test_render.py")


@pytest.mark.parametrize("backend", ["native", "buildah"])
def test_template_validates_against_argo_schema(backend: str) -> None:
    document = yaml.safe_load(capture.render(backend))
    errors = [f"{list(e.absolute_path)}: {e.message}"
              for e in argo_validator("WorkflowTemplate").iter_errors(document)]
    assert not errors, errors


def templates(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in document["spec"]["templates"]}


def test_least_privilege_and_retries() -> None:
    document = yaml.safe_load(GOLDEN.read_text())
    spec = document["spec"]
    assert [p["name"] for p in spec["arguments"]["parameters"]] == list(capture.PARAMETERS)
    assert spec["onExit"] == "exit-handler" and spec["podGC"] and spec["ttlStrategy"]
    steps = templates(document)
    accounts = set()
    for name in ("checkpoint", "collect-push", "analyze", "cleanup"):
        t = steps[name]
        assert t["container"]["command"] == ["csi", "step", name]
        assert t["retryStrategy"]["expression"] == "asInt(lastRetry.exitCode) == 75"
        assert t["activeDeadlineSeconds"]
        accounts.add(t["serviceAccountName"])
        assert not t["container"]["securityContext"].get("privileged")
        host = [v for v in t.get("volumes", []) if "hostPath" in v]
        if name in ("collect-push", "cleanup"):
            assert t["nodeSelector"] == {"kubernetes.io/hostname": "{{inputs.parameters.node}}"}
            mount = next(m for m in t["container"]["volumeMounts"] if m["name"] == "checkpoints")
            assert mount.get("readOnly", False) is (name == "collect-push")
        else:
            assert not host and t["container"]["securityContext"]["runAsNonRoot"]
    assert len(accounts) == 4
    buildah = templates(yaml.safe_load(capture.render("buildah")))
    assert buildah["collect-push"]["container"]["securityContext"]["privileged"] is True
    assert not any(t.get("container", {}).get("securityContext", {}).get("privileged")
                   for n, t in buildah.items() if n != "collect-push")


def test_render_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workflow", "render", "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / "csi-capture.yaml").read_text() == GOLDEN.read_text()
    capsys.readouterr()
    assert main(["workflow", "render"]) == 0
    assert capsys.readouterr().out == GOLDEN.read_text()
