"""The receiver's core, free of HTTP: accept an alert, settle it, track its capture.

The accept path is short: validate, decide (the policy is a pure function of
the alert), journal (group commit on the writer thread, :mod:`.writer`), answer
once committed. The guard rails and capture submission run afterwards in one
background task on the same event loop, a batch of alerts per journal
transaction; captures run on the executor's threads and their completion comes
back through :meth:`Receiver.capture_finished`. Everything the receiver learns
is journaled: every alert with its outcome, every capture with its state. If
the process dies in between, the next start settles what was journaled but not
yet settled (:meth:`Receiver.start`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forensics.orchestration.request import Backend, CaptureRequest, Trigger
from forensics.receiver.executor import Executor
from forensics.receiver.falco import Alert, InvalidAlert, InvalidJson, decode_alert
from forensics.receiver.guards import Guards
from forensics.receiver.journal import Accepted, Journal, JournalError, Pending, Settlement
from forensics.receiver.metrics import Metrics
from forensics.receiver.policy import Policy
from forensics.receiver.targets import target_dict
from forensics.receiver.writer import JournalWriter

BATCH = 512
PRUNE_INTERVAL = 3600.0  # seconds between journal prunes
log = logging.getLogger("csi.receiver")


@dataclass(frozen=True)
class Answer:
    """An HTTP status and its JSON body (``{"error": …}`` for refusals)."""

    status: int
    body: dict[str, Any]
    reject: str = ""  # the metric's reason label for a refusal


def rfc3339(moment: float | None) -> str | None:
    if moment is None:
        return None
    text = datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


class Receiver:
    def __init__(self, policy: Policy, journal: Journal, metrics: Metrics, *,
                 backend: Backend = "kubernetes", registry: str | None = None,
                 reports_root: Path | None = None, retention: float = 0.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.policy, self.journal, self.metrics = policy, journal, metrics
        self.retention = retention  # seconds; 0: the journal keeps everything
        self.backend, self.registry, self.reports_root = backend, registry, reports_root
        self.clock = clock
        self.guards = Guards(policy.guards, clock)
        self.executor: Executor | None = None
        self._queue: asyncio.Queue[Pending] | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: JournalWriter | None = None
        self._pruner: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ accepting

    async def accept(self, body: bytes, remote: str) -> Answer:
        """Validate, decide, journal (committed) and enqueue one alert."""
        try:
            alert = decode_alert(body)
        except InvalidAlert as exc:
            reason = "invalid_json" if isinstance(exc, InvalidJson) else "invalid_alert"
            return self.refuse(400, reason, str(exc), remote, body)
        decision = self.policy.decide(alert, self.backend)
        try:
            if self._writer is not None:
                committed = self._writer.record(alert, body, decision, self.clock())
                # settled once committed, even if this request is cancelled meanwhile
                committed.add_done_callback(functools.partial(self._committed, alert))
                accepted = await asyncio.shield(committed)
            else:  # not started: journaled, and settled at the next start
                accepted = self.journal.record_alert(alert, body, decision, self.clock())
        except JournalError as exc:
            log.error("%s", exc)
            return Answer(503, {"error": f"journal unavailable: {exc}"}, "unavailable")
        shown = accepted.decision
        return Answer(202, {
            "id": accepted.id, "decision": shown.action, "policy_rule": shown.rule,
            "reasons": list(shown.reasons),
            "target": target_dict(shown.target) if shown.target else None,
            "duplicate": accepted.duplicate, "links": {"alert": f"/api/v1/alerts/{accepted.id}"},
        })

    def _committed(self, alert: Alert, future: asyncio.Future[Accepted]) -> None:
        """The alert's transaction committed: count it, and queue it to be settled."""
        if future.cancelled() or future.exception() is not None:
            return
        accepted = future.result()
        (self.metrics.accepted_repeat if accepted.duplicate else self.metrics.accepted_new).inc()
        if not accepted.duplicate and self._queue is not None:
            self._queue.put_nowait(Pending(alert, accepted.decision))

    def refuse(self, status: int, reason: str, message: str, remote: str,
               body: bytes = b"", *, journal: bool = True) -> Answer:
        """A 4xx answer; refused bodies (authenticated ones) are journaled too.

        ``journal=False``: the client is not authenticated (yet), so nothing it
        sent may take room in the journal."""
        if journal and reason != "unauthenticated":
            try:
                self.journal.record_rejection(status, message, remote, body[:2048], self.clock())
            except JournalError as exc:
                log.error("%s", exc)
        return Answer(status, {"error": message}, reason)

    # ------------------------------------------------------------ settling

    async def start(self) -> None:
        """Rebuild the guard rails, requeue unfinished captures, settle pending alerts."""
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        horizon = self.clock() - self.horizon()
        for rule, target, created, in_flight in self.journal.recent_captures(horizon):
            self.guards.restore(rule, target, created, in_flight)
        requeued = self.journal.requeue_unfinished()
        for request in requeued:
            self._submit(request)
        pending = self.journal.pending()
        for start in range(0, len(pending), BATCH):
            self.settle(pending[start:start + BATCH])
        if requeued or pending:
            log.info("resumed %d unfinished capture(s) and settled %d pending alert(s)",
                     len(requeued), len(pending))
        self._writer = JournalWriter(self.journal, self._loop)
        self._task = asyncio.create_task(self._run(), name="csi-settle")
        if self.retention:
            self._pruner = asyncio.create_task(self._prune_every(PRUNE_INTERVAL),
                                               name="csi-prune")

    def horizon(self) -> float:
        """How far back the guard rails look (dedup window, cooldown)."""
        return max(self.policy.guards.dedup_window, self.policy.guards.cooldown)

    def prune(self) -> tuple[int, int]:
        """Forget alerts and captures that ended ``retention`` ago (never inside the
        guard rails' horizon, which start() rebuilds from the journal)."""
        before = self.clock() - max(self.retention, self.horizon())
        alerts, captures = self.journal.prune(before)
        if alerts or captures:
            log.info("journal: pruned %d alert(s) and %d capture(s) older than %s",
                     alerts, captures, rfc3339(before))
        return alerts, captures

    async def _prune_every(self, interval: float) -> None:
        assert self._writer is not None
        while True:  # at start-up, then every interval; a failure waits for the next round
            try:
                await self._writer.call(self.prune)
            except Exception as exc:
                log.error("journal: cannot prune: %s", exc)
            await asyncio.sleep(interval)

    async def _run(self) -> None:
        assert self._queue is not None and self._writer is not None
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            settlements = self._settlements(batch)
            delay = 0.5
            while True:  # the guard rails counted these outcomes: journal exactly these
                try:
                    await self._writer.call(functools.partial(self.journal.settle, settlements,
                                                              self.clock()))
                    break
                except Exception as exc:  # disk full, I/O error: retry; readyz says why
                    log.error("cannot settle %d alert(s), retrying in %.0fs: %s",
                              len(batch), delay, exc)
                    await asyncio.sleep(delay)
                    delay = min(30.0, delay * 2)
            self._settled(settlements)

    def settle(self, batch: list[Pending]) -> None:
        """Apply the guard rails to a batch and journal the outcomes in one transaction."""
        settlements = self._settlements(batch)
        try:
            self.journal.settle(settlements, self.clock())
        except JournalError:
            self._unsettled(settlements)
            raise
        self._settled(settlements)

    def _settlements(self, batch: list[Pending]) -> list[Settlement]:
        return [self._settlement(item) for item in batch]

    def _unsettled(self, settlements: list[Settlement]) -> None:
        for s in settlements:
            if s.capture is not None:
                self.guards.release(s.capture.target)

    def _settled(self, settlements: list[Settlement]) -> None:
        requests = [s.capture for s in settlements if s.capture is not None]
        for s in settlements:
            self.metrics.outcome(s.outcome).inc()
            if s.outcome == "notified":
                log.warning("notify: %s", s.reason)
        for request in requests:
            log.info("capture %s queued for %s", request.id, request.target.key())
            self._submit(request)

    def _settlement(self, item: Pending) -> Settlement:
        alert, decision = item.alert, item.decision
        if decision.action != "capture" or decision.target is None:
            return Settlement(alert.id, decision.outcome, decision.reasons[0])
        verdict = self.guards.admit(alert.rule, decision.target)
        if not verdict.admitted:
            self.metrics.suppression(verdict.code).inc()
            return Settlement(alert.id, "suppressed", verdict.reason)
        request = CaptureRequest(target=decision.target, trigger=self._trigger(alert,
                                                                               decision.rule),
                                 registry=self.registry, analyze=decision.analyze)
        return Settlement(alert.id, "capture", verdict.reason, request, rule=alert.rule)

    @staticmethod
    def _trigger(alert: Alert, policy_rule: str) -> Trigger:
        reason = (f"Falco rule {alert.rule!r} ({alert.priority}) on {alert.hostname or '?'} "
                  f"at {alert.time}; policy rule {policy_rule!r}")
        return Trigger(kind="alert", reason=reason, alert=alert, policy=policy_rule)

    def _submit(self, request: CaptureRequest) -> None:
        if self.executor is not None:
            self.executor.submit(request)

    def capture_finished(self, request: CaptureRequest, state: str, seconds: float) -> None:
        """Called by the executor, from any thread, when a capture is done or failed."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # closed meanwhile: the journal has it
            loop.call_soon_threadsafe(self._finished, request, state, seconds)

    def _finished(self, request: CaptureRequest, state: str, seconds: float) -> None:
        self.guards.release(request.target)
        self.metrics.finished.labels(state).inc()
        self.metrics.capture_seconds.observe(seconds)

    async def stop(self, drain_timeout: float) -> None:
        """Settle what is queued, then let running captures finish (up to the timeout)."""
        if self._queue is not None:
            rest: list[Pending] = []
            while not self._queue.empty():
                rest.append(self._queue.get_nowait())
            if rest:
                try:
                    self.settle(rest)
                except Exception:
                    log.exception("cannot settle %d alert(s) at shutdown", len(rest))
        for task in (self._task, self._pruner):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._writer is not None:
            await asyncio.to_thread(self._writer.stop)
            self._writer = None
        if self.executor is not None:
            left = await asyncio.to_thread(self.executor.drain, drain_timeout)
            if left:
                log.warning("%d capture(s) unfinished after %.0fs; they resume at the next "
                            "start", left, drain_timeout)

    # ------------------------------------------------------------ status

    def queue_depth(self) -> int:
        waiting = self._queue.qsize() if self._queue is not None else 0
        return waiting + (self.executor.pending() if self.executor is not None else 0)

    def readiness(self) -> str | None:
        problem = self.journal.writable()
        if problem is None and self.executor is not None:
            problem = self.executor.readiness()
        return problem

    def capture_view(self, row: dict[str, Any]) -> dict[str, Any]:
        request = json.loads(row["request"])
        result = json.loads(row["result"]) if row["result"] else None
        report_id = (result or {}).get("report_id") or None
        report = None
        if report_id:
            report = str(self.reports_root / report_id / "report.json") \
                if self.reports_root else report_id
        return {
            "id": row["id"], "alert_id": row["alert_id"], "state": row["state"],
            "rule": row["rule"], "target": request["target"], "attempts": row["attempts"],
            "created": rfc3339(row["created"]), "started": rfc3339(row["started"]),
            "finished": rfc3339(row["finished"]), "error": row["error"], "result": result,
            "links": {"self": f"/api/v1/captures/{row['id']}",
                      "alert": f"/api/v1/alerts/{row['alert_id']}",
                      "report": report, "image": (result or {}).get("image_ref") or None},
        }

    @staticmethod
    def alert_view(row: dict[str, Any]) -> dict[str, Any]:
        capture = row["capture_id"]
        return {
            "id": row["id"], "fingerprint": row["fingerprint"], "rule": row["rule"],
            "priority": row["priority"], "source": row["source"], "hostname": row["hostname"],
            "time": row["time"], "received": rfc3339(row["received"]),
            "repeats": row["repeats"], "decision": json.loads(row["decision"]),
            "state": row["state"], "outcome": row["outcome"], "reason": row["reason"],
            "capture_id": capture, "settled": rfc3339(row["settled"]),
            "links": {"self": f"/api/v1/alerts/{row['id']}",
                      "capture": f"/api/v1/captures/{capture}" if capture else None},
        }
