"""Executors: who runs a capture request once the receiver has admitted it.

An :class:`Executor` takes a journaled :class:`~forensics.orchestration.request.CaptureRequest`
(``submit``, which must not block) and says whether it can take work
(``readiness``: None when ready, else why not). Results go back to the journal.

* :class:`LocalExecutor` (the embedded default) runs the capture pipeline
  in-process on ``max_cluster`` worker threads, at most ``max_per_node`` at a
  time on one node (:class:`~forensics.receiver.guards.Slots`), against the
  backend the request names. The pipeline is ``forensics.orchestration.pipeline.run_capture``,
  imported at first use. Tests and benchmarks inject another function with the
  same signature through the constructor (or ``build_service(run_capture=…)``;
  tests/serve_with.py for a ``csi serve`` subprocess); no serve setting or
  environment variable can name a module to import.
* ``argo`` (a cluster) runs each capture as a ``csi-capture`` Workflow: the same
  bounded worker pool, whose capture function submits the WorkflowTemplate
  through the Argo Server (hera's ``WorkflowsService``), labelled with the
  alert's fingerprint so that a restarted receiver finds its earlier Workflow
  instead of submitting twice, and follows it to completion
  (:func:`argo_run_capture`).

A capture interrupted by a crash is requeued and run again on restart (the
journal cannot know whether it finished): a request's ``id`` is stable, so the
pipeline can recognise a rerun of a capture it already completed.
"""

from __future__ import annotations

import importlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from forensics.errors import CsiError, UsageError
from forensics.orchestration.request import CaptureRequest, CaptureResult
from forensics.receiver.guards import Slots
from forensics.receiver.journal import Journal

if TYPE_CHECKING:
    from forensics.orchestration.argo import ArgoSettings

RunCapture = Callable[[CaptureRequest], CaptureResult]
Finished = Callable[[CaptureRequest, str, float], None]  # request, state, seconds
DEFAULT_RUN_CAPTURE = "forensics.orchestration.pipeline:run_capture"
EXECUTORS = ("local", "argo")
log = logging.getLogger("csi.receiver")


class ExecutorUnavailable(CsiError):
    """The executor cannot run captures (its pipeline or service is missing)."""

    permanent = False


class Executor(Protocol):
    """What the receiver needs from whoever runs captures."""

    name: str

    def submit(self, request: CaptureRequest) -> None:
        """Take a journaled (``queued``) capture; never blocks on the capture itself."""

    def readiness(self) -> str | None:
        """None when captures can be run now, else the one-line reason."""

    def pending(self) -> int:
        """Captures submitted and not finished (queued here or running)."""

    def drain(self, timeout: float) -> int:
        """Stop taking work, wait up to ``timeout`` s; return how many are unfinished."""


def load_run_capture(spec: str) -> RunCapture:
    """Import ``MODULE:FUNCTION``; the error says what is missing."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UsageError(f"run_capture {spec!r} is not MODULE:FUNCTION")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ExecutorUnavailable(f"the capture pipeline {spec} cannot be imported",
                                  why=str(exc), hint="install csi with its capture "
                                  "pipeline, or set run_capture in the serve config") from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise ExecutorUnavailable(f"the capture pipeline {spec} is missing",
                                  why=f"{module_name} has no function {attr}")
    return function  # type: ignore[no-any-return]


class LocalExecutor:
    """Runs captures in this process, within the concurrency limits of :class:`Slots`.

    Captures wait in submission order; a worker takes the first whose node has
    a free slot, so a busy node does not hold up captures on other nodes.
    """

    name = "local"

    def __init__(self, journal: Journal, run_capture: RunCapture | str = DEFAULT_RUN_CAPTURE,
                 *, workers: int = 4, max_per_node: int | None = None,
                 on_finished: Finished | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.journal = journal
        self._spec = run_capture if isinstance(run_capture, str) else ""
        self._function: RunCapture | None = None if isinstance(run_capture, str) else run_capture
        self._load_lock = threading.Lock()
        self.on_finished = on_finished
        self.clock = clock
        workers = max(1, workers)
        self.slots = Slots(max_per_node or workers, workers)
        self._waiting: list[CaptureRequest] = []
        self._unfinished = 0
        self._cond = threading.Condition()
        self._closing = False  # no new work
        self._stopped = False  # no more work at all: waiting requests stay queued
        self._threads = [threading.Thread(target=self._work, name=f"csi-capture-{i}",
                                          daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, request: CaptureRequest) -> None:
        with self._cond:
            if self._closing:
                return  # stays queued in the journal: the next start runs it
            self._waiting.append(request)
            self._unfinished += 1
            self._cond.notify_all()

    def readiness(self) -> str | None:
        if self._closing:
            return "the local executor is shutting down"
        try:
            self._run_capture()
        except CsiError as exc:
            return str(exc)
        return None

    def pending(self) -> int:
        return self._unfinished

    def drain(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closing = True
            while self._unfinished and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            left = self._unfinished
            self._stopped = True
            self._cond.notify_all()
        return left

    def _run_capture(self) -> RunCapture:
        with self._load_lock:
            if self._function is None:
                self._function = load_run_capture(self._spec)
            return self._function

    def _next(self) -> CaptureRequest | None:
        """The first waiting request whose node has a free slot (its slot taken)."""
        with self._cond:
            while not self._stopped:
                for i, request in enumerate(self._waiting):
                    if self.slots.try_acquire(Slots.node_of(request.target)):
                        return self._waiting.pop(i)
                self._cond.wait()
            return None

    def _work(self) -> None:
        while (request := self._next()) is not None:
            try:
                self._run(request)
            except (sqlite3.Error, OSError, CsiError) as exc:  # the journal failed (disk full)
                log.error("capture %s could not be recorded in the journal: %s (it stays "
                          "queued or running there)", request.id, exc)
            except Exception:  # a bug in csi: the capture stays queued or running
                log.exception("capture %s could not be recorded", request.id)
            finally:
                with self._cond:
                    self.slots.release(Slots.node_of(request.target))
                    self._unfinished -= 1
                    self._cond.notify_all()

    def _run(self, request: CaptureRequest) -> None:
        if not self.journal.mark_running(request.id, self.clock()):
            log.info("capture %s is no longer queued; not run again", request.id)
            return
        started = time.monotonic()
        result: CaptureResult | None = None
        error = ""
        try:
            result = self._run_capture()(request)
            error = result.error
        except CsiError as exc:
            error = str(exc)
        except Exception as exc:  # a bug in the pipeline: recorded, the receiver goes on
            log.exception("capture %s crashed", request.id)
            error = f"internal error: {type(exc).__name__}: {exc}"
        elapsed = time.monotonic() - started
        self.journal.finish(request.id, result, error, self.clock())
        state = "failed" if error or result is None else "done"
        target = request.target.key()
        if error:
            log.warning("capture %s of %s failed after %.1fs: %s", request.id, target, elapsed,
                        error)
        else:
            log.info("capture %s of %s done in %.1fs", request.id, target, elapsed)
        if self.on_finished is not None:
            self.on_finished(request, state, elapsed)


def make_executor(name: str, journal: Journal, *, run_capture: RunCapture | str =
                  DEFAULT_RUN_CAPTURE, workers: int = 4, max_per_node: int | None = None,
                  on_finished: Finished | None = None) -> Executor:
    """The executor named by ``--executor``."""
    if name == "local":
        return LocalExecutor(journal, run_capture, workers=workers, max_per_node=max_per_node,
                             on_finished=on_finished)
    if name == "argo":
        if isinstance(run_capture, str) and run_capture == DEFAULT_RUN_CAPTURE:
            raise UsageError("executor 'argo' needs the Argo Server: set argo_server "
                             "(CSI_ARGO_SERVER) in the serve config")
        executor = LocalExecutor(journal, run_capture, workers=workers,
                                 max_per_node=max_per_node, on_finished=on_finished)
        executor.name = "argo"
        return executor
    raise UsageError(f"unknown executor {name!r} (choose from {', '.join(EXECUTORS)})")


def argo_run_capture(settings: ArgoSettings) -> RunCapture:
    """A capture function that runs the capture as a ``csi-capture`` Workflow and waits."""

    def run(request: CaptureRequest) -> CaptureResult:
        from forensics.orchestration import argo

        name = argo.submit_capture(request, settings)  # finds an earlier one by fingerprint
        done = argo.check(argo.follow(name, settings))
        return CaptureResult(request_id=request.id, image_ref=done.image_ref,
                             report_id=done.report_id, verdict=done.verdict,
                             timeline={"workflow": f"{done.namespace}/{done.name}"})

    return run
