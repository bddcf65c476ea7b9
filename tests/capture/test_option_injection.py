"""Issue 11 item 1 in the capture library and CLI: names never become options or URL paths.

Against the Kubernetes API server and kubelet doubles (real HTTP, each request
recorded) and a real registry with buildah: a name Kubernetes would refuse is a
:class:`~forensics.names.InvalidName` before any request is made, ``csi capture``
and ``csi step`` say so in one line with exit status 2, and an archive whose
file name looks like an option is pushed by buildah as the file it is.
"""

from __future__ import annotations

import filecmp
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from forensics.capture.kubelet import ApiServerProxy, KubeletClient, KubeletDirect
from forensics.cli.main import main
from forensics.names import InvalidName
from forensics.storage import pull_archive, push_archive
from tests.capture.conftest import KUBELET, PLAIN, need
from tests.capture.servers import Registry
from tests.doubles.cluster import Container, Pod
from tests.doubles.fixtures import Stack, running_stack

OPTION = "starts with '-' (it would be read as an option)"
SUBDOMAIN = ("is not a DNS-1123 subdomain (lowercase letters, digits, inner '-', labels "
             "joined by '.')")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path / "stack") as running:
        running.cluster.add_pod(Pod("prod", "web-0", "node-1", [Container("web")]))
        yield running


def starts(text: str) -> str:
    return "^" + re.escape(text)


def requests_made(stack: Stack) -> int:
    return len(stack.api.requests) + sum(len(k.requests) for k in stack.kubelets.values())


def test_kube_lookups_with_dot_dot_pod_name_make_no_request(stack: Stack) -> None:
    with stack.connect() as kube:
        before = requests_made(stack)
        with pytest.raises(InvalidName, match=starts(f"pod name '..' {SUBDOMAIN}")):
            kube.get_pod("prod", "..")  # once GET /api/v1/namespaces/prod/pods/..
        with pytest.raises(InvalidName, match=starts(f"namespace '-n' {OPTION}")):
            kube.resolve_pod("web-0", "-n")
        with pytest.raises(InvalidName, match=starts(f"container name '--latest' {OPTION}")):
            kube.resolve_pod("web-0", "prod", "--latest")
        with pytest.raises(InvalidName, match=starts(f"container id '--latest' {OPTION}")):
            kube.find_container_by_id("prod", "web-0", "--latest")
        with pytest.raises(InvalidName, match=starts(f"node name 'node-1/../..' {SUBDOMAIN}")):
            kube.get_node("node-1/../..")
        assert requests_made(stack) == before
        assert kube.resolve_pod("web-0").containers == ["web"]  # valid names still work


@pytest.mark.parametrize("via", ["proxy", "direct"])
def test_kubelet_checkpoint_of_dot_dot_names_makes_no_request(stack: Stack, via: str) -> None:
    with stack.connect() as kube:
        transport = ApiServerProxy(kube) if via == "proxy" else KubeletDirect(
            "https://{node}:10250")
        client = KubeletClient(transport)
        before = requests_made(stack)
        for args, message in (
                (("node-1", "prod", "..", "web"), f"pod name '..' {SUBDOMAIN}"),
                (("node-1", "..", "web-0", "web"), "namespace '..' is not an RFC 1123"),
                (("node-1", "prod", "web-0", "-l"), f"container name '-l' {OPTION}"),
                (("evil.test:80/x?", "prod", "web-0", "web"), "node name 'evil.test:80/x?'")):
            with pytest.raises(InvalidName, match=starts(message)):
                client.checkpoint(*args)
        assert requests_made(stack) == before


def one_error(err: str) -> str:
    errors = [line for line in err.splitlines() if line.startswith("csi: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


@pytest.mark.parametrize(("argv", "message"), [
    (["capture", "pod", "--", ".."], f"pod name '..' {SUBDOMAIN}"),
    (["capture", "pod", "web-0", "-c", "--latest"], f"container name '--latest' {OPTION}"),
    (["capture", "pod", "web-0", "-n", "-l"], f"namespace '-l' {OPTION}"),
    (["step", "checkpoint", "--namespace", "prod", "--pod", "..", "--container", "web"],
     f"pod name '..' {SUBDOMAIN}"),
    (["step", "checkpoint", "--namespace", "prod", "--pod", "web-0", "--container", "web",
      "--node", "-l"], f"node name '-l' {OPTION}"),
])
def test_cli_capture_pod_with_option_like_names_is_a_usage_error(
        stack: Stack, capsys: pytest.CaptureFixture[str], argv: list[str],
        message: str) -> None:
    before = requests_made(stack)
    code = main([*argv[:2], "--kubeconfig", str(stack.kubeconfig), *argv[2:]])
    line = one_error(capsys.readouterr().err)
    assert code == 2
    assert line.startswith(f"csi: error: {message}")
    assert requests_made(stack) == before


def test_buildah_push_of_an_archive_named_like_an_option(
        registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need("buildah")
    need("skopeo")
    shutil.copyfile(KUBELET, tmp_path / "--help.tar")
    monkeypatch.chdir(tmp_path)  # "--help.tar", relative: once read by buildah as an option
    result = push_archive("--help.tar", f"{registry.host}/evidence/inject-opt:a",
                          options=PLAIN, backend="buildah")
    out = tmp_path / "back.tar"
    pull_archive(result.pinned, str(out), options=PLAIN, backend="buildah")
    assert filecmp.cmp(out, KUBELET, shallow=False)


@pytest.mark.parametrize("name", ["--latest", "-l", "--help", "web\n", "a/../b"])
def test_podman_checkpoint_of_latest_never_runs_podman(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    from forensics.capture import podman

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # podman, if run, would be "missing"
    for call in (lambda: podman.checkpoint(name, str(tmp_path / "out")),
                 lambda: podman.inspect(name)):
        with pytest.raises(InvalidName) as caught:
            call()
        assert caught.value.what.startswith(f"podman container name or id {name!r} ")
    assert not (tmp_path / "out").exists()


def test_auth_file_credential_helper_path_runs_no_program(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from forensics.storage.auth import find_credentials
    from forensics.storage.errors import RegistryAuthError

    marker = tmp_path / "ran"
    helper = ("#!/bin/sh\ntouch " + str(marker) + "\n"
              'echo \'{"Username": "u", "Secret": "s"}\'\n')
    (tmp_path / "evil").write_text(helper)
    (tmp_path / "evil").chmod(0o755)
    (tmp_path / "docker-credential-x").mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "docker-credential-good").write_text(helper)
    (bindir / "docker-credential-good").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.chdir(tmp_path)  # "docker-credential-x/../evil" is ./evil from here
    auth = tmp_path / "auth.json"
    for store in ("x/../evil", "-h", "x\n"):
        auth.write_text(json.dumps({"credsStore": store}))
        with pytest.raises(RegistryAuthError) as caught:
            find_credentials("registry.test", auth_file=str(auth))
        assert str(caught.value) == (
            f"{auth}: credential helper {store!r} is not a program name (credsStore/"
            "credHelpers name a docker-credential-NAME program on PATH)")
        assert not marker.exists()
    auth.write_text(json.dumps({"credsStore": "good"}))  # a helper on PATH still works
    found = find_credentials("registry.test", auth_file=str(auth))
    assert found is not None and (found.username, found.password) == ("u", "s")
    assert marker.exists()
