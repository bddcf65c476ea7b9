"""The kubelet checkpoint client through the API server proxy and directly, against the
doubles: every answer maps to its typed error; retries; path checks.

Checkpoints here replay a real archive (tests/data) so that these run where CRIU cannot;
test_kubelet_podman.py takes real checkpoints of a running container.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from forensics.archive.checkpoint import Checkpoint
from forensics.capture.errors import (
    ApiServerUnreachable,
    BadCheckpointPath,
    BadTimeout,
    CaptureError,
    CheckpointFailed,
    ContainerNotFound,
    CriuUnavailable,
    FeatureGateOff,
    NodeNotFound,
    NodeUnreachable,
    PodNotFound,
    RbacDenied,
    RuntimeUnsupported,
    Unauthorized,
    UnexpectedAnswer,
)
from forensics.capture.kube import connect
from forensics.capture.kubelet import (
    ApiServerProxy,
    KubeletClient,
    KubeletDirect,
    RetryPolicy,
    Transport,
    parse_checkpoint_path,
)
from tests.doubles.cluster import APISERVER_KUBELET_USER, Container, Pod
from tests.doubles.fixtures import Stack, running_stack
from tests.doubles.kubelet import CONTAINERD_OLD, CRIO_NO_CRIU, ReplayCheckpointer

DATA = Path(__file__).resolve().parents[1] / "data" / "checkpoints"
SHOP = DATA / "checkpoint-shop-frontend-7d9c6b5f4-x2x9q_prod-web-2026-11-22T07:09:54Z.tar"
POD = "shop-frontend-7d9c6b5f4-x2x9q"
TRANSPORTS = ["proxy", "direct"]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, checkpointer=ReplayCheckpointer(SHOP)) as running:
        running.cluster.add_pod(Pod("prod", POD, "node-1", [Container("web")]))
        yield running


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(stack: Stack, via: str, *, user: str = "alice", attempts: int = 4,
           transport: Transport | None = None, **kw: object) -> KubeletClient:
    if transport is None:
        transport = ApiServerProxy(stack.connect(user)) if via == "proxy" else stack.direct()
    return KubeletClient(transport, retry=RetryPolicy(attempts=attempts, base_delay=0.01),
                         checkpoint_dir=str(stack.checkpoint_dirs["node-1"]), sleep=Sleeps(),
                         rng=random.Random(7), **kw)  # type: ignore[arg-type]


def take(c: KubeletClient, container: str = "web", pod: str = POD, node: str = "node-1",
         timeout_s: int | None = None) -> object:
    return c.checkpoint(node, "prod", pod, container, timeout_s)


# ------------------------------------------------------------ success
@pytest.mark.parametrize("via", TRANSPORTS)
def test_checkpoint_written_and_parsed(stack: Stack, via: str) -> None:
    c = client(stack, via)
    before = datetime.now(UTC).replace(microsecond=0)
    result = c.checkpoint("node-1", "prod", POD, "web", timeout_s=30)
    assert Path(result.path_on_node).is_file()
    assert Path(result.path_on_node).parent == stack.checkpoint_dirs["node-1"]
    assert (result.node, result.namespace, result.pod, result.container, result.attempts) == (
        "node-1", "prod", POD, "web", 1)
    assert result.transport == ("apiserver-proxy" if via == "proxy" else "kubelet")
    assert before <= result.written_at <= datetime.now(UTC)
    assert result.requested_at.tzinfo is UTC and 0 < result.duration < 30
    method, raw, _ = stack.kubelets["node-1"].requests[-1]
    assert (method, raw) == ("POST", f"/checkpoint/prod/{POD}/web?timeout=30")
    with Checkpoint(result.path_on_node) as ckpt:
        k = ckpt.kubernetes
        assert (k.pod, k.namespace, k.container) == (POD, "prod", "web")


def test_offset_time_in_the_name(stack: Stack) -> None:
    stack.kubelets["node-1"].set_offset(-5)
    result = client(stack, "direct").checkpoint("node-1", "prod", POD, "web")
    assert result.path_on_node.endswith("-05:00.tar")
    assert result.written_at.utcoffset() == timedelta(hours=-5)
    assert stack.kubelets["node-1"].requests[-1][1] == f"/checkpoint/prod/{POD}/web"


# ------------------------------------------------------------ kubelet answers
@pytest.mark.parametrize("via", TRANSPORTS)
def test_feature_gate_off(stack: Stack, via: str) -> None:
    stack.kubelets["node-1"].feature_gate = False
    with pytest.raises(FeatureGateOff) as err:
        take(client(stack, via))
    assert "the ContainerCheckpoint feature gate is off on node node-1 (Kubernetes < 1.30?)" \
        in str(err.value)
    assert (err.value.status, err.value.body, err.value.attempts) == (
        404, "404 page not found\n", 1)
    assert err.value.permanent


@pytest.mark.parametrize("via", TRANSPORTS)
def test_pod_and_container_unknown_to_the_kubelet(stack: Stack, via: str) -> None:
    with pytest.raises(PodNotFound) as err:
        take(client(stack, via), pod="gone-0")
    assert str(err.value).startswith("pod prod/gone-0 does not exist on node node-1")
    assert err.value.body == "pod does not exist"
    with pytest.raises(ContainerNotFound) as cerr:
        take(client(stack, via), container="db")
    assert str(cerr.value).startswith(f"container db does not exist in pod prod/{POD}: the "
                                      "kubelet on node node-1 does not know it")
    assert cerr.value.status == 404


@pytest.mark.parametrize("via", TRANSPORTS)
def test_timeout_checked_before_sending_and_kubelet_answer_mapped(stack: Stack,
                                                                  via: str) -> None:
    c = client(stack, via)
    for bad in (0, -5, "30", 2.5, True):
        with pytest.raises(BadTimeout, match="cannot parse the timeout"):
            c.checkpoint("node-1", "prod", POD, "web", bad)  # type: ignore[arg-type]
    assert stack.kubelets["node-1"].requests == []
    stack.kubelets["node-1"].fail_next(1, 404, "cannot parse value of timeout parameter")
    with pytest.raises(BadTimeout) as err:
        take(c, timeout_s=10)
    assert (err.value.status, err.value.attempts) == (404, 1)


@pytest.mark.parametrize("via", TRANSPORTS)
def test_cri_errors(stack: Stack, via: str) -> None:
    double = stack.kubelets["node-1"]
    double.cri_error = CRIO_NO_CRIU
    with pytest.raises(CriuUnavailable) as err:
        take(client(stack, via))
    assert "CRI-O on node node-1 has no CRIU" in str(err.value)
    assert "enable_criu_support = true" in str(err.value)
    assert err.value.cri_error == CRIO_NO_CRIU and err.value.status == 500
    double.cri_error = CONTAINERD_OLD
    with pytest.raises(RuntimeUnsupported) as rerr:
        take(client(stack, via))
    assert "containerd on node node-1 is older than 2.0" in str(rerr.value)
    double.cri_error = "rpc error: code = Unknown desc = criu failed: type DUMP errno 0"
    with pytest.raises(CheckpointFailed) as ferr:
        take(client(stack, via))
    assert type(ferr.value) is CheckpointFailed and ferr.value.permanent
    assert str(ferr.value).startswith(f"checkpoint of prod/{POD}/web on node node-1 failed: "
                                      "rpc error: code = Unknown desc = criu failed")
    assert ferr.value.attempts == 1


def test_cri_deadline_is_retried(stack: Stack) -> None:
    stack.kubelets["node-1"].cri_error = ("rpc error: code = DeadlineExceeded desc = context "
                                          "deadline exceeded")
    c = client(stack, "proxy", attempts=3)
    with pytest.raises(CheckpointFailed) as err:
        take(c)
    assert not err.value.permanent and err.value.attempts == 3
    assert "gave up after 3 attempts" in str(err.value)
    assert len(stack.kubelets["node-1"].requests) == 3


# ------------------------------------------------------------ authentication, RBAC
def test_unauthorized_at_the_api_server(stack: Stack) -> None:
    kube = connect(str(stack.write_kubeconfig("ghost", token="expired")))
    with pytest.raises(Unauthorized) as err:
        take(client(stack, "proxy", transport=ApiServerProxy(kube)))
    assert str(err.value).startswith(f"the API server at {stack.api_server.url} rejected the "
                                     "credentials of context 'doubles' (401 Unauthorized)")
    assert err.value.attempts == 1 and stack.kubelets["node-1"].requests == []


def test_unauthorized_at_the_kubelet(stack: Stack) -> None:
    with pytest.raises(Unauthorized) as err:
        take(client(stack, "direct", transport=stack.direct(user="nobody",
                                                            certificate=False)))
    assert str(err.value).startswith("the kubelet on node node-1 rejected csi's credentials "
                                     "(401 Unauthorized)")
    assert err.value.body == "Unauthorized"


def test_rbac_nodes_proxy_missing_for_the_caller(stack: Stack) -> None:
    with pytest.raises(RbacDenied) as err:
        take(client(stack, "proxy", user="bob"))
    e = err.value
    assert (e.user, e.verb, e.rule, e.apiserver_identity, e.status) == (
        "bob", "create", "nodes/proxy", False, 403)
    assert 'user "bob" cannot create resource "nodes/proxy"' in str(e)
    assert '"kind":"Status"' in e.body


def test_rbac_nodes_checkpoint_missing_for_the_apiserver_identity(stack: Stack) -> None:
    stack.cluster.revoke(APISERVER_KUBELET_USER, "create", "nodes/checkpoint")
    with pytest.raises(RbacDenied) as err:
        take(client(stack, "proxy"))
    e = err.value
    assert (e.user, e.rule, e.apiserver_identity) == (APISERVER_KUBELET_USER,
                                                      "nodes/checkpoint", True)
    assert str(e).startswith("the kubelet on node node-1 denied the API server's "
                             "kubelet-client identity 'kube-apiserver-kubelet-client'")
    assert e.body == (f"Forbidden (user={APISERVER_KUBELET_USER}, verb=create, "
                      "resource=nodes, subresource(s)=[checkpoint])")


def test_rbac_nodes_checkpoint_missing_directly(stack: Stack) -> None:
    with pytest.raises(RbacDenied) as err:
        take(client(stack, "direct", transport=stack.direct(user="mallory",
                                                            certificate=False)))
    e = err.value
    assert (e.user, e.rule, e.apiserver_identity) == ("mallory", "nodes/checkpoint", False)
    assert str(e).startswith("the kubelet on node node-1 denied 'mallory': mallory lacks "
                             "create on nodes/checkpoint")


# ------------------------------------------------------------ nodes, reachability, retries
def test_unknown_node_through_the_proxy(stack: Stack) -> None:
    with pytest.raises(NodeNotFound, match="node node-9 not found"):
        take(client(stack, "proxy"), node="node-9")


@pytest.mark.parametrize("via", TRANSPORTS)
def test_kubelet_down_is_retried_then_reported(stack: Stack, via: str) -> None:
    server = stack.kubelet_servers["node-1"]
    server.stop()
    c = client(stack, via, attempts=3)
    with pytest.raises(NodeUnreachable) as err:
        take(c)
    e = err.value
    assert not e.permanent and e.attempts == 3
    assert str(e).startswith("the kubelet on node node-1 cannot be reached")
    assert "gave up after 3 attempts" in str(e)
    if via == "proxy":
        assert e.status == 503
        assert f"dial tcp 127.0.0.1:{server.port}: connect: connection refused" in str(e)
    assert isinstance(c.sleep, Sleeps) and len(c.sleep) == 2


@pytest.mark.parametrize("via", TRANSPORTS)
def test_two_503_then_success(stack: Stack, via: str) -> None:
    stack.kubelets["node-1"].fail_next(2, 503)
    c = client(stack, via)
    result = c.checkpoint("node-1", "prod", POD, "web")
    assert result.attempts == 3
    assert len(stack.kubelets["node-1"].requests) == 3
    assert isinstance(c.sleep, Sleeps) and len(c.sleep) == 2


@pytest.mark.parametrize("via", TRANSPORTS)
def test_permanent_error_is_not_retried(stack: Stack, via: str) -> None:
    stack.kubelets["node-1"].cri_error = CRIO_NO_CRIU
    c = client(stack, via)
    with pytest.raises(CriuUnavailable) as err:
        take(c)
    assert err.value.attempts == 1
    assert len(stack.kubelets["node-1"].requests) == 1
    assert isinstance(c.sleep, Sleeps) and c.sleep == []


@pytest.mark.parametrize("via", TRANSPORTS)
def test_slow_kubelet_times_out_and_is_retried(stack: Stack, via: str) -> None:
    stack.kubelets["node-1"].delay_s = 1.0
    with pytest.raises(NodeUnreachable) as err:
        take(client(stack, via, attempts=2, read_timeout=0.3))
    assert err.value.attempts == 2 and not err.value.permanent


def test_other_statuses(stack: Stack) -> None:
    stack.kubelets["node-1"].fail_next(1, 429, "too many requests")
    assert client(stack, "direct").checkpoint("node-1", "prod", POD, "web").attempts == 2
    stack.kubelets["node-1"].fail_next(1, 418, "teapot")
    with pytest.raises(UnexpectedAnswer, match="answered HTTP 418: teapot") as err:
        take(client(stack, "direct"))
    assert err.value.permanent


def test_retry_policy_delays() -> None:
    policy = RetryPolicy(attempts=6, base_delay=1.0, max_delay=5.0)
    rng = random.Random(1)
    for attempt, cap in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (5, 5.0)]:
        for _ in range(20):
            assert cap / 2 <= policy.delay(attempt, rng) <= cap


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_options(stack: Stack) -> None:
    assert client(stack, "direct", transport=stack.direct(insecure=True)).checkpoint(
        "node-1", "prod", POD, "web").attempts == 1
    unverified = KubeletDirect(stack.kubelet_servers["node-1"].url, token="x")
    with pytest.raises(CaptureError, match="TLS with the kubelet on node node-1 failed") as err:
        take(client(stack, "direct", transport=unverified))
    assert err.value.permanent and err.value.attempts == 1


# ------------------------------------------------------------ archive paths
def test_path_outside_the_checkpoint_dir_is_refused(stack: Stack) -> None:
    double = stack.kubelets["node-1"]
    for reported, why in [("/var/lib/kubelet/checkpoints", "not directly in the checkpoint "
                           "directory"), (f"{double.checkpoint_dir}/../../etc", "not a "
                           "normalized path")]:
        double.reported_dir = reported
        with pytest.raises(BadCheckpointPath, match=why) as err:
            take(client(stack, "proxy"))
        assert err.value.permanent and err.value.attempts == 1


def test_parse_checkpoint_path() -> None:
    d = "/var/lib/kubelet/checkpoints"
    p = parse_checkpoint_path(f"{d}/checkpoint-payments-api-5b8f7c9d8-qq7lm_payments-api-"
                              "2026-11-22T07:10:28Z.tar", "payments", "payments-api-5b8f7c9d8-"
                              "qq7lm", "api")
    assert (p.directory, p.pod, p.namespace, p.container) == (
        d, "payments-api-5b8f7c9d8-qq7lm", "payments", "api")
    assert p.time == datetime(2026, 11, 22, 7, 10, 28, tzinfo=UTC)
    q = parse_checkpoint_path(f"{d}/checkpoint-w_ns-c-2026-11-22T09:10:28.5+02:00.tar", "ns",
                              "w", "c")
    assert q.time == datetime(2026, 11, 22, 9, 10, 28, 500000,
                              tzinfo=timezone(timedelta(hours=2)))
    bad = {
        "checkpoint-w_ns-c-2026-11-22T07:10:28Z.tar": "not an absolute path",
        f"{d}/../checkpoint-w_ns-c-2026-11-22T07:10:28Z.tar": "not a normalized path",
        f"{d}//checkpoint-w_ns-c-2026-11-22T07:10:28Z.tar": "not a normalized path",
        "/tmp/checkpoint-w_ns-c-2026-11-22T07:10:28Z.tar": "not directly in",
        f"{d}/sub/checkpoint-w_ns-c-2026-11-22T07:10:28Z.tar": "not directly in",
        f"{d}/checkpoint-w_ns-other-2026-11-22T07:10:28Z.tar": "does not match",
        f"{d}/checkpoint-w_ns-c-2026-11-22T07:10:28Z.tar.gz": "does not match",
        f"{d}/checkpoint-w_ns-c-2026-11-22 07:10:28.tar": "is not an RFC 3339 time",
        f"{d}/checkpoint-w_ns-c-yesterday.tar": "is not an RFC 3339 time",
    }
    for path, why in bad.items():
        with pytest.raises(ValueError, match=why):
            parse_checkpoint_path(path, "ns", "w", "c")


def test_api_server_down_is_retried_then_reported(stack: Stack) -> None:
    c = client(stack, "proxy", attempts=2)
    assert c.checkpoint("node-1", "prod", POD, "web").attempts == 1  # a pooled connection
    stack.api_server.stop()
    with pytest.raises(ApiServerUnreachable) as err:
        take(c)
    assert not err.value.permanent and err.value.attempts == 2
    assert str(err.value).startswith(f"cannot reach the Kubernetes API server at "
                                     f"{stack.api_server.url}: [Errno 111] Connection refused")


def test_direct_url_from_the_node_object(stack: Stack) -> None:
    with stack.connect() as kube:
        url = kube.kubelet_url("node-1")
        assert url == stack.kubelet_servers["node-1"].url
        pair = stack.agent_cert
        assert pair is not None
        direct = KubeletDirect(kube.kubelet_url, client_cert=str(pair.cert),
                               client_key=str(pair.key), ca_bundle=str(stack.pki.ca_cert))
        assert client(stack, "direct", transport=direct).checkpoint(
            "node-1", "prod", POD, "web").transport == "kubelet"
