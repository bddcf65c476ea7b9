"""The policy: parsing, matching, target extraction, and the packaged default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from forensics.orchestration.request import Target
from forensics.receiver.falco import parse_alert
from forensics.receiver.policy import Decision, PolicyError, load_policy, parse_policy
from forensics.receiver.targets import resolve_target
from tests.receiver.conftest import HOST, INTERNAL, NULLS, PAYMENTS, SHOP, UNKNOWN_POD, alert_json

ROOT = Path(__file__).resolve().parents[2]


def alert(name: str = SHOP, **changes: Any) -> Any:
    data = alert_json(name)
    fields = changes.pop("fields", None)
    if fields is not None:
        data["output_fields"] = data["output_fields"] | fields
    return parse_alert(data | changes)


def policy(*rules: dict[str, Any], **top: Any) -> Any:
    return parse_policy({"rules": list(rules), **top}, "test-policy")


def test_packaged_default_is_the_deploy_policy() -> None:
    shipped = ROOT / "deploy" / "policy" / "default-policy.yaml"
    packaged = ROOT / "forensics" / "receiver" / "default-policy.yaml"
    assert packaged.read_bytes() == shipped.read_bytes(), \
        "forensics/receiver/default-policy.yaml must be a copy of deploy/policy/default-policy.yaml"
    default, deployed = load_policy(), load_policy(shipped)
    assert (default.rules, default.default_action, default.guards) == (
        deployed.rules, deployed.default_action, deployed.guards)
    g = default.guards
    assert (g.dedup_window, g.cooldown, g.max_per_node, g.max_cluster, g.rate_per_minute) == (
        300, 900, 1, 4, 10)


@pytest.mark.parametrize(("name", "action", "rule"), [
    (SHOP, "capture", "high-value-rules"), (PAYMENTS, "capture", "high-value-rules"),
    (UNKNOWN_POD, "capture", "critical-workload-alerts"), (HOST, "ignore", "builtin:host"),
    (INTERNAL, "ignore", "builtin:internal"), (NULLS, "ignore", "builtin:unresolved")])
def test_default_policy_on_the_fixtures(name: str, action: str, rule: str) -> None:
    decision = load_policy().decide(alert(name))
    assert (decision.action, decision.rule) == (action, rule)
    assert Decision.from_dict(json.loads(json.dumps(decision.to_dict()))) == decision


def test_default_policy_never_freezes_system_namespaces() -> None:
    default = load_policy()
    for ns in ("kube-system", "falco", "csi", "kube-public"):
        decision = default.decide(alert(fields={"k8s.ns.name": ns}))
        assert decision.action == "notify-only" and decision.rule == "critical-system-alerts"
    quiet = default.decide(alert(fields={"k8s.ns.name": "kube-system"}, priority="Warning"))
    assert quiet.action == "ignore" and "no policy rule matched" in quiet.reasons[0]
    warning = default.decide(alert(priority="Warning", rule="Some other rule"))
    assert warning.action == "ignore"


def test_targets_from_output_fields() -> None:
    assert resolve_target(alert(SHOP), "kubernetes") == Target(
        backend="kubernetes", namespace="prod", pod="shop-frontend-7d9c6b5f4-x2x9q",
        container="web", node="worker-2", container_id="168eaa80e443")
    only_id = resolve_target(alert(UNKNOWN_POD), "kubernetes")
    assert isinstance(only_id, Target) and only_id.container == "" and \
        only_id.container_id == "ee97d9c4186f"
    assert resolve_target(alert(SHOP), "podman") == Target(
        backend="podman", container="web", container_id="168eaa80e443")
    by_id = resolve_target(alert(NULLS), "podman")
    assert by_id == Target(backend="podman", container="4f2a9c1e7b3d",
                           container_id="4f2a9c1e7b3d")


@pytest.mark.parametrize(("changes", "kind", "text"), [
    ({"source": "internal"}, "internal", "internal source"),
    ({"source": "k8saudit", "output_fields": {"ka.user.name": "admin"}}, "no-container",
     "source 'k8saudit' names no container"),
    ({"fields": {"container.id": "host"}}, "host", "host process"),
    ({"fields": {"k8s.ns.name": None}}, "unresolved", "k8s.ns.name null"),
    ({"fields": {"k8s.pod.name": "<NA>"}}, "unresolved", "k8s.pod.name null"),
    ({"fields": {"container.name": None, "container.id": None}}, "unresolved",
     "container.name and container.id"),
])
def test_unresolvable_alerts_never_capture(changes: dict[str, Any], kind: str,
                                           text: str) -> None:
    capture_all = policy({"name": "all", "action": "capture"})
    decision = capture_all.decide(alert(**changes))
    assert decision.action == "ignore" and decision.unresolved == kind
    assert decision.outcome == kind and text in decision.reasons[0]
    assert decision.target is None


def test_plugin_sources_that_name_a_container_can_capture() -> None:
    capture_all = policy({"name": "all", "action": "capture", "match": {"sources": ["*"]}})
    assert capture_all.decide(alert(source="docker")).action == "capture"


def test_match_conditions() -> None:
    p = policy(
        {"name": "glob", "match": {"rules": ["Drop and execute*"], "priority": "== Critical"},
         "action": "capture"},
        {"name": "tags", "match": {"tags": {"all": ["network", "process"],
                                            "none": ["host"]}}, "action": "notify-only"},
        {"name": "image", "match": {"fields": {"container.image.repository": ["docker.io/*"],
                                               "proc.pname": None}}, "action": "capture",
         "analyze": False},
        {"name": "ns", "match": {"namespaces": {"allow": ["team-*"], "deny": ["team-x"]},
                                 "priority": "< Warning"}, "action": "capture"},
        default_action="notify-only")
    assert p.decide(alert(SHOP)).rule == "glob"
    assert p.decide(alert(SHOP, priority="Emergency")).rule == "default"
    assert p.decide(alert(PAYMENTS)).rule == "tags"
    image = p.decide(alert(SHOP, rule="x", fields={"container.image.repository":
                                                   "docker.io/nginx", "proc.pname": None}))
    assert image.rule == "image" and image.analyze is False
    assert p.decide(alert(SHOP, rule="x", priority="Notice",
                          fields={"k8s.ns.name": "team-a"})).rule == "ns"
    denied = p.decide(alert(SHOP, rule="x", priority="Notice", fields={"k8s.ns.name": "team-x"}))
    assert denied.rule == "default" and "ns: namespace team-x denied" in denied.reasons[0]


@pytest.mark.parametrize(("data", "message"), [
    ({"rules": [{"name": "a", "action": "freeze"}]}, "'freeze' is not an action"),
    ({"rules": [{"action": "capture"}]}, "name is required"),
    ({"rules": [{"name": "a", "action": "ignore"}, {"name": "a", "action": "ignore"}]},
     "unique: a"),
    ({"rules": [{"name": "a", "action": "capture", "match": {"priority": ">= Severe"}}]},
     "not a Falco priority"),
    ({"rules": [{"name": "a", "action": "capture", "match": {"priority": "=> Critical"}}]},
     "not a priority threshold"),
    ({"rules": [{"name": "a", "action": "capture", "match": {"rule": ["x"]}}]},
     "unknown key(s) rule"),
    ({"rules": [{"name": "a", "action": "capture", "match": {"tags": {"some": ["x"]}}}]},
     "unknown key(s) some"),
    ({"rules": "x"}, "rules must be a list"),
    ({"version": 2}, "version 2 is not supported"),
    ({"guards": {"rate": "fast"}}, "not a rate"),
    ({"guards": {"cooldown": "soon"}}, "not a duration"),
    ({"guards": {"max_per_node": 0}}, "must be a whole number >= 1"),
    ({"guards": {"dedup": "5m"}}, "unknown key(s) dedup"),
    ([], "must be a mapping"),
])
def test_policy_errors_say_where(data: Any, message: str) -> None:
    with pytest.raises(PolicyError) as error:
        parse_policy(data, "my-policy.yaml")
    assert message in str(error.value) and str(error.value).startswith("my-policy.yaml")


def test_policy_file_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(bad)
    good = tmp_path / "good.yaml"
    good.write_text("rules:\n  - name: all\n    action: capture\nguards:\n  rate: 2/s\n"
                    "  dedup_window: 90\n")
    loaded = load_policy(good)
    assert loaded.guards.rate_per_minute == 120 and loaded.guards.dedup_window == 90
    assert loaded.guards.burst == 120
