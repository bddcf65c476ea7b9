"""Issue 11 item 1: option injection through alert fields.

An alert whose ``container.name`` was ``--latest`` (or ``-l``) made csi run
``podman container checkpoint … --latest``: podman checkpointed *another*
container and csi filed a signed report on it under that alert; ``-l`` also
escaped the per-container cooldown (its key was ``podman/-l``), ``--help``
crashed the capture. Names and ids are now checked at the receiver: such an
alert is ``unresolved`` with the reason and never becomes a capture.

These tests talk to a real receiver over HTTP on 127.0.0.1 (the capture
pipeline recorded by :class:`Recorder`); the same attack against real podman,
with a bystander container and the real pipeline, is in
:mod:`tests.receiver.test_option_injection_podman`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from forensics.names import (
    container_id_problem,
    container_problem,
    namespace_problem,
    pod_problem,
    podman_ref_problem,
)
from forensics.orchestration.request import Backend
from forensics.receiver.config import ServeConfig
from forensics.receiver.falco import parse_alert
from forensics.receiver.targets import Unresolved, resolve_target
from tests.receiver.conftest import SHOP, Recorder, ServerThread, alert_json, auth_headers

OPTION = "starts with '-' (it would be read as an option)"
LABEL = "is not an RFC 1123 label (lowercase letters, digits and inner '-')"
SUBDOMAIN = ("is not a DNS-1123 subdomain (lowercase letters, digits, inner '-', labels "
             "joined by '.')")
PODMAN = "is not a podman container name or id ([a-zA-Z0-9][a-zA-Z0-9_.-]*)"


def hostile(rule: str = "", hostname: str | None = None, **fields: Any) -> bytes:
    """The shop fixture alert with some output fields (dotted names as ``_``) replaced."""
    data = alert_json(SHOP)
    data["output_fields"].update({k.replace("_", "."): v for k, v in fields.items()})
    if rule:
        data["rule"] = rule
    if hostname is not None:
        data["hostname"] = hostname
    return json.dumps(data).encode()


def post(server: ServerThread, body: bytes) -> dict[str, Any]:
    reply = requests.post(server.url + "/falco", data=body, headers=auth_headers(), timeout=10)
    assert reply.status_code == 202, reply.text
    return dict(reply.json())


def outcome(server: ServerThread, alert_id: str) -> dict[str, Any]:
    return dict(requests.get(f"{server.url}/api/v1/alerts/{alert_id}", headers=auth_headers(),
                             timeout=10).json())


def captures(server: ServerThread) -> list[dict[str, Any]]:
    data = requests.get(server.url + "/api/v1/captures", headers=auth_headers(),
                        timeout=10).json()
    return list(data["captures"])


@pytest.fixture
def podman_server(base_config: ServeConfig, recorder: Recorder) -> Iterator[ServerThread]:
    with ServerThread(replace(base_config, backend="podman"), run_capture=recorder) as srv:
        yield srv


def assert_unresolved(server: ServerThread, body: bytes, reason: str) -> None:
    answer = post(server, body)
    assert (answer["decision"], answer["policy_rule"]) == ("ignore", "builtin:unresolved")
    assert answer["reasons"][0] == reason
    server.settled()
    settled = outcome(server, answer["id"])
    assert (settled["state"], settled["outcome"], settled["capture_id"]) == (
        "settled", "unresolved", None)


@pytest.mark.parametrize(("name", "reason"), [
    ("--latest", f"unresolved target: container.name '--latest' {OPTION}"),
    ("-l", f"unresolved target: container.name '-l' {OPTION}"),
    ("--help", f"unresolved target: container.name '--help' {OPTION}"),
    ("web\n2026-12-03 INFO forged", "unresolved target: container.name 'web\\n2026-12-03 INFO "
     f"forged' {PODMAN}"),
    ("a/../b", f"unresolved target: container.name 'a/../b' {PODMAN}"),
])
def test_alert_container_name_latest_is_unresolved_for_podman(
        podman_server: ServerThread, recorder: Recorder, name: str, reason: str) -> None:
    assert_unresolved(podman_server, hostile(container_name=name), reason)
    assert recorder.requests == []
    assert captures(podman_server) == []


def test_alert_container_id_option_is_unresolved_for_podman(
        podman_server: ServerThread, recorder: Recorder) -> None:
    assert_unresolved(podman_server, hostile(container_name=None, container_id="--latest"),
                      f"unresolved target: container.id '--latest' {OPTION}")
    assert recorder.requests == []


@pytest.mark.parametrize(("fields", "hostname", "reason"), [
    ({"container_name": "--latest"}, None,
     f"unresolved target: container.name '--latest' {OPTION}"),
    ({"container_name": "-l"}, None, f"unresolved target: container.name '-l' {OPTION}"),
    ({"k8s_pod_name": ".."}, None, f"unresolved target: k8s.pod.name '..' {SUBDOMAIN}"),
    ({"k8s_pod_name": "x/../../../nodes/node-1/proxy/pods"}, None,
     f"unresolved target: k8s.pod.name 'x/../../../nodes/node-1/proxy/pods' {SUBDOMAIN}"),
    ({"k8s_ns_name": "--all-namespaces"}, None,
     f"unresolved target: k8s.ns.name '--all-namespaces' {OPTION}"),
    ({"k8s_ns_name": "Prod"}, None, f"unresolved target: k8s.ns.name 'Prod' {LABEL}"),
    ({"container_name": "web?timeout=1"}, None,
     f"unresolved target: container.name 'web?timeout=1' {LABEL}"),
    ({"container_id": "../../x"}, None, "unresolved target: container.id '../../x' is not 12 "
     "to 64 hex digits"),
    ({}, "evil.example:443/#", f"unresolved target: hostname (the node) "
     f"'evil.example:443/#' {SUBDOMAIN}"),
])
def test_alert_kubernetes_names_that_kubernetes_refuses_are_unresolved(
        server: ServerThread, recorder: Recorder, fields: dict[str, str], hostname: str | None,
        reason: str) -> None:
    assert_unresolved(server, hostile(hostname=hostname, **fields), reason)
    assert recorder.requests == []
    assert captures(server) == []


def test_alert_container_name_l_cannot_bypass_the_cooldown(
        podman_server: ServerThread, recorder: Recorder) -> None:
    first = post(podman_server, hostile(container_name="web"))
    assert first["decision"] == "capture"
    podman_server.settled()
    # the same container again, as "-l" (podman's --latest): once a new key, so a new capture
    assert_unresolved(podman_server, hostile(rule="Another rule", container_name="-l"),
                      f"unresolved target: container.name '-l' {OPTION}")
    assert [r.target.key() for r in recorder.requests] == ["podman/web"]
    assert [c["target"]["container"] for c in captures(podman_server)] == ["web"]


FIELD_VALUES = (st.none() | st.integers() | st.text(max_size=40)
                | st.sampled_from(["--latest", "-l", "--help", "..", "web", "a/b", "x\ny",
                                   "168eaa80e443", "containerd://-l", " -l", "<NA>", "host"]))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(name=FIELD_VALUES, cid=FIELD_VALUES, pod=FIELD_VALUES, ns=FIELD_VALUES,
       hostname=st.text(max_size=40) | st.sampled_from(["worker-1", "-l", "a/../b"]),
       backend=st.sampled_from(["kubernetes", "podman"]))
def test_every_target_from_any_alert_fields_is_safe_to_hand_on(
        name: object, cid: object, pod: object, ns: object, hostname: str,
        backend: Backend) -> None:
    data = alert_json(SHOP)
    data["hostname"] = hostname
    data["output_fields"].update({"container.name": name, "container.id": cid,
                                  "k8s.pod.name": pod, "k8s.ns.name": ns})
    target = resolve_target(parse_alert(data), backend)
    if isinstance(target, Unresolved):
        assert target.reason.isprintable() and target.reason.startswith(
            ("unresolved target: ", "host process"))
        return
    values = [target.container, target.container_id, target.namespace, target.pod, target.node]
    for value in values:
        assert not value.startswith("-") and "/" not in value.rpartition("://")[2]
        assert value.isprintable() and value not in (".", "..")
    if backend == "podman":
        assert podman_ref_problem(target.container) == ""
    else:
        assert namespace_problem(target.namespace) == pod_problem(target.pod) == ""
        assert not target.container or container_problem(target.container) == ""
    assert not target.container_id or container_id_problem(target.container_id) == ""
