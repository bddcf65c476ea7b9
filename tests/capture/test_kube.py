"""Kubernetes access through the real kubernetes client against the API server double."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from forensics.capture.errors import (
    AmbiguousContainer,
    ApiServerUnreachable,
    ContainerNotFound,
    ContainerNotRunning,
    KubeConfigError,
    PodNotFound,
    PodNotScheduled,
    RbacDenied,
    Unauthorized,
)
from forensics.capture.kube import connect
from forensics.capture.pods import PodTarget, pod_target
from forensics.errors import UsageError
from tests.doubles.cluster import Container, Pod
from tests.doubles.fixtures import Stack, kubeconfig_text, running_stack

WEB_ID = "3f2a9c1b7d4e" + "0" * 52


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path) as running:
        c = running.cluster
        c.add_pod(Pod("prod", "web-0", "node-1", [Container("web", container_id=WEB_ID)],
                      uid="11111111-2222-3333-4444-555555555555"))
        c.add_pod(Pod("prod", "shop-1", "node-1", [
            Container("app"), Container("envoy"), Container("log-shipper"),
            Container("init-db", kind="initContainers", state="terminated:Completed")]))
        c.add_pod(Pod("default", "solo", "node-1", [Container("main")]))
        yield running


# ------------------------------------------------------------ configuration
def test_kubeconfig_context_namespace_and_host(stack: Stack) -> None:
    with connect(str(stack.kubeconfig)) as kube:
        assert (kube.context, kube.namespace, kube.host) == ("doubles", "prod",
                                                             stack.api_server.url)
    with connect(str(stack.kubeconfig), "doubles-default") as kube:
        assert (kube.context, kube.namespace) == ("doubles-default", "default")


def test_kubeconfig_from_env_list_merged(stack: Stack, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.write_text('{"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [],'
                     ' "contexts": []}')
    env = {"KUBECONFIG": f"{tmp_path}/missing{os.pathsep}{other}{os.pathsep}"
                         f"{stack.kubeconfig}"}
    with connect(environ=env) as kube:
        assert (kube.context, kube.namespace) == ("doubles", "prod")
        assert kube.resolve_pod("web-0").node == "node-1"


def test_kubeconfig_errors(stack: Stack, tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="context 'nope' is not in kubeconfig") as err:
        connect(str(stack.kubeconfig), "nope")
    assert "its contexts are: doubles, doubles-default" in str(err.value)
    assert err.value.exit_code == 2
    with pytest.raises(KubeConfigError, match=r"kubeconfig .*/absent not found"):
        connect(str(tmp_path / "absent"))
    with pytest.raises(KubeConfigError, match=r"no file of \$KUBECONFIG exists"):
        connect(environ={"KUBECONFIG": str(tmp_path / "absent")})
    with pytest.raises(KubeConfigError, match="no Kubernetes configuration found"):
        connect(environ={"HOME": str(tmp_path)}, service_account_dir=str(tmp_path / "sa"))


def test_in_cluster_service_account(stack: Stack, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text(stack.tokens["alice"])
    (sa / "ca.crt").write_bytes(stack.pki.ca_pem)
    (sa / "namespace").write_text("prod\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    port = stack.api_server.port
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(port)}
    with connect(environ=env, service_account_dir=str(sa)) as kube:
        assert (kube.context, kube.namespace, kube.host) == ("in-cluster", "prod",
                                                             f"https://127.0.0.1:{port}")
        assert kube.resolve_pod("web-0").uid == "11111111-2222-3333-4444-555555555555"


# ------------------------------------------------------------ pod resolution
def test_the_only_container(stack: Stack) -> None:
    with stack.connect() as kube:
        target = kube.resolve_pod("web-0")
    assert target == PodTarget(node="node-1", namespace="prod", pod="web-0",
                               uid="11111111-2222-3333-4444-555555555555",
                               containers=["web"], container_ids={"web": f"cri-o://{WEB_ID}"})


def test_several_containers_are_listed(stack: Stack) -> None:
    with stack.connect() as kube, pytest.raises(AmbiguousContainer) as err:
        kube.resolve_pod("shop-1")
    assert err.value.containers == ["app", "envoy", "log-shipper"]
    assert str(err.value) == ("pod prod/shop-1 has 3 containers: app, envoy, log-shipper: "
                              "csi checkpoints the container you name (choose one with -c "
                              "NAME, or all of them with --all-containers)")


def test_named_all_and_default_container(stack: Stack) -> None:
    with stack.connect() as kube:
        assert kube.resolve_pod("shop-1", container="envoy").containers == ["envoy"]
        assert kube.resolve_pod("shop-1", all_containers=True).containers == [
            "app", "envoy", "log-shipper"]
        assert kube.resolve_pod("solo", "default").containers == ["main"]
        stack.cluster.pods[("prod", "shop-1")].annotations[
            "kubectl.kubernetes.io/default-container"] = "app"
        assert kube.resolve_pod("shop-1").containers == ["app"]
        with pytest.raises(UsageError):
            kube.resolve_pod("shop-1", container="app", all_containers=True)


def test_unknown_container_and_not_running(stack: Stack) -> None:
    with stack.connect() as kube:
        with pytest.raises(ContainerNotFound) as err:
            kube.resolve_pod("shop-1", container="db")
        assert str(err.value) == ("container db does not exist in pod prod/shop-1: its "
                                  "containers are: app, envoy, log-shipper, init-db (name one "
                                  "of them with -c)")
        with pytest.raises(ContainerNotRunning, match=r"its state is terminated \(Completed\)"):
            kube.resolve_pod("shop-1", container="init-db")


def test_unknown_pod_and_pending_pod(stack: Stack) -> None:
    with stack.connect() as kube:
        with pytest.raises(PodNotFound) as err:
            kube.resolve_pod("nope")
        assert err.value.status == 404 and err.value.permanent
        assert str(err.value).startswith("pod prod/nope not found: the API server knows no "
                                         "pod 'nope' in namespace 'prod'")
        stack.cluster.add_pod(Pod("prod", "later", "", [Container("x")], phase="Pending"))
        with pytest.raises(PodNotScheduled, match=r"prod/later is not running on a node "
                                                  r"\(phase Pending\)"):
            kube.resolve_pod("later")


def test_forbidden_and_unauthorized(stack: Stack) -> None:
    with stack.connect("mallory") as kube, pytest.raises(RbacDenied) as err:
        kube.resolve_pod("web-0")
    assert (err.value.user, err.value.verb, err.value.rule) == ("mallory", "get", "pods")
    assert 'User "mallory" cannot get resource "pods" in API group "" in the namespace ' \
           '"prod"' in str(err.value)
    path = stack.write_kubeconfig("ghost", token="not-a-token")
    with connect(str(path)) as kube, pytest.raises(Unauthorized, match="401 Unauthorized"):
        kube.resolve_pod("web-0")


def test_api_server_down_is_temporary(stack: Stack) -> None:
    kube = stack.connect()
    stack.api_server.stop()
    with pytest.raises(ApiServerUnreachable) as err:
        kube.resolve_pod("web-0")
    assert not err.value.permanent
    assert "Connection refused" in str(err.value)
    kube.close()


# ------------------------------------------------------------ container ids (Falco)
def test_find_container_by_id(stack: Stack) -> None:
    with stack.connect() as kube:
        for prefix in (WEB_ID[:12], f"cri-o://{WEB_ID}", WEB_ID.upper()[:20]):
            target = kube.find_container_by_id("prod", "web-0", prefix)
            assert (target.node, target.pod, target.containers) == ("node-1", "web-0", ["web"])
        with pytest.raises(ContainerNotFound) as err:
            kube.find_container_by_id("prod", "web-0", "deadbeef0000")
        assert str(err.value).startswith("container with id deadbeef0000 does not exist in "
                                         "pod prod/web-0: its containers are: web (3f2a9c1b7d4e)")


def test_containerd_ids_and_sidecars() -> None:
    pod = Pod("prod", "mesh-0", "node-2", [
        Container("app", runtime="containerd", container_id="ab" * 32),
        Container("proxy", kind="initContainers", restart_policy="Always",
                  runtime="containerd", container_id="cd" * 32),
        Container("debug", kind="ephemeralContainers", runtime="containerd",
                  container_id="ef" * 32, state="waiting:ContainerCreating")]).to_object()
    with pytest.raises(AmbiguousContainer, match="2 containers: app, proxy"):
        pod_target(pod)
    assert pod_target(pod, all_containers=True).containers == ["app", "proxy"]
    assert pod_target(pod, "proxy").container_ids["proxy"] == "containerd://" + "cd" * 32
    with pytest.raises(ContainerNotRunning, match=r"waiting \(ContainerCreating\)"):
        pod_target(pod, "debug")


def test_kubeconfig_text_is_loadable(tmp_path: Path, stack: Stack) -> None:
    path = tmp_path / "cfg"
    path.write_text(kubeconfig_text(stack.api_server.url, stack.pki.ca_pem,
                                    stack.tokens["bob"], "default"))
    with connect(str(path)) as kube:
        assert kube.resolve_pod("solo").containers == ["main"]
