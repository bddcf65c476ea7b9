"""Start the doubles together: an API server double and one kubelet double per node.

    with running_stack(tmp_path) as stack:
        kube = stack.connect()                  # the real kubernetes client, via kubeconfig
        kubelet = stack.kubelets["node-1"]      # knobs: feature_gate, cri_error, fail_next()
        stack.cluster.add_pod(...)              # what both doubles know

Everything is served over TLS on 127.0.0.1 with a throwaway CA
(:class:`~tests.doubles.pki.Pki`); the kubeconfig written to
``stack.kubeconfig`` holds the CA, the server URL and alice's token.
Identities (users and what RBAC grants them):

- ``alice`` (token): get pods and nodes, create nodes/proxy: a responder.
- ``bob`` (token): get pods only: the node proxy is denied.
- ``csi-node-agent`` (client certificate, or token): create nodes/checkpoint at the kubelet.
- ``mallory`` (token): nothing.
- ``kube-apiserver-kubelet-client``: the API server's own identity at the kubelets
  (client certificate): create nodes/checkpoint (revoke it to see the 403).
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from forensics.capture.kube import Kube, connect
from forensics.capture.kubelet import KubeletDirect
from tests.doubles.cluster import APISERVER_KUBELET_USER, Cluster, Container, Pod
from tests.doubles.kube_api import KubeApiDouble
from tests.doubles.kubelet import PODMAN, Checkpointer, KubeletDouble
from tests.doubles.pki import KeyPair, Pki
from tests.doubles.server import BackgroundServer

NAMESPACE = "prod"
AGENT = "csi-node-agent"


@dataclass
class Stack:
    cluster: Cluster
    pki: Pki
    api: KubeApiDouble
    api_server: BackgroundServer
    kubelets: dict[str, KubeletDouble]
    kubelet_servers: dict[str, BackgroundServer]
    checkpoint_dirs: dict[str, Path]
    kubeconfig: Path
    tokens: dict[str, str] = field(default_factory=dict)
    agent_cert: KeyPair | None = None

    def connect(self, user: str = "alice", context: str | None = None) -> Kube:
        """The real kubernetes client, configured from a kubeconfig for ``user``."""
        path = self.kubeconfig if user == "alice" else self.write_kubeconfig(user)
        return connect(str(path), context)

    def write_kubeconfig(self, user: str, *, token: str | None = None,
                         namespace: str = NAMESPACE) -> Path:
        path = self.kubeconfig.with_name(f"kubeconfig-{user}")
        path.write_text(kubeconfig_text(self.api_server.url, self.pki.ca_pem,
                                        token or self.tokens[user], namespace))
        return path

    def direct(self, *, user: str = AGENT, certificate: bool = True,
               insecure: bool = False) -> KubeletDirect:
        """The direct transport to these kubelets: client certificate, or ``user``'s token."""
        urls = {n: s.url for n, s in self.kubelet_servers.items()}
        pair = self.agent_cert if certificate and user == AGENT else None
        return KubeletDirect(lambda node: urls.get(node, "https://127.0.0.1:1"),
                             client_cert=str(pair.cert) if pair else None,
                             client_key=str(pair.key) if pair else None,
                             token=None if pair else self.tokens.get(user),
                             ca_bundle=None if insecure else str(self.pki.ca_cert),
                             insecure=insecure)


def kubeconfig_text(server: str, ca_pem: bytes, token: str, namespace: str) -> str:
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "doubles", "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": "responder", "user": {"token": token}}],
        "contexts": [{"name": "doubles", "context": {"cluster": "doubles", "user": "responder",
                                                     "namespace": namespace}},
                     {"name": "doubles-default", "context": {"cluster": "doubles",
                                                             "user": "responder"}}],
        "current-context": "doubles",
    }
    return json.dumps(config, indent=1)  # JSON is YAML


@contextmanager
def running_stack(tmp: Path, *, nodes: tuple[str, ...] = ("node-1",),
                  checkpointer: Checkpointer | None = None) -> Iterator[Stack]:
    """The API server double and a kubelet double per node, all listening; closed on exit."""
    pki = Pki(tmp / "pki")
    cluster = Cluster()
    tokens = {
        "alice": cluster.add_user("alice", ("get", "pods"), ("get", "nodes"),
                                  ("create", "nodes/proxy")),
        "bob": cluster.add_user("bob", ("get", "pods")),
        AGENT: cluster.add_user(AGENT, ("create", "nodes/checkpoint")),
        "mallory": cluster.add_user("mallory"),
    }
    cluster.grant(APISERVER_KUBELET_USER, "create", "nodes/checkpoint")
    with ExitStack() as stack:
        kubelets: dict[str, KubeletDouble] = {}
        servers: dict[str, BackgroundServer] = {}
        dirs: dict[str, Path] = {}
        for name in nodes:
            node = cluster.add_node(name)
            dirs[name] = tmp / name / "checkpoints"
            dirs[name].mkdir(parents=True)
            kubelets[name] = KubeletDouble(cluster, name, dirs[name], checkpointer)
            ctx = pki.server_context(pki.server(f"kubelet-{name}"), verify_clients=True)
            servers[name] = stack.enter_context(BackgroundServer(kubelets[name].app,
                                                                 ssl_context=ctx))
            node.kubelet_url = servers[name].url
        api = KubeApiDouble(cluster, pki.client_context(pki.client(APISERVER_KUBELET_USER)))
        api_server = stack.enter_context(BackgroundServer(
            api.app, ssl_context=pki.server_context(pki.server("apiserver"),
                                                    verify_clients=False)))
        kubeconfig = tmp / "kubeconfig"
        kubeconfig.write_text(kubeconfig_text(api_server.url, pki.ca_pem, tokens["alice"],
                                              NAMESPACE))
        yield Stack(cluster, pki, api, api_server, kubelets, servers, dirs, kubeconfig,
                    tokens, pki.client(AGENT))


# ------------------------------------------------------------- real workloads
MAKE_CHECKPOINT = Path(__file__).resolve().parents[2] / "deploy" / "dev" / "make-checkpoint.sh"


class CannotCheckpoint(Exception):
    """This machine cannot make CRIU checkpoints (make-checkpoint.sh exited 77)."""


@dataclass(frozen=True)
class Workload:
    name: str  # podman container name
    id: str  # podman container id (full)
    pod: str
    namespace: str
    container: str


@contextmanager
def podman_workload(tmp: Path, name: str, *, pod: str, namespace: str, container: str,
                    mode: str = "miner") -> Iterator[Workload]:
    """A running podman container with the Kubernetes annotations, from the project's
    workload image: make-checkpoint.sh builds the image, proves CRIU works here (exit 77
    raises :class:`CannotCheckpoint`) and keeps its container, which is restored to run
    again. Removed on exit."""
    out = tmp / f"{name}-probe.tar"
    done = subprocess.run(["bash", str(MAKE_CHECKPOINT), "--keep", "--name", name, "--mode",
                           mode, "--pod", pod, "--namespace", namespace, "--container",
                           container, "--compress", "none", "-o", str(out)],
                          capture_output=True, text=True, timeout=900, check=False)
    try:
        if done.returncode == 77:
            lines = done.stderr.strip().splitlines()
            raise CannotCheckpoint(lines[-1] if lines else "make-checkpoint.sh exited 77")
        if done.returncode != 0:
            raise RuntimeError(f"make-checkpoint.sh failed: {done.stderr[-2000:]}")
        _podman("container", "restore", "--tcp-established", "--", name)
        cid = _podman("container", "inspect", "--format", "{{.Id}}", "--", name).strip()
        yield Workload(name, cid, pod, namespace, container)
    finally:
        subprocess.run([*PODMAN, "rm", "-f", "--time", "0", "--", name], capture_output=True,
                       check=False, timeout=120)
        out.unlink(missing_ok=True)


def _podman(*args: str) -> str:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, check=True,
                          timeout=300).stdout


@contextmanager
def workload_or_skip(tmp: Path, name: str, *, pod: str, namespace: str, container: str,
                     mode: str = "miner") -> Iterator[Workload]:
    """:func:`podman_workload`, or a skip that says why this machine cannot checkpoint."""
    try:
        with podman_workload(tmp, name, pod=pod, namespace=namespace, container=container,
                             mode=mode) as running:
            yield running
    except CannotCheckpoint as exc:
        pytest.skip(f"this machine cannot make CRIU checkpoints: {exc}")


@contextmanager
def stack_with(tmp: Path, *workloads: Workload, node: str = "node-1") -> Iterator[Stack]:
    """:func:`running_stack` knowing each workload's pod on ``node`` (its real container id)."""
    with running_stack(tmp) as running:
        for w in workloads:
            running.cluster.add_pod(Pod(w.namespace, w.pod, node,
                                        [Container(w.container, container_id=w.id)]))
        yield running
