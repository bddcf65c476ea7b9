"""``csi push`` / ``csi pull`` end to end through the CLI entry point."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest

from forensics.cli.main import main
from tests.capture.conftest import KUBELET, sha256_file
from tests.capture.servers import Registry


def test_push_then_pull_by_hand(registry: Registry, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    sha = sha256_file(KUBELET)
    assert main(["push", KUBELET, f"{registry.host}/evidence/cli:one", "--plain-http",
                 "--alert-rule", "Netcat remote code execution", "--format", "json"]) == 0
    pushed = json.loads(capsys.readouterr().out)
    assert pushed["archive_sha256"] == sha and pushed["backend"] == "native"
    assert pushed["pinned"] == f"{registry.host}/evidence/cli@{pushed['digest']}"
    out = tmp_path / "back.tar"
    assert main(["pull", pushed["pinned"], "-f", str(out), "--plain-http"]) == 0
    text = capsys.readouterr().out
    assert text == (f"pulled {pushed['pinned']} -> {out}\n"
                    f"  sha256:{sha}  {Path(KUBELET).stat().st_size} bytes  matches "
                    "dev.csi.archive.sha256\n")
    assert filecmp.cmp(out, KUBELET, shallow=False)


def test_push_without_ref_goes_to_the_layout(private_home: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["push", KUBELET]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"pushed {KUBELET} ({Path(KUBELET).stat().st_size} bytes, "
                        f"sha256:{sha256_file(KUBELET)})")
    assert lines[1].startswith(f"  to      oci:{private_home / 'oci'}:checkpoints/payments/")


def test_csi_registry_env_names_the_registry(registry: Registry, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CSI_REGISTRY", f"{registry.host}/evidence")
    assert main(["push", KUBELET, "--plain-http", "--format", "json"]) == 0
    target = json.loads(capsys.readouterr().out)["target"]
    assert target.startswith(f"{registry.host}/evidence/checkpoints/payments/"
                             "payments-api-5b8f7c9d8-qq7lm:api-")


@pytest.mark.parametrize(("argv", "message"), [
    (["push", KUBELET, "Bad Ref"], "csi: error: bad image reference 'Bad Ref': empty or "
     "contains white space (write HOST[:PORT]/REPO[:TAG][@sha256:…] or oci:DIR[:NAME])\n"),
    (["push", KUBELET, "h.io/x", "--sha256", "xyz"],
     "csi: error: --sha256 'xyz' is not a sha256 hex digest\n"),
    (["push", KUBELET, "h.io/x", "--backend", "buildah", "--creds", ":pw"], None),
])
def test_bad_input_is_one_line(argv: list[str], message: str | None,
                               capsys: pytest.CaptureFixture[str]) -> None:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    if message is not None:
        assert err == message


def test_not_a_checkpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    assert main(["push", str(junk), "h.io/x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"csi: error: {junk}") and err.count("\n") == 1
