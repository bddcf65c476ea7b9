"""One Trigger vocabulary: new reports say ``alert``; reports that say ``falco-alert`` verify."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path

import pytest

from forensics.analysis.base import Options
from forensics.analysis.runner import analyze
from forensics.archive.checkpoint import Checkpoint
from forensics.orchestration.request import Trigger as RequestTrigger
from forensics.report.builder import build_report
from forensics.report.phrases import trigger_lines
from forensics.report.provenance import Provenance, Trigger, trigger_dict
from forensics.report.publish import save_report
from forensics.report.signing import SigningKey
from forensics.report.store import ReportStore, trigger_text
from forensics.report.verify import verify_report
from forensics.trigger import Trigger as LowTrigger
from tests.conftest import SHOP, archive_path
from tests.report.conftest import alert_for

RULE = "Drop and execute new binary in container"


def test_one_trigger_class() -> None:
    assert Trigger is RequestTrigger is LowTrigger
    with pytest.raises(ValueError, match="trigger kind 'falco-alert' is not 'alert' or "
                                         "'responder'"):
        Trigger("falco-alert")  # type: ignore[arg-type]


def test_report_trigger_of_an_alert_and_of_a_responder() -> None:
    alert = alert_for(SHOP)
    assert alert is not None
    assert trigger_dict(Trigger.from_alert(alert, policy="drop-and-execute")) == {
        "kind": "alert", "responder": None, "reason": None, "policy": "drop-and-execute",
        "alert": alert.to_json()}
    assert trigger_dict(Trigger.by_responder("alice", "pager #42")) == {
        "kind": "responder", "responder": "alice", "reason": "pager #42", "policy": None,
        "alert": None}


def _document(kind: str) -> dict[str, object]:
    alert = alert_for(SHOP)
    assert alert is not None
    capture = Provenance(Trigger.from_alert(alert, policy="drop-and-execute"), node="worker-2",
                         checkpoint_requested=datetime(2026, 11, 22, 7, 9, 54, tzinfo=UTC),
                         captured_by="local")
    with Checkpoint(archive_path(SHOP), hash_cache=False) as ckpt:
        doc = build_report(analyze(ckpt, Options(alert=alert)), capture)
    trigger = doc["trigger"]
    assert isinstance(trigger, dict) and trigger["kind"] == "alert"
    old = copy.deepcopy(doc)
    old["trigger"]["kind"] = kind  # what csi wrote before issue 12
    return old


@pytest.mark.parametrize("kind", ["alert", "falco-alert"])
def test_reports_of_both_words_verify_and_read_the_same(
        kind: str, store: ReportStore, key: SigningKey, tmp_path: Path) -> None:
    stored = save_report(_document(kind), store=store, key=key)
    result = verify_report(stored.file("report.json"), check_archive=False)
    assert result.ok, result.problems
    assert {c.name: c.status for c in result.checks}["schema"] == "ok"
    assert stored.row.trigger == f"falco: {RULE}"
    doc = _document(kind)
    assert trigger_text(doc["trigger"]) == f"falco: {RULE}"  # type: ignore[arg-type]
    doc["summary"] = {"alert_confirmed": True}
    assert trigger_lines(doc)[1:] == ["captured automatically by policy 'drop-and-execute'",
                                      "the checkpoint confirms the alert"]
