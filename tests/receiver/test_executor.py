"""The local executor: bounded workers, results in the journal, clear failures."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from forensics.errors import CsiError, UsageError
from forensics.orchestration.request import CaptureRequest, CaptureResult, Target, Trigger
from forensics.receiver.executor import (
    ExecutorUnavailable,
    LocalExecutor,
    load_run_capture,
    make_executor,
)
from forensics.receiver.falco import decode_alert
from forensics.receiver.journal import Journal, Settlement
from forensics.receiver.policy import load_policy
from tests.receiver.conftest import SHOP, alert_bytes, wait_until


def queued(journal: Journal, n: int, nodes: int = 0) -> list[CaptureRequest]:
    """``n`` journaled, queued captures of distinct pods."""
    body = alert_bytes(SHOP)
    alert = decode_alert(body)
    decision = load_policy().decide(alert)
    requests = []
    for i in range(n):
        retimed = json.dumps(json.loads(body) | {"time": f"2026-11-22T07:00:00.{i:09d}Z"})
        one = decode_alert(retimed.encode())
        journal.record_alert(one, retimed.encode(), decision, 1.0)
        request = CaptureRequest(
            target=Target(backend="kubernetes", namespace="prod", pod=f"p{i}", container="c",
                          node=f"n{i % nodes if nodes else i}"),
            trigger=Trigger(kind="alert", alert=one))
        journal.settle([Settlement(one.id, "capture", "ok", request, rule=alert.rule)], 2.0)
        requests.append(request)
    return requests


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.sqlite3")


def test_runs_captures_and_records_results(journal: Journal) -> None:
    finished: list[tuple[str, str]] = []

    def run(request: CaptureRequest) -> CaptureResult:
        if request.target.pod == "p1":
            raise CsiError("pod prod/p1 not found")
        if request.target.pod == "p2":
            raise ValueError("a bug")
        if request.target.pod == "p3":
            return CaptureResult(request_id=request.id, error="kubelet said 500")
        return CaptureResult(request_id=request.id, image_ref="img@sha256:" + "0" * 64)

    requests = queued(journal, 4)
    executor = LocalExecutor(journal, run, workers=2,
                             on_finished=lambda r, state, s: finished.append((r.target.pod,
                                                                              state)))
    assert executor.readiness() is None
    for request in requests:
        executor.submit(request)
    assert executor.drain(10) == 0
    rows = {r["id"]: r for r in journal.captures()}
    states = [(rows[r.id]["state"], rows[r.id]["error"]) for r in requests]
    assert states == [("done", None), ("failed", "pod prod/p1 not found"),
                      ("failed", "internal error: ValueError: a bug"),
                      ("failed", "kubelet said 500")]
    assert sorted(finished) == [("p0", "done"), ("p1", "failed"), ("p2", "failed"),
                                ("p3", "failed")]


def test_workers_bound_the_concurrency(journal: Journal) -> None:
    running, peak = 0, 0
    lock = threading.Lock()

    def run(request: CaptureRequest) -> CaptureResult:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return CaptureResult(request_id=request.id)

    executor = LocalExecutor(journal, run, workers=2)
    for request in queued(journal, 8):
        executor.submit(request)
    wait_until(lambda: executor.pending() == 0, 10, "captures did not finish")
    assert peak == 2
    assert journal.capture_counts()["done"] == 8


def test_a_capture_no_longer_queued_is_not_run_again(journal: Journal) -> None:
    calls: list[str] = []
    request = queued(journal, 1)[0]
    journal.mark_running(request.id, 3.0)
    journal.finish(request.id, CaptureResult(request_id=request.id), "", 4.0)
    executor = LocalExecutor(journal, lambda r: calls.append(r.id) or CaptureResult(r.id))
    executor.submit(request)
    executor.drain(5)
    assert calls == []


def test_one_capture_per_node_at_a_time(journal: Journal) -> None:
    running: dict[str, int] = {}
    peak: dict[str, int] = {}
    lock = threading.Lock()

    def run(request: CaptureRequest) -> CaptureResult:
        node = request.target.node
        with lock:
            running[node] = running.get(node, 0) + 1
            peak[node] = max(peak.get(node, 0), running[node])
        time.sleep(0.03)
        with lock:
            running[node] -= 1
        return CaptureResult(request_id=request.id)

    executor = LocalExecutor(journal, run, workers=4, max_per_node=1)
    for request in queued(journal, 8, nodes=2):  # four captures on n0, four on n1
        executor.submit(request)
    assert executor.drain(10) == 0
    assert peak == {"n0": 1, "n1": 1}


def test_drain_leaves_unstarted_captures_queued(journal: Journal) -> None:
    release = threading.Event()

    def run(request: CaptureRequest) -> CaptureResult:
        release.wait(5)
        return CaptureResult(request_id=request.id)

    executor = LocalExecutor(journal, run, workers=1)
    for request in queued(journal, 3):
        executor.submit(request)
    wait_until(lambda: journal.capture_counts()["running"] == 1, 5, "did not start")
    assert executor.drain(0.2) == 3
    assert executor.readiness() == "the local executor is shutting down"
    release.set()
    wait_until(lambda: journal.capture_counts()["done"] == 1, 5, "did not finish")
    time.sleep(0.1)
    assert journal.capture_counts() == {"queued": 2, "running": 0, "done": 1, "failed": 0}


def test_the_pipeline_is_imported_lazily_with_a_clear_error(journal: Journal) -> None:
    executor = LocalExecutor(journal, "forensics.capture.no_such_module:run_capture")
    problem = executor.readiness()
    assert problem is not None and "cannot be imported" in problem
    request = queued(journal, 1)[0]
    executor.submit(request)
    executor.drain(5)
    row = journal.capture(request.id)
    assert row is not None and row["state"] == "failed" and "cannot be imported" in row["error"]
    with pytest.raises(ExecutorUnavailable, match="has no function nope"):
        load_run_capture("forensics.errors:nope")
    with pytest.raises(UsageError, match="MODULE:FUNCTION"):
        load_run_capture("forensics.errors")
    assert load_run_capture("tests.receiver.capture_doubles:recording").__name__ == "recording"


def test_argo_needs_its_server(journal: Journal) -> None:
    with pytest.raises(UsageError, match=r"executor 'argo' needs the Argo Server: set "
                       r"argo_server \(CSI_ARGO_SERVER\)"):
        make_executor("argo", journal)
    with pytest.raises(UsageError, match="unknown executor 'k8s'"):
        make_executor("k8s", journal)
    assert make_executor("local", journal).name == "local"


def test_journal_disk_full_at_finish_is_one_line_not_a_traceback(
        journal: Journal, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A full journal disk when a capture ends is logged as one line: no traceback, and the
    worker goes on to the next capture."""
    import sqlite3

    def full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    requests = queued(journal, 2)
    monkeypatch.setattr(journal, "finish", full)
    executor = LocalExecutor(journal, lambda r: CaptureResult(r.id), workers=1)
    for request in requests:
        executor.submit(request)
    assert executor.drain(10) == 0
    lines = [r for r in caplog.records if "could not be recorded" in r.getMessage()]
    assert [r.getMessage() for r in lines] == [
        f"capture {r.id} could not be recorded in the journal: database or disk is full "
        "(it stays queued or running there)" for r in requests]
    assert all(r.exc_info is None for r in lines)
