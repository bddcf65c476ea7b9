"""The whole capture, for real: checkpoint (podman + CRIU, directly or through the kubelet
double), hash, push to the OCI layout, pull back, verify, analyze, signed report."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from forensics.cli.main import main
from tests.doubles.fixtures import Stack, Workload, stack_with, workload_or_skip
from tests.doubles.kubelet import PODMAN

POD, NS, CTR = "payments-api-7d4f9-x2x9q", "payments", "api"


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workload]:
    tmp = tmp_path_factory.mktemp("workload")
    with workload_or_skip(tmp, f"csi-pipeline-{tmp.name[-8:]}", pod=POD, namespace=NS,
                          container=CTR, mode="reverse") as running:
        yield running


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, workload: Workload) -> Iterator[Stack]:
    with stack_with(tmp_path_factory.mktemp("stack"), workload) as running:
        yield running


@pytest.fixture(autouse=True)
def csi_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CSI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CSI_PODMAN_FLAGS", " ".join(PODMAN[1:]))
    return tmp_path / "home"


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, object, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def test_capture_pod_through_the_kubelet(stack: Stack, workload: Workload,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    node_dir = stack.checkpoint_dirs["node-1"]
    code, result, err = run_json(
        capsys, "capture", "pod", POD, "-n", NS, "--kubeconfig", str(stack.kubeconfig),
        "--checkpoint-dir", str(node_dir), "--reason", "IR-4242", "-o", "json")
    assert code == 0, err
    assert isinstance(result, dict)
    sha = result["archive_sha256"]
    assert len(sha) == 64 and result["archive_size"] > 100_000
    assert result["image_ref"].startswith("oci:")
    assert result["archive_path"] == ""  # the node copy is deleted after a verified push
    assert not any(node_dir.iterdir())
    assert list(result["timeline"]) == ["checkpoint requested", "checkpoint written",
                                        "archive hashed", "pushed", "analyzed", "reported"]
    assert result["verdict"] == "critical"
    report_id = result["report_id"]
    assert main(["report", "verify", report_id]) == 0  # pulls the evidence back to check it
    assert "verified" in capsys.readouterr().out
    assert main(["report", "export", report_id, "--format", "json", "-f",
                 str(stack.checkpoint_dirs["node-1"].parent / "r.json")]) == 0
    report = json.loads((stack.checkpoint_dirs["node-1"].parent / "r.json").read_text())
    capture = report["custody"]["capture"]
    assert capture["archive_sha256"] == sha == report["custody"]["archive"]["sha256"]
    assert capture["registry_ref"] == result["image_ref"]
    assert report["custody"]["archive"].get("sha256") == sha
    text = json.dumps(report)
    assert "IR-4242" in text and POD in text and NS in text


def test_dry_run_touches_nothing(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["capture", "pod", POD, "-n", NS, "--kubeconfig", str(stack.kubeconfig),
                 "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.strip() == (f"would checkpoint {NS}/{POD}/{CTR} on node node-1: POST "
                           f"/api/v1/nodes/node-1/proxy/checkpoint/{NS}/{POD}/{CTR}")
    assert not any(stack.checkpoint_dirs["node-1"].iterdir())


def test_feature_gate_off_is_one_clear_line(stack: Stack,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    kubelet = stack.kubelets["node-1"]
    kubelet.feature_gate = False
    try:
        code = main(["capture", "pod", POD, "-n", NS, "--kubeconfig", str(stack.kubeconfig),
                     "--checkpoint-dir", str(stack.checkpoint_dirs["node-1"])])
    finally:
        kubelet.feature_gate = True
    err = capsys.readouterr().err
    assert code == 3
    errors = [line for line in err.splitlines() if line.startswith("csi: error:")]
    assert len(errors) == 1 and "Traceback" not in err  # (progress lines come first)
    assert "the ContainerCheckpoint feature gate is off on node node-1" in errors[0]


def test_capture_podman_container_keeps_archive_on_request(
    workload: Workload, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result, err = run_json(capsys, "capture", "container", workload.name,
                                 "--keep-archive", "-o", "json")
    assert code == 0, err
    assert isinstance(result, dict)
    path = result["archive_path"]
    assert os.path.isfile(path)
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == result["archive_sha256"]
    assert result["report_id"] and result["verdict"] == "critical"
    os.unlink(path)


def test_missing_container(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["capture", "container", "no-such-container-xyz"])
    err = capsys.readouterr().err
    assert code == 3
    assert "podman has no container 'no-such-container-xyz'" in err


def test_capture_whose_report_fails_after_the_push_still_names_its_image(
    workload: Workload, csi_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On 755c054 a failure after the push (a 1,100-deep process tree's RecursionError, here
    a report store that cannot be written) raised out of the pipeline: the capture's result
    was lost and the evidence image stayed in the registry with nothing referring to it."""
    csi_home.mkdir(parents=True, exist_ok=True)
    (csi_home / "reports").write_text("not a folder\n")
    code, result, err = run_json(capsys, "capture", "container", workload.name, "-o", "json")
    assert code == 3, err
    assert isinstance(result, dict)
    ref = result["image_ref"]
    assert ref.startswith("oci:") and result["manifest_digest"].startswith("sha256:")
    assert result["report_id"] == "" and result["archive_path"] == ""
    assert result["error"].startswith(f"the evidence is stored as {ref}, but its analysis "
                                      "failed: ")
    assert result["error"].endswith(f"; analyze it again with `csi pull {ref} -f "
                                    "FILE` then `csi analyze FILE --save`")
    assert err.splitlines()[-1].startswith("csi: error: the evidence is stored as ")
    back = tmp_path / "back.tar"
    assert main(["pull", ref, "-f", str(back)]) == 0, capsys.readouterr().err
    assert hashlib.sha256(back.read_bytes()).hexdigest() == result["archive_sha256"]
