"""Each fixture's report states what the analyzers found, and what a responder needs around it."""

from __future__ import annotations

import tarfile
from typing import Any

import pytest

from forensics.report.builder import SCHEMA_VERSION
from forensics.report.schema import schema_errors
from forensics.report.signing import SigningKey, sign
from tests.conftest import ARCHIVES, CRIU41, LISTENER, PAYMENTS, SHOP, masked
from tests.report.conftest import STARTED, Built


def process(doc: dict[str, Any], pid: int) -> dict[str, Any]:
    return next(p for p in doc["processes"] if p["pid"] == pid)


@pytest.mark.parametrize("archive", ARCHIVES)
def test_every_report_validates_and_keeps_the_analyzer_output(
        built: dict[str, Built], key: SigningKey, archive: str) -> None:
    b = built[archive]
    doc = sign(b.document, key)
    assert schema_errors(doc) == []
    assert doc["schema_version"] == SCHEMA_VERSION == 1
    assert doc["findings"] == b.analysis["findings"]
    assert doc["analyzers"] == b.analysis["analyzers"]
    assert doc["summary"]["verdict"] == b.analysis["verdict"]
    records = b.analysis["records"]
    assert doc["network"] == records.get("connection", [])
    assert doc["files"] == records.get("file", [])
    assert doc["iocs"] == records.get("ioc", [])
    assert doc["secrets"] == records.get("secret", [])
    assert doc["custody"]["archive"]["sha256"] == b.truth_sha256
    assert [p["pid"] for p in doc["processes"]] == [p["pid"] for p in records["process"]]


def test_verdicts_and_top_findings(built: dict[str, Built]) -> None:
    verdicts = {a: built[a].document["summary"]["verdict"] for a in ARCHIVES}
    assert verdicts == {PAYMENTS: "critical", SHOP: "critical", CRIU41: "high",
                        LISTENER: "medium"}
    top = built[PAYMENTS].document["summary"]["top_findings"]
    assert [(t["rule"], t["pid"], t["same_rule"]) for t in top[:2]] == [
        ("process.exe-dropped", 1, 1), ("process.reverse-shell", 9, 0)]
    assert built[PAYMENTS].document["summary"]["counts"] == {
        "critical": 3, "high": 14, "medium": 4, "low": 2, "info": 4}
    assert built[PAYMENTS].document["summary"]["alert_confirmed"] is True


def test_what_was_captured_and_why(built: dict[str, Built]) -> None:
    doc = built[PAYMENTS].document
    assert doc["subject"] == {
        "cluster": None, "node": "worker-1", "node_source": "Falco alert hostname",
        "namespace": "payments", "pod": "payments-api-5b8f7c9d8-qq7lm",
        "pod_uid": "0b5e1f9a-2c3d-4e5f-8a9b-1c2d3e4f5a6b", "container": "api",
        "container_name": "rs",
        "container_id": "43de4c406b228af0d9a23174bc2ef7ec5f411cc049624ceda61bf628be279c14",
        "image": "localhost/shop-frontend:1.4.2", "engine": "Podman",
        "container_created": "2026-11-22T07:10:24Z"}
    trigger = doc["trigger"]
    assert (trigger["kind"], trigger["responder"], trigger["reason"]) == (
        "responder", "alice", "test")
    assert trigger["alert"]["rule"] == "Redirect STDOUT/STDIN to Network Connection in Container"
    assert built[LISTENER].document["trigger"]["alert"] is None
    assert built[LISTENER].document["subject"]["node"] is None


def test_reverse_shell_process_points_at_its_findings(built: dict[str, Built]) -> None:
    doc = built[PAYMENTS].document
    shell = process(doc, 9)
    assert (shell["cmdline"], shell["exe"], shell["user"], shell["uid"], shell["ppid"]) == (
        ["sh", "-i"], "/bin/busybox", "root", 0, 1)
    rules = {doc["findings"][i]["rule"] for i in shell["findings"]}
    assert {"process.reverse-shell", "alert.confirmed", "filesystem.open-deleted"} <= rules
    assert shell["severity"] == "critical"
    assert [f["fd"] for f in shell["fds"] if f["path"] == "/tmp/.cache/.staging"] == [4]


def test_secrets_are_redacted_everywhere(built: dict[str, Built]) -> None:
    import json

    doc = built[PAYMENTS].document
    text = json.dumps(doc)
    assert "sk_live_51ExampleExampleExample" not in text
    env = {e["name"]: e for e in process(doc, 1)["environment"]}
    assert env["STRIPE_KEY"] == {"name": "STRIPE_KEY",
                                 "value": masked("sk_live_51ExampleExampleExample"),
                                 "redacted": True}
    assert env["HOME"] == {"name": "HOME", "value": "/root", "redacted": False}
    shop = json.dumps(built[SHOP].document)
    assert "DB_PASSWORD" in shop
    assert all(e["redacted"] for p in built[SHOP].document["processes"]
               for e in p["environment"] or [] if e["name"] in ("DB_PASSWORD",
                                                                "AWS_SECRET_ACCESS_KEY"))


def test_uid0_user_from_the_changed_passwd(built: dict[str, Built]) -> None:
    # the shop container added a second uid-0 account: names come from its /etc/passwd
    assert process(built[SHOP].document, 17)["user"] == "root"
    assert process(built[SHOP].document, 17)["exe"] == "/tmp/.cache/kworkerd"


def test_timeline_of_a_manual_analysis(built: dict[str, Built]) -> None:
    events = {e["event"]: e for e in built[SHOP].document["timeline"]}
    assert list(events) == ["container-created", "alert", "checkpoint-requested",
                            "checkpoint-written", "pushed", "analysis-started",
                            "analysis-finished", "reported"]
    assert events["container-created"]["time"] == "2026-11-22T07:09:50Z"
    assert events["alert"]["time"] == "2026-11-22T07:09:53.912345678Z"
    assert events["checkpoint-written"]["time"] == "2026-11-22T07:09:55.000000Z"
    assert events["checkpoint-requested"]["time"] is None
    assert events["pushed"]["source"] == "not recorded: the archive was not captured by csi"
    assert events["analysis-started"]["time"] == "2026-11-22T08:00:00.000000Z" == \
        STARTED.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_custody_records_every_member(built: dict[str, Built]) -> None:
    b = built[PAYMENTS]
    custody = b.document["custody"]
    with tarfile.open(b.path) as tar:
        files = {m.name.rstrip("/"): m.size for m in tar.getmembers() if m.isfile()}
    assert {m["name"]: m["size"] for m in custody["archive"]["members"]} == files
    assert custody["archive"]["size"] == 3374592
    assert custody["capture"]["archive_sha256"] is None
    assert custody["verification"]["matches_capture"] is None
    assert custody["verification"]["sha256_method"] == (
        "recomputed from the archive file before analysis")
    assert b.document["tool"]["analyzers"] == {
        "alert": "1.0", "filesystem": "1.0", "ioc": "1.0", "network": "1.0", "process": "1.0",
        "secrets": "1.0", "yara": "1.0"}


def test_a_capture_supplies_its_custody(built: dict[str, Built], key: SigningKey) -> None:
    from dataclasses import replace
    from datetime import UTC, datetime

    from forensics.analysis.base import Options
    from forensics.analysis.runner import analyze
    from forensics.archive.checkpoint import Checkpoint
    from forensics.report.builder import build_report
    from forensics.report.provenance import Provenance, Trigger
    from tests.report.conftest import alert_for

    b = built[SHOP]
    alert = alert_for(SHOP)
    assert alert is not None
    capture = Provenance(
        Trigger.from_alert(alert, policy="drop-and-execute"), cluster="prod-eu", node="worker-2",
        node_archive_path="/var/lib/kubelet/checkpoints/checkpoint-shop.tar",
        archive_sha256_at_capture=b.truth_sha256, archive_size_at_capture=5623808,
        registry_ref="registry.local/csi/evidence:shop-frontend-7d9c6b5f4-x2x9q",
        manifest_digest="sha256:" + "ab" * 32,
        checkpoint_requested=datetime(2026, 11, 22, 7, 9, 54, tzinfo=UTC),
        pushed=datetime(2026, 11, 22, 7, 10, 1, tzinfo=UTC), captured_by="local")
    with Checkpoint(b.path, hash_cache=False) as ckpt:
        doc = build_report(analyze(ckpt, Options(alert=alert)), capture)
        bad = build_report(analyze(ckpt, Options(alert=alert)),
                           replace(capture, archive_sha256_at_capture="0" * 64))
    assert schema_errors(sign(doc, key)) == []
    assert doc["subject"]["node"] == "worker-2" and doc["subject"]["cluster"] == "prod-eu"
    assert doc["trigger"]["kind"] == "alert"
    assert doc["trigger"]["policy"] == "drop-and-execute"
    assert doc["custody"]["capture"]["manifest_digest"] == "sha256:" + "ab" * 32
    assert doc["custody"]["verification"]["matches_capture"] is True
    assert doc["custody"]["verification"]["size_matches_capture"] is True
    events = {e["event"]: e for e in doc["timeline"]}
    assert events["checkpoint-requested"]["time"] == "2026-11-22T07:09:54.000000Z"
    assert events["pushed"] == {"event": "pushed", "label": "pushed to the registry",
                                "time": "2026-11-22T07:10:01.000000Z", "source": "capture"}
    assert bad["custody"]["verification"]["matches_capture"] is False
    assert bad["custody"]["verification"]["note"].startswith("DIFFERS")


def test_reveal_is_refused(built: dict[str, Built]) -> None:
    from forensics.analysis.base import Options
    from forensics.analysis.runner import analyze
    from forensics.archive.checkpoint import Checkpoint
    from forensics.report.builder import build_report
    from forensics.report.errors import ReportError
    from forensics.report.provenance import Provenance

    with Checkpoint(built[PAYMENTS].path) as ckpt:
        result = analyze(ckpt, Options(reveal=True))
        with pytest.raises(ReportError, match="secrets in clear"):
            build_report(result, Provenance.manual(responder="alice"))
