"""The typed alert end to end: one serialiser from the receiver's journal to the analyzer.

Every real fixture alert goes journal → capture request → Argo parameter →
``csi step`` input → the analysis' options and comes out equal, with the same
fingerprint and the same request id; every way in refuses what the receiver
refuses.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from forensics.alert import (
    MAX_BYTES,
    Alert,
    InvalidAlert,
    InvalidJson,
    alert_from_json,
    decode_alert,
    encode_alert,
)
from forensics.analysis.base import Options
from forensics.analysis.runner import analyze
from forensics.archive.checkpoint import Checkpoint
from forensics.cli.main import main
from forensics.errors import UsageError
from forensics.orchestration import argo
from forensics.orchestration.request import CaptureRequest, Target
from forensics.orchestration.steps import StepInput
from forensics.receiver import falco
from forensics.receiver.journal import Journal, Settlement
from forensics.receiver.policy import load_policy
from forensics.trigger import Trigger
from tests.conftest import DATA, PAYMENTS, archive_path

FALCO = DATA / "falco"
FIXTURES = sorted(p.name for p in FALCO.glob("*.json"))
SIDEKICK = "reverse-shell-payments-sidekick.json"


def fixture(name: str) -> Alert:
    return decode_alert((FALCO / name).read_bytes())


def test_the_fixtures_are_the_ones_this_test_knows() -> None:
    assert FIXTURES == ["drop-and-execute-shop-frontend.json", "falco-internal-drop.json",
                        "host-process-alert.json", SIDEKICK,
                        "terminal-shell-unknown-pod.json", "unresolved-pod-null-fields.json"]


def test_the_receiver_reexports_the_low_layer() -> None:
    assert falco.Alert is Alert and falco.decode_alert is decode_alert
    assert falco.encode_alert is encode_alert


@pytest.mark.parametrize("name", FIXTURES)
def test_encode_then_decode_gives_the_same_alert(name: str) -> None:
    received = fixture(name)
    text = encode_alert(received)
    assert text.isascii() and "\n" not in text
    again = decode_alert(text)
    assert again == received
    assert again.fingerprint == received.fingerprint and again.id == received.id
    assert again.to_json() == json.loads((FALCO / name).read_bytes())
    assert alert_from_json(received.to_json()) == received
    assert decode_alert(text.encode()) == received


def test_typed_fields_of_a_falcosidekick_alert() -> None:
    alert = fixture(SIDEKICK)
    assert (alert.rule, alert.priority, alert.time, alert.time_ns) == (
        "Redirect STDOUT/STDIN to Network Connection in Container", "Notice",
        "2026-11-22T07:10:26.40012Z", 1_795_331_426_400_120_000)
    assert (alert.container_id, alert.pod, alert.namespace, alert.hostname) == (
        "21c793cc89e4", "payments-api-5b8f7c9d8-qq7lm", "payments", "worker-1")
    assert alert.fingerprint == "uuid:6f1c3a52-9d0e-4b8e-a1f4-2c7d9e3b8a10"
    assert alert.field("proc.vpid") == 9
    assert alert.field("fd.name") == "127.0.0.1:46658->127.0.0.1:31337"


def test_null_and_na_fields_read_as_unknown() -> None:
    alert = fixture("unresolved-pod-null-fields.json")
    assert (alert.container_id, alert.pod, alert.namespace) == ("4f2a9c1e7b3d", "", "")
    host = fixture("host-process-alert.json")
    assert host.container_id == "host"
    assert fixture("falco-internal-drop.json").container_id == ""


@pytest.mark.parametrize("name", FIXTURES)
def test_journal_request_argo_step_round_trip(tmp_path: Path, name: str) -> None:
    body = (FALCO / name).read_bytes()
    alert = decode_alert(body)
    journal = Journal(tmp_path / "journal.sqlite3")
    journal.record_alert(alert, body, load_policy().decide(alert), 1.0)
    # a target the step can name whatever the alert says (host alerts have no pod)
    request = CaptureRequest(Target("kubernetes", "api", "payments", "payments-api-0", "node-1"),
                             Trigger("alert", reason="test", alert=alert))
    journal.settle([Settlement(alert.id, "capture", "ok", request, rule=alert.rule)], 2.0)

    [requeued] = journal.requeue_unfinished()  # what a restarted receiver runs
    assert requeued == request and requeued.id == request.id
    assert requeued.trigger.alert == alert
    assert requeued.trigger.alert_fingerprint == alert.fingerprint
    assert CaptureRequest.from_dict(json.loads(json.dumps(request.to_dict()))) == request

    params = dict(p.split("=", 1) for p in argo.parameters(requeued))
    assert params["alert"] == encode_alert(alert)
    assert argo.labels(requeued)[argo.FINGERPRINT_LABEL] == argo.fingerprint_label(
        alert.fingerprint)
    step = StepInput(params["namespace"], params["pod"], params["container"], params["node"],
                     params["reason"], params["alert"])
    stepped = step.request()
    assert stepped.trigger == Trigger("alert", reason="test", alert=alert)
    assert stepped.trigger.alert is not None
    assert stepped.trigger.alert.fingerprint == alert.fingerprint
    assert stepped.trigger.alert.to_json() == json.loads(body)
    journal.close()


def test_the_alert_that_went_through_argo_is_confirmed_by_the_analyzer(tmp_path: Path) -> None:
    body = (FALCO / SIDEKICK).read_bytes()
    request = CaptureRequest(Target("kubernetes", "api", "payments", "payments-api-0"),
                             Trigger("alert", alert=decode_alert(body)))
    params = dict(p.split("=", 1) for p in argo.parameters(request))
    stepped = StepInput("payments", "payments-api-0", "api", alert=params["alert"]).request()
    with Checkpoint(archive_path(PAYMENTS), hash_cache=False) as ckpt:
        result = analyze(ckpt, Options(alert=stepped.trigger.alert), ["alert"]).to_dict()
    [finding] = result["findings"]
    assert (finding["rule"], finding["severity"], finding["pid"]) == (
        "alert.confirmed", "low", 9)
    assert finding["evidence"] == {
        "alert_rule": "Redirect STDOUT/STDIN to Network Connection in Container",
        "alert_time": "2026-11-22T07:10:26.40012Z",
        "checks": {"vpid": True, "exe": True, "name": True, "cmdline": True, "fd": True,
                   "pod": True, "container_id": False}}  # the fixture names another id
    assert finding["summary"].endswith(
        " (note: the alert names container 21c793cc89e4, the archive is of "
        f"{ckpt.container.id[:12]})")


def test_step_input_refuses_what_the_receiver_refuses() -> None:
    def step(alert: str) -> StepInput:
        return StepInput("prod", "web-1", "web", alert=alert)

    assert step("").request().trigger == Trigger("responder", responder="argo workflow")
    with pytest.raises(UsageError, match=r"^--alert is not JSON: invalid JSON: the string "):
        step('{"rule": "\\ud800", "priority": "Warning", "time": "2026-11-22T07:00:00Z"}'
             ).request()
    with pytest.raises(UsageError, match=r"^--alert is not JSON: invalid JSON: the number "
                                         r"1e999 is out of range"):
        step('{"rule": "r", "priority": "Warning", "time": "2026-11-22T07:00:00Z", '
             '"output_fields": {"n": 1e999}}').request()
    with pytest.raises(UsageError, match=r"^--alert is not JSON: invalid JSON: nested deeper "
                                         r"than 32 levels$"):
        step('{"rule": "r", "x": ' + "[" * 40 + "]" * 40 + "}").request()
    with pytest.raises(UsageError) as caught:
        step('{"rule": "r", "priority": "Warning"}').request()
    assert str(caught.value).startswith(
        "--alert is not a Falco alert: required field 'time' is missing")


def test_alert_from_json_and_text_refuse_lone_surrogates_and_non_json() -> None:
    with pytest.raises(InvalidJson, match="lone UTF-16 surrogate"):
        alert_from_json({"rule": "\ud800", "priority": "Warning",
                         "time": "2026-11-22T07:00:00Z"})
    with pytest.raises(InvalidJson, match=r"^the alert is not Unicode text: a lone UTF-16 "
                                          r"surrogate at character 10$"):
        decode_alert('{"rule": "\ud800"}')
    with pytest.raises(InvalidAlert, match=r"^the alert is not JSON: Out of range float "
                                           r"values are not JSON compliant"):
        alert_from_json({"rule": "r", "n": float("inf")})


def test_a_journaled_request_whose_alert_no_longer_parses_fails_alone(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite3")
    requests = []
    for name in ("drop-and-execute-shop-frontend.json", SIDEKICK):
        alert = fixture(name)
        journal.record_alert(alert, (FALCO / name).read_bytes(),
                             load_policy().decide(alert), 1.0)
        request = CaptureRequest(Target("podman", f"alert-{alert.id}"),
                                 Trigger("alert", alert=alert))
        journal.settle([Settlement(alert.id, "capture", "ok", request, rule=alert.rule)], 2.0)
        requests.append(request)
    journal.close()
    broken = requests[0].to_dict()
    del broken["trigger"]["alert"]["time"]  # as an older, laxer csi could have journaled it
    with sqlite3.connect(tmp_path / "journal.sqlite3") as db:
        db.execute("UPDATE captures SET request = ? WHERE id = ?",
                   (json.dumps(broken), requests[0].id))
    db.close()
    journal = Journal(tmp_path / "journal.sqlite3")
    assert journal.requeue_unfinished(now=3.0) == [requests[1]]
    row = journal.capture(requests[0].id)
    assert row is not None
    assert (row["state"], row["error"], row["finished"]) == (
        "failed", "not a valid alert: required field 'time' is missing", 3.0)
    assert [t.key() for _, t, _, _ in journal.recent_captures(0.0)] == [
        f"podman/alert-{fixture(n).id}" for n in ("drop-and-execute-shop-frontend.json",
                                                   SIDEKICK)]
    journal.close()


def test_csi_analyze_alert_file_is_read_as_the_receiver_reads_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b" " * MAX_BYTES + b"{}")
    assert main(["analyze", "--alert", str(big), archive_path(PAYMENTS)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"csi: error: {big}: the alert is larger than 1048576 bytes")
    assert err.count("\n") == 1

    lax = tmp_path / "lax.json"
    lax.write_text('{"rule": "Terminal shell in container", "priority": "Warning"}')
    assert main(["analyze", "--alert", str(lax), archive_path(PAYMENTS)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"csi: error: {lax}: not a Falco alert")
    assert "required field 'time' is missing" in err

    assert main(["analyze", "--alert", str(FALCO / SIDEKICK), "--analyzer", "alert",
                 "--format", "json", archive_path(PAYMENTS)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(f["rule"], f["pid"]) for f in out["findings"]] == [("alert.confirmed", 9)]
