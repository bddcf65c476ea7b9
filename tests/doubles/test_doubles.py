"""The doubles answer byte for byte what the real servers answer (raw HTTP, no csi code)."""

from __future__ import annotations

import json

import requests

from tests.doubles.cluster import APISERVER_KUBELET_USER
from tests.doubles.conftest import SHOP_POD
from tests.doubles.fixtures import AGENT, Stack
from tests.doubles.kubelet import CONTAINERD_OLD, CRIO_NO_CRIU, go_rfc3339

CKPT = f"/checkpoint/prod/{SHOP_POD}/web"


def api(stack: Stack, method: str, path: str, user: str | None = "alice") -> requests.Response:
    headers = {"Authorization": f"Bearer {stack.tokens[user]}"} if user else {}
    return requests.request(method, stack.api_server.url + path, headers=headers,
                            verify=str(stack.pki.ca_cert), timeout=30)


def kubelet(stack: Stack, path: str = CKPT, user: str | None = AGENT,
            method: str = "POST") -> requests.Response:
    headers = {"Authorization": f"Bearer {stack.tokens[user]}"} if user else {}
    return requests.request(method, stack.kubelet_servers["node-1"].url + path,
                            headers=headers, verify=str(stack.pki.ca_cert), timeout=30)


def test_api_unauthorized_and_forbidden_status_objects(stack: Stack) -> None:
    r = api(stack, "GET", f"/api/v1/namespaces/prod/pods/{SHOP_POD}", user=None)
    assert r.status_code == 401
    assert r.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure", "message": "Unauthorized",
                        "reason": "Unauthorized", "code": 401}
    r = api(stack, "POST", f"/api/v1/nodes/node-1/proxy{CKPT}", user="bob")
    assert r.status_code == 403
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.text == (
        '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":'
        '"nodes \\"node-1\\" is forbidden: User \\"bob\\" cannot create resource '
        '\\"nodes/proxy\\" in API group \\"\\" at the cluster scope","reason":"Forbidden",'
        '"details":{"name":"node-1","kind":"nodes"},"code":403}\n')


def test_api_objects_and_not_found(stack: Stack) -> None:
    pod = api(stack, "GET", f"/api/v1/namespaces/prod/pods/{SHOP_POD}").json()
    assert (pod["kind"], pod["metadata"]["name"], pod["spec"]["nodeName"]) == (
        "Pod", SHOP_POD, "node-1")
    assert pod["status"]["containerStatuses"][0]["containerID"].startswith("cri-o://")
    r = api(stack, "GET", "/api/v1/namespaces/prod/pods/nope")
    assert (r.status_code, r.json()["message"], r.json()["reason"]) == (
        404, 'pods "nope" not found', "NotFound")
    node = api(stack, "GET", "/api/v1/nodes/node-1").json()
    port = int(stack.kubelet_servers["node-1"].url.rsplit(":", 1)[1])
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == port
    r = api(stack, "POST", f"/api/v1/nodes/node-9/proxy{CKPT}")
    assert (r.status_code, r.json()["message"]) == (404, 'nodes "node-9" not found')


def test_proxy_passes_the_kubelet_answer_through(stack: Stack) -> None:
    stack.kubelets["node-1"].feature_gate = False
    r = api(stack, "POST", f"/api/v1/nodes/node-1/proxy{CKPT}")
    assert (r.status_code, r.text) == (404, "404 page not found\n")
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    stack.kubelets["node-1"].feature_gate = True
    r = api(stack, "POST", f"/api/v1/nodes/node-1/proxy{CKPT}")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    assert stack.kubelets["node-1"].requests[-1][2] == APISERVER_KUBELET_USER


def test_proxy_503_when_the_kubelet_is_down(stack: Stack) -> None:
    server = stack.kubelet_servers["node-1"]
    server.stop()
    r = api(stack, "POST", f"/api/v1/nodes/node-1/proxy{CKPT}")
    assert r.status_code == 503
    assert r.json()["reason"] == "ServiceUnavailable"
    assert r.json()["message"] == (f"error trying to reach service: dial tcp 127.0.0.1:"
                                   f"{server.port}: connect: connection refused")
    server.start()
    assert api(stack, "POST", f"/api/v1/nodes/node-1/proxy{CKPT}").status_code == 200


def test_kubelet_error_bodies(stack: Stack) -> None:
    double = stack.kubelets["node-1"]
    assert (kubelet(stack, user=None).status_code, kubelet(stack, user=None).text) == (
        401, "Unauthorized")
    r = kubelet(stack, user="mallory")
    assert (r.status_code, r.text) == (403, "Forbidden (user=mallory, verb=create, "
                                       "resource=nodes, subresource(s)=[checkpoint])")
    assert kubelet(stack, "/checkpoint/prod/nope/web").text == "pod does not exist"
    r = kubelet(stack, f"/checkpoint/prod/{SHOP_POD}/db")
    assert (r.status_code, r.text) == (404, "container db does not exist")
    r = kubelet(stack, CKPT + "?timeout=5&timeout=soon")
    assert (r.status_code, r.text) == (404, "cannot parse value of timeout parameter")
    assert kubelet(stack, CKPT + "?timeout=soon&timeout=5").status_code == 200
    double.cri_error = CRIO_NO_CRIU
    r = kubelet(stack)
    assert (r.status_code, r.text) == (500, f"checkpointing of prod/{SHOP_POD}/web failed "
                                       f"({CRIO_NO_CRIU})")
    double.cri_error = CONTAINERD_OLD
    assert CONTAINERD_OLD in kubelet(stack).text
    double.feature_gate = False
    r = kubelet(stack, user=None)  # no route: 404 before any authentication
    assert (r.status_code, r.text) == (404, "404 page not found\n")


def test_kubelet_success_and_client_certificates(stack: Stack) -> None:
    pair = stack.agent_cert
    assert pair is not None
    r = requests.post(stack.kubelet_servers["node-1"].url + CKPT, timeout=30,
                      verify=str(stack.pki.ca_cert), cert=(str(pair.cert), str(pair.key)))
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    (path,) = json.loads(r.text)["items"]
    assert r.text == json.dumps({"items": [path]}, separators=(",", ":"))
    assert path.startswith(f"{stack.checkpoint_dirs['node-1']}/checkpoint-{SHOP_POD}_prod-web-")
    assert path.endswith("Z.tar")
    assert stack.kubelets["node-1"].requests[-1][2] == AGENT


def test_go_rfc3339() -> None:
    from datetime import UTC, datetime, timedelta, timezone
    assert go_rfc3339(datetime(2026, 11, 22, 7, 9, 54, tzinfo=UTC)) == "2026-11-22T07:09:54Z"
    assert go_rfc3339(datetime(2026, 11, 22, 7, 9, 54, tzinfo=timezone(-timedelta(
        hours=5, minutes=30)))) == "2026-11-22T07:09:54-05:30"
