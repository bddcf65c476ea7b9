"""Helpers for the receiver tests: the fixture alerts and a real server on 127.0.0.1.

:class:`ServerThread` runs the same :func:`~forensics.receiver.server.serving`
as ``csi serve``, on an event loop in a background thread, listening on an
ephemeral loopback port; the tests talk to it over real HTTP.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from forensics.errors import CsiError
from forensics.orchestration.request import CaptureRequest, CaptureResult
from forensics.receiver.config import ServeConfig
from forensics.receiver.policy import Policy
from forensics.receiver.server import Service, build_service, serving
from tests.receiver.capture_doubles import FIXTURE_PODS

FALCO = Path(__file__).resolve().parent.parent / "data" / "falco"
SHOP = "drop-and-execute-shop-frontend.json"
PAYMENTS = "reverse-shell-payments-sidekick.json"
UNKNOWN_POD = "terminal-shell-unknown-pod.json"
HOST = "host-process-alert.json"
INTERNAL = "falco-internal-drop.json"
NULLS = "unresolved-pod-null-fields.json"
TOKEN = "test-token-0123456789abcdef"


def alert_bytes(name: str) -> bytes:
    return (FALCO / name).read_bytes()


def alert_json(name: str) -> dict[str, Any]:
    return dict(json.loads(alert_bytes(name)))


class Recorder:
    """A capture pipeline double for in-process servers: records every request.

    Pods other than the two fixture pods fail to resolve, as the pipeline's
    Kubernetes lookup would fail for them.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.requests: list[CaptureRequest] = []
        self._lock = threading.Lock()

    def __call__(self, request: CaptureRequest) -> CaptureResult:
        with self._lock:
            self.requests.append(request)
        if self.delay:
            time.sleep(self.delay)
        target = request.target
        if target.backend == "kubernetes" and (target.namespace, target.pod) not in FIXTURE_PODS:
            raise CsiError(f"pod {target.namespace}/{target.pod} not found")
        return CaptureResult(request_id=request.id, report_id="r" + request.id[:11],
                             image_ref=f"registry.test/ckpt@sha256:{'a' * 64}")


class ServerThread:
    """``csi serve`` in a background thread, on 127.0.0.1 and an ephemeral port."""

    def __init__(self, config: ServeConfig, *, policy: Policy | None = None,
                 run_capture: Callable[[CaptureRequest], CaptureResult] | str | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.service: Service = build_service(config, policy, run_capture=run_capture,
                                              clock=clock)
        self.port = 0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="csi-serve-test", daemon=True)

    @property
    def scheme(self) -> str:
        return "https" if self.service.ssl_context else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def journal(self) -> Any:
        return self.service.receiver.journal

    def __enter__(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("the test server did not start")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced by __enter__
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serving(self.service) as addresses:
            self.port = addresses[0][1]
            self._ready.set()
            await self._stop.wait()

    def settled(self, timeout: float = 20.0) -> None:
        """Wait until every journaled alert is settled and no capture is unfinished."""
        receiver = self.service.receiver

        def idle() -> bool:
            counts = receiver.journal.capture_counts()
            pending = receiver.journal._select(
                "SELECT COUNT(*) AS n FROM alerts WHERE state = 'received'", ())[0]["n"]
            return bool(pending == 0 and counts["queued"] == 0 and counts["running"] == 0
                        and receiver.queue_depth() == 0)

        wait_until(idle, timeout, "the receiver did not settle")

    def rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return list(self.journal._select(sql, args))


def wait_until(predicate: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(message)


@pytest.fixture
def base_config(tmp_path: Path) -> ServeConfig:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    return ServeConfig(listen="127.0.0.1:0", home=str(tmp_path / "home"),
                       token_file=str(token), drain_timeout=5.0)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(base_config: ServeConfig, recorder: Recorder) -> Iterator[ServerThread]:
    with ServerThread(replace(base_config, max_body=64 * 1024), run_capture=recorder) as srv:
        yield srv


def auth_headers(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
