"""forensics.names: the names and ids csi accepts from alerts, responders and Argo."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forensics.errors import UsageError
from forensics.names import (
    InvalidName,
    container_id_problem,
    container_problem,
    namespace_problem,
    node_problem,
    pod_problem,
    podman_name_problem,
    podman_ref_problem,
    require,
    require_k8s,
    shown,
)

LABEL_RULE = "an RFC 1123 label (lowercase letters, digits and inner '-')"
SUBDOMAIN_RULE = ("a DNS-1123 subdomain (lowercase letters, digits, inner '-', labels joined "
                  "by '.')")
PODMAN_RULE = "a podman container name or id ([a-zA-Z0-9][a-zA-Z0-9_.-]*)"
OPTION = "starts with '-' (it would be read as an option)"
HEX = "0123456789abcdef" * 4  # 64 hex digits

ACCEPTED = {
    namespace_problem: ["prod", "kube-system", "a", "0", "a" * 63, "ns-0-x"],
    pod_problem: ["shop-frontend-7d9c6b5f4-x2x9q", "a.b.c", "web-0", "x" * 253,
                  ".".join(["a" * 63] * 3) + "." + "b" * 61],
    container_problem: ["web", "api", "istio-proxy", "c" * 63],
    node_problem: ["node-1", "worker-2", "ip-10-0-1-5.eu-west-1.compute.internal"],
    podman_name_problem: ["web", "My_Ctr.1", "csi-e2e-0-abc", "a", "0", "A-", "a" * 253,
                          HEX],
    container_id_problem: [HEX[:12], HEX, "containerd://" + HEX, "cri-o://" + HEX[:12],
                           "docker://" + HEX, HEX.upper()[:20]],
    podman_ref_problem: ["web", HEX[:12], HEX, "Name.With_Under-score"],
}


@pytest.mark.parametrize(("check", "value"), [(c, v) for c, vs in ACCEPTED.items() for v in vs])
def test_valid_names_are_accepted(check: object, value: str) -> None:
    assert check(value) == ""  # type: ignore[operator]


@pytest.mark.parametrize(("check", "value", "reason"), [
    # option injection: what made podman checkpoint another container (issue 11 item 1)
    (podman_name_problem, "--latest", f"podman container name '--latest' {OPTION}"),
    (podman_name_problem, "-l", f"podman container name '-l' {OPTION}"),
    (podman_name_problem, "--help", f"podman container name '--help' {OPTION}"),
    (podman_ref_problem, "--latest", f"podman container name or id '--latest' {OPTION}"),
    (container_problem, "--latest", f"container name '--latest' {OPTION}"),
    (namespace_problem, "-n", f"namespace '-n' {OPTION}"),
    (pod_problem, "--all", f"pod name '--all' {OPTION}"),
    (node_problem, "-node", f"node name '-node' {OPTION}"),
    (container_id_problem, "--latest", f"container id '--latest' {OPTION}"),
    # URL path parts: never "..", "/" or "?"
    (pod_problem, "..", f"pod name '..' is not {SUBDOMAIN_RULE}"),
    (namespace_problem, "..", f"namespace '..' is not {LABEL_RULE}"),
    (pod_problem, "a/../../nodes", f"pod name 'a/../../nodes' is not {SUBDOMAIN_RULE}"),
    (container_problem, "web?timeout=1", f"container name 'web?timeout=1' is not {LABEL_RULE}"),
    (node_problem, "evil.com:80/x", f"node name 'evil.com:80/x' is not {SUBDOMAIN_RULE}"),
    (podman_name_problem, "a/b", f"podman container name 'a/b' is not {PODMAN_RULE}"),
    (podman_name_problem, ".hidden", f"podman container name '.hidden' is not {PODMAN_RULE}"),
    # control characters and other hostile code points are shown as escapes
    (podman_name_problem, "web\n2026 forged log line",
     f"podman container name 'web\\n2026 forged log line' is not {PODMAN_RULE}"),
    (container_problem, "web\x1b[2J", f"container name 'web\\x1b[2J' is not {LABEL_RULE}"),
    (pod_problem, "p\u202eod", f"pod name 'p\\u202eod' is not {SUBDOMAIN_RULE}"),
    (namespace_problem, "pr\x00od", f"namespace 'pr\\x00od' is not {LABEL_RULE}"),
    # what Kubernetes itself refuses
    (namespace_problem, "Prod", f"namespace 'Prod' is not {LABEL_RULE}"),
    (namespace_problem, "a.b", f"namespace 'a.b' is not {LABEL_RULE}"),
    (namespace_problem, "a-", f"namespace 'a-' is not {LABEL_RULE}"),
    (namespace_problem, "a" * 64, f"namespace {'a' * 64!r} is longer than 63 characters"),
    (container_problem, "web_1", f"container name 'web_1' is not {LABEL_RULE}"),
    (pod_problem, "a..b", f"pod name 'a..b' is not {SUBDOMAIN_RULE}"),
    (pod_problem, "x" * 254, f"pod name {'x' * 80!r}… (254 characters) is longer than 253 "
     "characters"),
    (node_problem, "Worker-1", f"node name 'Worker-1' is not {SUBDOMAIN_RULE}"),
    (pod_problem, "", "pod name is empty"),
    (podman_name_problem, "", "podman container name is empty"),
    (podman_name_problem, "a" * 254, f"podman container name {'a' * 80!r}… (254 characters) "
     "is longer than 253 characters"),
    (podman_name_problem, "web ctr", f"podman container name 'web ctr' is not {PODMAN_RULE}"),
    (podman_name_problem, None, "podman container name is not text but NoneType"),
    (namespace_problem, 7, "namespace is not text but int"),
    # container ids
    (container_id_problem, HEX[:11], f"container id {HEX[:11]!r} is not 12 to 64 hex digits"),
    (container_id_problem, HEX + "0", f"container id {HEX + '0'!r} is longer than 64 "
     "characters"),
    (container_id_problem, HEX[:11] + "g", f"container id {HEX[:11] + 'g'!r} is not 12 to 64 "
     "hex digits"),
    (container_id_problem, "host", "container id 'host' is not 12 to 64 hex digits"),
    (container_id_problem, "cri-o://", "container id 'cri-o://' has nothing after its prefix"),
    (container_id_problem, "containerd://--latest",
     f"container id 'containerd://--latest' {OPTION}"),
    (container_id_problem, "podman://" + HEX[:12], f"container id {'podman://' + HEX[:12]!r} "
     "is not 12 to 64 hex digits"),
])
def test_hostile_names_are_refused_with_a_visible_reason(check: object, value: object,
                                                         reason: str) -> None:
    assert check(value) == reason  # type: ignore[operator]


def test_require_raises_a_usage_error_naming_the_value() -> None:
    assert require(podman_name_problem, "podman container name", "web") == "web"
    with pytest.raises(InvalidName) as caught:
        require(podman_name_problem, "podman container name", "--latest")
    assert isinstance(caught.value, UsageError) and caught.value.exit_code == 2
    assert str(caught.value) == (f"podman container name '--latest' {OPTION} (csi takes only "
                                 "a valid podman container name; check where this value "
                                 "came from)")


def test_require_k8s_checks_only_what_is_given() -> None:
    require_k8s(namespace="prod", pod="p-0", container="web", node="node-1",
                container_id="cri-o://" + HEX)
    require_k8s()
    with pytest.raises(InvalidName, match=r"^pod name '\.\.' is not a DNS-1123"):
        require_k8s(namespace="prod", pod="..")
    with pytest.raises(InvalidName, match=r"^namespace is empty"):
        require_k8s(namespace="", pod="p")


def test_shown_is_bounded_ascii() -> None:
    assert shown("web") == "'web'"
    assert shown("é\x07") == "'\\xe9\\x07'"
    assert shown("a" * 100) == f"{'a' * 80!r}… (100 characters)"


CHECKS = [namespace_problem, pod_problem, container_problem, node_problem,
          podman_name_problem, container_id_problem, podman_ref_problem]
HOSTILE = st.text(st.characters(codec="utf-8"), max_size=80) | st.sampled_from(
    ["--latest", "-l", "--help", "..", "a/b", "x\ny", "-", "containerd://-l", "."])


@settings(max_examples=200, deadline=None, derandomize=True)
@given(value=HOSTILE | st.from_regex(r"[-a-zA-Z0-9_./:]{1,70}", fullmatch=True))
def test_every_accepted_name_is_safe_on_a_command_line_and_in_a_url(value: str) -> None:
    for check in CHECKS:
        problem = check(value)
        if not problem:
            bare = value.rpartition("://")[2] if check is container_id_problem else value
            assert not bare.startswith("-") and not value.startswith("-")
            assert "/" not in bare and bare not in (".", "..")
            assert value.isprintable() and value.isascii() and " " not in value
            assert 0 < len(value) <= 253 + len("containerd://")
        else:  # the reason is one line, readable, and shows the value escaped
            assert problem.isprintable() and "\n" not in problem
            assert len(problem) < 400
