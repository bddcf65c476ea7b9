"""The rendered csi-capture workflow, played step by step as Argo would (tests/workflows/
argo_player.py), against the Kubernetes API server and kubelet doubles (real podman + CRIU
checkpoints) and a real local docker-registry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from forensics.report.signing import check_signature, default_key_path, load_signing_key
from tests.capture.servers import REGISTRY, Registry, have
from tests.doubles.fixtures import Stack, Workload, stack_with, workload_or_skip
from tests.doubles.kubelet import PODMAN
from tests.workflows.argo_player import ArgoPlayer, Play
from tests.workflows.test_render import GOLDEN

POD, NS, CTR = "payments-api-7d4f9-w0rk1", "payments", "api"
ALERT = {"time": "2026-11-22T07:10:28.123456789Z", "rule": "Reverse shell", "priority":
         "Critical", "source": "syscall", "hostname": "node-1", "output": "reverse shell",
         "output_fields": {"k8s.pod.name": POD, "k8s.ns.name": NS}}


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workload]:
    tmp = tmp_path_factory.mktemp("workload")
    with workload_or_skip(tmp, f"csi-play-{tmp.name[-8:]}", pod=POD, namespace=NS,
                          container=CTR, mode="reverse") as running:
        yield running


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, workload: Workload) -> Iterator[Stack]:
    with stack_with(tmp_path_factory.mktemp("stack"), workload) as running:
        yield running


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    if not have(REGISTRY):
        pytest.skip("docker-registry is not installed (deploy/dev/install-system.sh)")
    reg = Registry(tmp_path_factory.mktemp("registry"))
    try:
        yield reg
    finally:
        reg.close()


@pytest.fixture(autouse=True)
def podman_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSI_PODMAN_FLAGS", " ".join(PODMAN[1:]))  # the kubelet double's


def player(stack: Stack, tmp_path: Path, registry_repo: str) -> ArgoPlayer:
    key_home = tmp_path / "key"
    load_signing_key(key_home)
    (tmp_path / "registry-auth").mkdir()
    return ArgoPlayer(
        yaml.safe_load(GOLDEN.read_text()), tmp_path / "pods",
        mounts={"/var/lib/kubelet/checkpoints": stack.checkpoint_dirs["node-1"],
                "/etc/csi/registry": tmp_path / "registry-auth"},
        config_maps={"csi-config": {"registry": registry_repo, "registry-plain-http": "1"}},
        secrets={"csi-signing-key": {"signing-key.pem": default_key_path(key_home).read_text()}},
        extra_env={"KUBECONFIG": str(stack.kubeconfig), "HOME": str(tmp_path)})


def params(**extra: str) -> dict[str, str]:
    return {"namespace": NS, "pod": POD, "container": CTR, **extra}


def explain(play: Play) -> str:
    return "\n".join(f"{r.name}: exit {r.exit_code} after {r.attempts}: {r.stderr[-800:]}"
                     for r in play.runs)


def test_the_workflow_ends_with_a_signed_report_and_a_clean_node(
        stack: Stack, registry: Registry, tmp_path: Path) -> None:
    node_dir = stack.checkpoint_dirs["node-1"]
    play = player(stack, tmp_path, f"{registry.host}/evidence").play(
        params(node="node-1", reason="IR-5150", alert=json.dumps(ALERT)))
    assert play.phase == "Succeeded", explain(play)
    assert [r.name for r in play.runs] == ["checkpoint", "collect-push", "analyze", "cleanup"]
    checkpoint, collect, analyze, cleanup = play.runs
    archive = checkpoint.outputs["archive-path"]
    assert archive.startswith(str(node_dir)) and checkpoint.outputs["node"] == "node-1"
    assert collect.argv[collect.argv.index("--archive") + 1] == archive
    image = collect.outputs["image-ref"]
    assert image.startswith(f"{registry.host}/evidence/checkpoints/{NS}/{POD}@sha256:")
    assert analyze.argv[analyze.argv.index("--image-ref") + 1] == image
    assert analyze.outputs["verdict"] == "critical"
    report_dir = Path(analyze.argv[analyze.argv.index("--report-dir") + 1])
    report = json.loads((report_dir / "report.json").read_text())
    assert check_signature(report).ok
    assert report["id"] == analyze.outputs["report-id"]
    custody = report["custody"]["capture"]
    assert custody["archive_sha256"] == collect.outputs["sha256"]
    assert custody["archive_sha256"] == report["custody"]["archive"]["sha256"]
    assert custody["registry_ref"] == image
    assert custody["captured_by"] == "argo workflow csi-capture-play"
    assert (report_dir / "report.html").stat().st_size and (report_dir / "report.md").exists()
    assert "IR-5150" in json.dumps(report) or "Reverse shell" in json.dumps(report)
    assert cleanup.outputs["deleted"] == "true", explain(play)
    assert not any(node_dir.iterdir())


def test_a_failed_push_keeps_the_archive(stack: Stack, tmp_path: Path) -> None:
    node_dir = stack.checkpoint_dirs["node-1"]
    play = player(stack, tmp_path, "127.0.0.1:1/evidence").play(params())
    assert play.phase == "Failed"
    assert [r.name for r in play.runs] == ["checkpoint", "collect-push", "cleanup"], explain(play)
    checkpoint, collect, cleanup = play.runs
    assert collect.exit_code == 75 and collect.attempts == 5  # temporary: retried 4 times
    assert "csi: error:" in collect.stderr and "Traceback" not in collect.stderr
    assert cleanup.exit_code == 0, explain(play)
    assert cleanup.outputs["deleted"] == "false"
    archive = Path(checkpoint.outputs["archive-path"])
    assert archive.is_file()
    archive.unlink()
    assert not any(node_dir.iterdir())
