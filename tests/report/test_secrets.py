"""Secrets never reach a terminal, an analysis or a signed report in clear, and are matched
by a keyed fingerprint, not a guessable sha256 (issue 11, item 10)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FINGERPRINT_KEY, SHOP, archive_path, fingerprint, masked
from tests.doubles.fixtures import MAKE_CHECKPOINT
from tests.doubles.kubelet import PODMAN
from tests.report.test_cli import run, save

DB_PASSWORD = "Pr0d-Db-P@ss!"  # in the shop fixture's environment (tests/data/truth)
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
HUNTER = "hunter2"


def env_of(node: dict[str, Any], pid: int) -> dict[str, str]:
    stack = [node]
    while stack:
        item = stack.pop()
        if item["pid"] == pid:
            return dict(item["environment_variables"])
        stack.extend(item.get("children", []))
    raise AssertionError(f"no pid {pid}")


def test_inspect_prints_environment_secrets_redacted_tree_and_json(
        capsys: pytest.CaptureFixture[str]) -> None:
    shop = archive_path(SHOP)
    code, out, err = run(capsys, "inspect", "--ps-tree-env", "--format", "json", shop)
    assert code == 0, err
    assert DB_PASSWORD not in out and AWS_SECRET not in out
    env = env_of(json.loads(out)[0]["process_tree"], 1)
    assert env["DB_PASSWORD"] == masked(DB_PASSWORD)
    assert env["AWS_SECRET_ACCESS_KEY"] == masked(AWS_SECRET)
    assert env["HOME"] == "/root"

    code, out, _ = run(capsys, "inspect", "--all", shop)
    assert code == 0
    assert DB_PASSWORD not in out and AWS_SECRET not in out
    assert f"DB_PASSWORD={masked(DB_PASSWORD)}" in out

    code, out, _ = run(capsys, "inspect", "--ps-tree-env", "--format", "json", "--reveal", shop)
    assert env_of(json.loads(out)[0]["process_tree"], 1)["DB_PASSWORD"] == DB_PASSWORD
    code, out, _ = run(capsys, "inspect", "--all", "--reveal", shop)
    assert f"DB_PASSWORD={DB_PASSWORD}" in out


def test_analyze_shows_a_keyed_fingerprint_not_sha256_nor_length(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "analyze", "--format", "json", archive_path(SHOP))
    assert code == 0
    assert DB_PASSWORD not in out
    assert hashlib.sha256(DB_PASSWORD.encode()).hexdigest() not in out  # searchable: never
    assert f"({len(DB_PASSWORD)} chars)" not in out
    found = {s["name"]: s for s in json.loads(out)["records"]["secret"] if "name" in s}
    assert {k: v for k, v in found["DB_PASSWORD"].items() if k != "pids"} == {
        "source": "environment", "name": "DB_PASSWORD", "type": "named-secret",
        "redacted": masked(DB_PASSWORD), "fingerprint": fingerprint(DB_PASSWORD)}
    code, out, _ = run(capsys, "analyze", "--format", "json", "--reveal", archive_path(SHOP))
    assert json.loads(out)["records"]["secret"][0]["value"] in (DB_PASSWORD, AWS_SECRET)


def test_fingerprint_key_differs_across_installations_and_matches_within_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from forensics.analysis.redact import Redactor, installation_key

    monkeypatch.delenv("CSI_FINGERPRINT_KEY")
    one, two = tmp_path / "one", tmp_path / "two"
    first = Redactor(installation_key(one)).fingerprint(HUNTER)
    assert first == Redactor(installation_key(one)).fingerprint(HUNTER)
    assert first != Redactor(installation_key(two)).fingerprint(HUNTER)
    assert first.removeprefix("hmac-sha256:") != hashlib.sha256(HUNTER.encode()).hexdigest()
    key = one / "keys" / "secret-fingerprint.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(key.read_bytes()) == 32
    assert first == "hmac-sha256:" + hmac.new(key.read_bytes(), HUNTER.encode(),
                                              hashlib.sha256).hexdigest()


@pytest.mark.parametrize(("argv", "expected"), [
    (["app", f"--password={HUNTER}"], ["app", f"--password={masked(HUNTER)}"]),
    (["app", "--password", HUNTER, "-v"], ["app", "--password", masked(HUNTER), "-v"]),
    (["/usr/bin/mysql", "-uroot", f"-p{HUNTER}", "shop"],
     ["/usr/bin/mysql", "-uroot", f"-p{masked(HUNTER)}", "shop"]),
    (["curl", f"https://u:{HUNTER}@h/x"], ["curl", f"https://u:{masked(HUNTER)}@h/x"]),
    (["env", f"MYSQL_PWD={HUNTER}", "PATH=/bin", "app"],
     ["env", f"MYSQL_PWD={masked(HUNTER)}", "PATH=/bin", "app"]),
    (["sh", "-c", f"mysql -p{HUNTER} -e 'select 1' && curl https://u:{HUNTER}@h"],
     ["sh", "-c", f"mysql -p{masked(HUNTER)} -e 'select 1' && curl https://u:{masked(HUNTER)}@h"]),
    (["sshpass", "-p", HUNTER, "ssh", "h"], ["sshpass", "-p", masked(HUNTER), "ssh", "h"]),
    (["httpd", "-p", "8080", "--no-password", "host"],
     ["httpd", "-p", "8080", "--no-password", "host"]),  # not a mysql-like tool; a flag
])
def test_cmdline_secrets_are_masked(argv: list[str], expected: list[str]) -> None:
    from forensics.analysis.redact import Redactor

    assert Redactor().argv(argv) == expected
    assert Redactor(reveal=True).argv(argv) == argv


# ----------------------------------------------------------- a real container, end to end

SCRIPT = "#!/bin/sh\nsleep 2147483647\n"


@pytest.fixture(scope="module")
def secrets_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real podman checkpoint whose processes carry passwords in argv and environment."""
    tmp = tmp_path_factory.mktemp("custody-secrets")
    name = f"csi-custody-secrets-{secrets.token_hex(4)}"
    probe = subprocess.run(["bash", str(MAKE_CHECKPOINT), "--mode", "idle", "--name",
                            f"{name}-probe", "--compress", "none", "-o", str(tmp / "probe.tar")],
                           capture_output=True, text=True, timeout=900, check=False)
    if probe.returncode == 77:
        pytest.skip(f"this machine cannot make CRIU checkpoints: {probe.stderr.strip()[-300:]}")
    assert probe.returncode == 0, probe.stderr[-2000:]
    image = re.search(r"image: (\S+)", probe.stderr)
    assert image, probe.stderr
    shell = (f"printf '{SCRIPT}' > /tmp/mysql && chmod +x /tmp/mysql && "
             f"/tmp/mysql -uroot -p{HUNTER} shop & "
             f"/bin/sh -c 'sleep 2147483647; true' app --password={HUNTER} "
             f"https://u:{HUNTER}@db.example/x & echo ready; wait")
    try:
        subprocess.run([*PODMAN, "run", "-d", "--name", name, "--env", f"MYSQL_PWD={HUNTER}",
                        "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                        image.group(1), "/bin/sh", "-c", shell],
                       check=True, capture_output=True, timeout=300)
        deadline = time.monotonic() + 60
        while b"ready" not in subprocess.run([*PODMAN, "logs", name], capture_output=True,
                                             timeout=60).stdout:
            assert time.monotonic() < deadline, "the container never printed ready"
            time.sleep(0.2)
        time.sleep(0.5)  # the two background commands exec
        out = tmp / "secrets.tar"
        subprocess.run([*PODMAN, "container", "checkpoint", "--export", str(out), "--compress",
                        "none", name], check=True, capture_output=True, timeout=300)
        yield out
    finally:
        subprocess.run([*PODMAN, "rm", "-f", "--time", "0", name], capture_output=True,
                       timeout=120, check=False)


def test_cmdline_passwords_never_reach_the_signed_report(
        secrets_checkpoint: Path, capsys: pytest.CaptureFixture[str], home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.report import test_cli

    monkeypatch.setattr(test_cli, "archive_path", lambda archive: archive)
    rid = save(capsys, str(secrets_checkpoint))
    folder = home / "reports" / rid
    doc = json.loads((folder / "report.json").read_bytes())
    argvs = [p["cmdline"] for p in doc["processes"] if p["cmdline"]]
    assert ["/bin/sh", "/tmp/mysql", "-uroot", f"-p{masked(HUNTER)}", "shop"] in argvs
    assert ["/bin/sh", "-c", "sleep 2147483647; true", "app", f"--password={masked(HUNTER)}",
            f"https://u:{masked(HUNTER)}@db.example/x"] in argvs
    env = {e["name"]: e for p in doc["processes"] for e in p["environment"] or ()}
    assert env["MYSQL_PWD"] == {"name": "MYSQL_PWD", "value": masked(HUNTER), "redacted": True}
    for name in ("report.json", "report.html", "report.md", "manifest.json"):
        data = (folder / name).read_bytes()
        assert HUNTER.encode() not in data, name
        assert hashlib.sha256(HUNTER.encode()).hexdigest().encode() not in data, name
    assert masked(HUNTER).encode() in (folder / "report.html").read_bytes()
    assert masked(HUNTER).encode() in (folder / "report.md").read_bytes()

    code, out, _ = run(capsys, "inspect", "--ps-tree-cmd", "--ps-tree-env", "--format", "json",
                       str(secrets_checkpoint))
    assert code == 0 and HUNTER not in out and masked(HUNTER) in out
    code, out, _ = run(capsys, "inspect", "--all", "--reveal", str(secrets_checkpoint))
    assert f"-p{HUNTER}" in out and f"MYSQL_PWD={HUNTER}" in out
    code, out, _ = run(capsys, "analyze", "--format", "json", str(secrets_checkpoint))
    assert code == 0 and HUNTER not in out
    code, out, _ = run(capsys, "analyze", "--format", "json", "--reveal", str(secrets_checkpoint))
    assert f"--password={HUNTER}" in out


def test_alert_cmdline_password_is_redacted_in_the_signed_trigger() -> None:
    from forensics.alert import alert_from_json
    from forensics.analysis.base import Options
    from forensics.analysis.runner import analyze
    from forensics.archive.checkpoint import Checkpoint
    from forensics.report.builder import build_report
    from forensics.report.provenance import Provenance
    from tests.conftest import PAYMENTS
    from tests.report.conftest import alert_for

    received = alert_for(PAYMENTS)
    assert received is not None
    raw = received.to_json()
    raw["output_fields"]["proc.cmdline"] = f"mysql -uroot -p{HUNTER} payments"
    raw["output"] += f" cmdline=mysql -uroot -p{HUNTER} payments"
    alert = alert_from_json(raw)
    with Checkpoint(archive_path(PAYMENTS), hash_cache=False) as ckpt:
        result = analyze(ckpt, Options(alert=alert))
        doc = build_report(result, Provenance.manual(responder="alice", reason="t", alert=alert))
    assert HUNTER not in json.dumps(doc)
    signed_alert = doc["trigger"]["alert"]
    assert signed_alert["output_fields"]["proc.cmdline"] == \
        f"mysql -uroot -p{masked(HUNTER)} payments"
    assert signed_alert["output"].endswith(f" cmdline=mysql -uroot -p{masked(HUNTER)} payments")


def test_diff_prints_environment_secrets_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import CRIU41

    a, b = archive_path(CRIU41), archive_path(SHOP)
    code, out, _ = run(capsys, "diff", a, b)
    assert code == 0
    assert DB_PASSWORD not in out and "s3cr3t-demo" not in out
    env = next(c["environment"] for c in json.loads(out)["processes"]["changed"]
               if "environment" in c)
    assert f"DB_PASSWORD={masked(DB_PASSWORD)}" in env["added"]
    assert f"API_TOKEN={masked('s3cr3t-demo')}" in env["removed"]
    code, out, _ = run(capsys, "diff", "--reveal", a, b)
    assert f"DB_PASSWORD={DB_PASSWORD}" in out


@pytest.mark.parametrize("name", ["DB_PASSWORD", "MYSQL_PWD", "AWS_SECRET_ACCESS_KEY",
                                  "GITHUB_TOKEN", "API_KEY", "STRIPE_API_KEY", "PGPASSWORD",
                                  "CLIENT_SECRET", "DATABASE_DSN"])
def test_environment_secret_names_are_masked(name: str) -> None:
    from forensics.analysis.redact import Redactor

    assert Redactor().env(f"{name}={HUNTER}") == {"name": name, "value": masked(HUNTER),
                                                 "redacted": True}


@pytest.mark.parametrize("item", ["PWD=/root", "OLDPWD=/", "HOME=/root", "TZ=Asia/Tokyo",
                                  "KEYMAP=us", "PATH=/usr/bin:/bin"])
def test_ordinary_environment_is_shown(item: str) -> None:
    from forensics.analysis.redact import Redactor

    name, _, value = item.partition("=")
    assert Redactor().env(item) == {"name": name, "value": value, "redacted": False}


def test_hostile_secret_text_never_breaks_redaction() -> None:
    from forensics.analysis.redact import Redactor

    lone = "\ud800"  # a lone surrogate, as a hostile Falco alert may carry
    assert Redactor().argv(["mysql", f"-p{lone}"]) == ["mysql", f"-p{masked_pass(lone)}"]
    escape = f"{lone}\x1b[2J"
    assert Redactor().text(f"--token {escape}") == f"--token {masked_pass(escape)}"
    huge = "x" * 1_000_000
    assert Redactor().argv(["app", f"--password={huge}"]) == ["app", f"--password={masked(huge)}"]


def masked_pass(value: str) -> str:
    digest = hmac.new(FINGERPRINT_KEY.encode(), value.encode("utf-8", "surrogatepass"),
                      hashlib.sha256).hexdigest()
    return f"[redacted:{digest[:12]}]"
