"""The journal: WAL, migrations, idempotent alerts, the capture state machine."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from forensics.orchestration.request import CaptureRequest, CaptureResult, Trigger
from forensics.receiver import journal as journal_module
from forensics.receiver.falco import decode_alert
from forensics.receiver.journal import Journal, JournalError, Settlement
from forensics.receiver.policy import load_policy
from tests.receiver.conftest import HOST, PAYMENTS, SHOP, UNKNOWN_POD, alert_bytes


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "j" / "journal.sqlite3")


def accept(journal: Journal, name: str, now: float = 100.0) -> tuple[str, bool]:
    body = alert_bytes(name)
    alert = decode_alert(body)
    accepted = journal.record_alert(alert, body, load_policy().decide(alert), now)
    return accepted.id, accepted.duplicate


def request_for(name: str) -> CaptureRequest:
    alert = decode_alert(alert_bytes(name))
    decision = load_policy().decide(alert)
    assert decision.target is not None
    return CaptureRequest(target=decision.target, trigger=Trigger(
        kind="alert", alert=alert))


def test_wal_sync_modes_and_migrations(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    normal = Journal(path)
    assert normal._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert normal._db.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    normal.close()
    full = Journal(path, "full")
    assert full._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    full.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT version FROM schema_migrations").fetchall() == [(1,)]
    with pytest.raises(JournalError, match="journal_sync 'sometimes'"):
        Journal(path, "sometimes")


def test_unwritable_home_is_a_journal_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(JournalError, match="cannot open the receiver journal"):
        Journal(tmp_path / "file" / "journal.sqlite3")


def test_a_repeated_alert_is_recorded_once(journal: Journal) -> None:
    first = accept(journal, SHOP)
    assert first[1] is False
    assert accept(journal, SHOP, 101.0) == (first[0], True)
    body = alert_bytes(PAYMENTS)
    alert = decode_alert(body)
    decision = load_policy().decide(alert)
    batch = journal.record_alerts([(alert, body, decision, 102.0)] * 3)  # repeats in one batch
    assert [a.duplicate for a in batch] == [False, True, True]
    assert [a.repeats for a in batch] == [0, 1, 2]
    rows = journal._select("SELECT id, repeats, last_seen FROM alerts ORDER BY seq", ())
    assert rows == [{"id": first[0], "repeats": 1, "last_seen": 101.0},
                    {"id": alert.id, "repeats": 2, "last_seen": 102.0}]
    assert [p.alert.id for p in journal.pending()] == [first[0], alert.id]


def test_settling_creates_at_most_one_capture_per_alert(journal: Journal) -> None:
    alert_id, _ = accept(journal, SHOP)
    host_id, _ = accept(journal, HOST)
    request = request_for(SHOP)
    journal.settle([Settlement(alert_id, "capture", "admitted", request, rule="r"),
                    Settlement(host_id, "host", "host process")], 200.0)
    journal.settle([Settlement(alert_id, "capture", "again", request, rule="r")], 201.0)
    assert journal.pending() == []
    alert = journal.alert(alert_id)
    assert alert is not None and (alert["outcome"], alert["reason"], alert["capture_id"],
                                  alert["settled"]) == ("capture", "admitted", request.id, 200.0)
    assert journal.capture_counts() == {"queued": 1, "running": 0, "done": 0, "failed": 0}
    host = journal.alert(host_id)
    assert host is not None and host["capture_id"] is None and host["outcome"] == "host"


def test_capture_state_machine(journal: Journal) -> None:
    ids = []
    for name in (SHOP, PAYMENTS):
        alert_id, _ = accept(journal, name)
        request = request_for(name)
        journal.settle([Settlement(alert_id, "capture", "ok", request, rule="r")], 10.0)
        ids.append(request.id)
    done, failed = ids
    assert journal.mark_running(done, 11.0) and not journal.mark_running(done, 11.5)
    journal.finish(done, CaptureResult(request_id=done, image_ref="img"), "", 12.0)
    journal.finish(done, None, "late", 13.0)  # not running any more: ignored
    assert journal.mark_running(failed, 11.0)
    journal.finish(failed, None, "pod not found", 12.0)
    rows = {r["id"]: r for r in journal.captures()}
    assert (rows[done]["state"], rows[done]["error"], rows[done]["attempts"]) == ("done", None, 1)
    assert '"image_ref": "img"' in rows[done]["result"]
    assert (rows[failed]["state"], rows[failed]["error"]) == ("failed", "pod not found")
    assert journal.captures("failed") == [rows[failed]]


def test_unfinished_captures_are_requeued(journal: Journal) -> None:
    requests = []
    for name in (SHOP, PAYMENTS):
        alert_id, _ = accept(journal, name)
        requests.append(request_for(name))
        journal.settle([Settlement(alert_id, "capture", "ok", requests[-1], rule="r")], 10.0)
    journal.mark_running(requests[0].id, 11.0)  # then the receiver was killed
    again = journal.requeue_unfinished()
    assert [r.id for r in again] == [r.id for r in requests]
    assert again == requests  # the same requests, JSON round-tripped
    assert journal.capture_counts()["queued"] == 2
    recent = journal.recent_captures(since=5.0)
    assert {(rule, t.key(), in_flight) for rule, t, _, in_flight in recent} == {
        ("r", r.target.key(), True) for r in requests}


def test_rejections_are_kept_and_pruned(journal: Journal,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal_module, "KEEP_REJECTIONS", 500)
    for i in range(2000):
        journal.record_rejection(400, f"bad {i}", "127.0.0.1", b"{", float(i))
    rows = journal._select("SELECT COUNT(*) AS n, MAX(reason) AS last FROM rejections", ())
    assert rows[0]["n"] == 500 and journal.writable() is None


def test_prune_forgets_only_what_ended_before_the_cutoff(journal: Journal) -> None:
    # shop: captured, done at 20; payments: captured, still running; host: settled, no
    # capture; unknown pod: journaled at 5 and never settled
    shop_id, _ = accept(journal, SHOP, 5.0)
    pay_id, _ = accept(journal, PAYMENTS, 5.0)
    host_id, _ = accept(journal, HOST, 5.0)
    stray_id, _ = accept(journal, UNKNOWN_POD, 5.0)
    shop, pay = request_for(SHOP), request_for(PAYMENTS)
    journal.settle([Settlement(shop_id, "capture", "ok", shop, rule="r"),
                    Settlement(pay_id, "capture", "ok", pay, rule="r"),
                    Settlement(host_id, "host", "host process")], 10.0)
    for request in (shop, pay):
        journal.mark_running(request.id, 11.0)
    journal.finish(shop.id, CaptureResult(request_id=shop.id, image_ref="img"), "", 20.0)

    assert journal.prune(before=5.0) == (0, 0)  # nothing ended before 5
    assert journal.prune(before=15.0) == (1, 0)  # the host alert; the shop capture ended at 20
    assert journal.alert(host_id) is None
    assert journal.prune(before=1e9) == (1, 1)  # the shop capture, then its alert
    assert journal.alert(shop_id) is None and journal.capture(shop.id) is None
    # the running capture, its alert and the unsettled alert are never pruned
    assert journal.capture(pay.id) is not None and journal.alert(pay_id) is not None
    assert [p.alert.id for p in journal.pending()] == [stray_id]
    # a pruned alert seen again is news: journaled afresh, not a duplicate
    assert accept(journal, SHOP, 2e9) == (shop_id, False)


@pytest.mark.parametrize(("retention", "kept_until"), [(3600.0, 3605.0), (60.0, 905.0)])
def test_the_receiver_prunes_after_its_retention_never_inside_the_guard_horizon(
        journal: Journal, retention: float, kept_until: float) -> None:
    # the default policy's cooldown is 15 min: a shorter retention still keeps what the
    # guard rails are rebuilt from at start-up
    from forensics.receiver.metrics import Metrics
    from forensics.receiver.service import Receiver

    host_id, _ = accept(journal, HOST, 5.0)
    journal.settle([Settlement(host_id, "host", "host process")], 5.0)
    now = [kept_until]
    receiver = Receiver(load_policy(), journal, Metrics(), retention=retention,
                        clock=lambda: now[0])
    assert receiver.horizon() == 900.0
    assert receiver.prune() == (0, 0) and journal.alert(host_id) is not None
    now[0] = kept_until + 0.5
    assert receiver.prune() == (1, 0) and journal.alert(host_id) is None
