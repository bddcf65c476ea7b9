"""Real checkpoints through the Checkpoint API: the kubelet double runs podman + CRIU on a
running container of the project's workload image, annotated like a CRI-O container of
pod prod-web-0 in namespace shop, container api.

deploy/dev/make-checkpoint.sh builds the image and proves CRIU works here; where it
cannot (exit 77: not root, no CRIU 4.2, ...) these tests skip and say why.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from forensics.archive.checkpoint import Checkpoint
from forensics.capture.errors import CheckpointFailed
from forensics.capture.kube import Kube
from forensics.capture.kubelet import ApiServerProxy, KubeletClient, Transport
from tests.doubles.cluster import Container, Pod
from tests.doubles.fixtures import (
    Stack,
    Workload,
    running_stack,
    workload_or_skip,
)
from tests.doubles.kubelet import PODMAN

POD, NS, CTR = "prod-web-0", "shop", "api"


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workload]:
    tmp = tmp_path_factory.mktemp("workload")
    with workload_or_skip(tmp, f"csi-kubelet-{tmp.name[-8:]}", pod=POD, namespace=NS,
                          container=CTR) as running:
        yield running


def annotation(workload: Workload, key: str) -> str:
    out = subprocess.run([*PODMAN, "container", "inspect", workload.id], capture_output=True,
                         text=True, check=True).stdout
    return str(json.loads(out)[0]["Config"]["Annotations"][key])


def state(workload: Workload) -> str:
    return subprocess.run([*PODMAN, "container", "inspect", "--format", "{{.State.Status}}",
                           workload.id], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, workload: Workload) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack")) as running:  # PodmanCheckpointer
        uid = annotation(workload, "io.kubernetes.pod.uid")
        running.cluster.add_pod(Pod(NS, POD, "node-1", [Container(CTR, container_id=workload.id)],
                                    uid=uid))
        running.cluster.add_pod(Pod(NS, "ghost-0", "node-1", [Container(CTR)]))
        yield running


def check_real_checkpoint(stack: Stack, transport: Transport, kube: Kube,
                          workload: Workload) -> None:
    target = kube.resolve_pod(POD, NS)
    assert (target.node, target.containers) == ("node-1", [CTR])
    client = KubeletClient(transport, checkpoint_dir=str(stack.checkpoint_dirs["node-1"]))
    result = client.checkpoint(target.node, target.namespace, target.pod, target.containers[0],
                               timeout_s=120)
    archive = Path(result.path_on_node)
    assert archive.is_file() and archive.parent == stack.checkpoint_dirs["node-1"]
    assert archive.name.startswith(f"checkpoint-{POD}_{NS}-{CTR}-")
    with Checkpoint(str(archive)) as ckpt:
        k = ckpt.kubernetes
        assert (k.pod, k.namespace, k.container, k.pod_uid) == (POD, NS, CTR, target.uid)
        assert ckpt.archive.compression == "none"  # a plain tar, as CRI-O writes
        assert ckpt.container.engine == "Podman"
        implant = ckpt.process(1)
        assert implant is not None and implant.exe == "/tmp/.cache/.x"
    assert state(workload) == "running"  # checkpointed, left running, as the kubelet does


def test_real_checkpoint_through_the_api_server_proxy(stack: Stack,
                                                      workload: Workload) -> None:
    with stack.connect() as kube:
        check_real_checkpoint(stack, ApiServerProxy(kube), kube, workload)


def test_real_checkpoint_directly_with_a_client_certificate(stack: Stack,
                                                            workload: Workload) -> None:
    with stack.connect() as kube:
        check_real_checkpoint(stack, stack.direct(), kube, workload)


def test_falco_container_id_resolves_to_the_podman_container(stack: Stack,
                                                             workload: Workload) -> None:
    with stack.connect() as kube:
        target = kube.find_container_by_id(NS, POD, workload.id[:12])
    assert (target.pod, target.containers, target.container_ids[CTR]) == (
        POD, [CTR], f"cri-o://{workload.id}")


def test_runtime_failure_is_a_500_with_the_cri_error(stack: Stack) -> None:
    with stack.connect() as kube:
        client = KubeletClient(ApiServerProxy(kube),
                               checkpoint_dir=str(stack.checkpoint_dirs["node-1"]))
        with pytest.raises(CheckpointFailed) as err:
            client.checkpoint("node-1", NS, "ghost-0", CTR)
    assert err.value.permanent and err.value.status == 500
    assert err.value.body.startswith(f"checkpointing of {NS}/ghost-0/{CTR} failed (rpc error: "
                                     "code = NotFound desc = could not find a running "
                                     f'container "{CTR}"')
