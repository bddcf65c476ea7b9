"""Test-only capture pipelines: stand-ins for ``forensics.orchestration.pipeline.run_capture``.

Test-only wiring: injected through ``build_service(run_capture=…)``, or into a
``csi serve`` subprocess by the harness ``tests/serve_with.py
tests.receiver.capture_doubles:recording``, with the repository root on
``PYTHONPATH`` (no serve setting can name a module to import). They are
real functions with the pipeline's signature that do no checkpointing:

* :func:`recording` sleeps ``CSI_TEST_CAPTURE_DELAY`` seconds (default 0.05)
  and appends ``start``/``done`` lines with the request id to
  ``CSI_TEST_CAPTURE_LOG``. Like the real pipeline must be, it is idempotent
  by request id: a capture requeued after a crash whose work had completed
  (the crash fell between the pipeline's return and the journal's commit)
  is recognised, logged as ``skip`` and not done twice.
* :func:`fixture_cluster` behaves like the pipeline against a cluster that
  has only the two fixture pods: any other pod fails to resolve with the
  error the pipeline raises (``pod NS/NAME not found``).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from forensics.errors import CsiError
from forensics.orchestration.request import CaptureRequest, CaptureResult

FIXTURE_PODS = {("prod", "shop-frontend-7d9c6b5f4-x2x9q"), ("payments",
                                                            "payments-api-5b8f7c9d8-qq7lm")}
_lock = threading.Lock()


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _result(request: CaptureRequest) -> CaptureResult:
    return CaptureResult(request_id=request.id, archive_sha256="0" * 64,
                         image_ref=f"localhost/checkpoints/{request.id}@sha256:{'1' * 64}",
                         manifest_digest="sha256:" + "1" * 64, report_id=request.id,
                         verdict="test")


def recording(request: CaptureRequest) -> CaptureResult:
    log = os.environ["CSI_TEST_CAPTURE_LOG"]
    delay = float(os.environ.get("CSI_TEST_CAPTURE_DELAY", "0.05"))
    _append(log, f"start {request.id}")
    with _lock:
        done = f"done {request.id} " in Path(log).read_text() if os.path.exists(log) else False
    if done:
        _append(log, f"skip {request.id}")
        return _result(request)
    time.sleep(delay)
    _append(log, f"done {request.id} {request.target.key()}")
    return _result(request)


def fixture_cluster(request: CaptureRequest) -> CaptureResult:
    target = request.target
    if (target.namespace, target.pod) not in FIXTURE_PODS:
        raise CsiError(f"pod {target.namespace}/{target.pod} not found",
                       why="the Kubernetes API has no such pod")
    return _result(request)
