"""Crash test: ``kill -9`` the receiver under load, restart it, and check the journal.

``csi serve`` runs as a subprocess with a temporary CSI_HOME. Its capture
pipeline is test-only wiring: the harness ``tests/serve_with.py`` selects
:func:`tests.receiver.capture_doubles.recording`, which takes 100 ms and
appends ``done <request id>`` to a file. Four threads fire alerts for 150
containers (each container's first alert is capture-worthy, its repeats are
deduplicated) until the receiver is killed mid-load with SIGKILL; then it is
restarted on the same home and left to finish. Every alert that was answered
202 must be in the journal, settled, and every capture-worthy alert must have
led to exactly one capture that ran to completion exactly once.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.receiver.conftest import SHOP, TOKEN, alert_json, wait_until

ROOT = Path(__file__).resolve().parents[2]
PODS = 150
POLICY = """\
rules:
  - name: every-container
    match: {sources: [syscall]}
    action: capture
guards: {dedup_window: 5m, cooldown: 15m, max_per_node: 1000, max_cluster: 4,
         max_queued: 1000, rate: 1000000/min, burst: 1000000}
"""
_LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


RECORDING = "tests.receiver.capture_doubles:recording"


class Serve:
    """``csi serve`` as a subprocess; its stderr goes to ``log``."""

    def __init__(self, home: Path, log: Path, env: dict[str, str],
                 capture: str | None = None) -> None:
        """``capture``: a test double's MODULE:FUNCTION (the harness tests/serve_with.py)."""
        self.log = log
        self.handle = log.open("ab")
        self.offset = log.stat().st_size
        argv = [str(ROOT / "tests" / "serve_with.py"), capture] if capture else \
            ["-m", "forensics.cli.main", "serve"]
        self.proc = subprocess.Popen([sys.executable, *argv],
                                     cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                     stderr=self.handle)
        self.port = 0
        deadline = time.monotonic() + 30
        while not self.port:
            text = log.read_bytes()[self.offset:].decode(errors="replace")
            match = _LISTENING.search(text)
            if match:
                self.port = int(match.group(1))
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"csi serve did not start: {text[-800:]}")
            else:
                time.sleep(0.05)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.handle.close()


def alerts() -> list[bytes]:
    """Each of PODS containers alerting five times (re-timed, as Falco repeats them),
    every fifth alert also sent twice byte for byte; first the first alert of each."""
    base = alert_json(SHOP)
    bodies = []
    for repeat in range(5):
        for i in range(PODS):
            fields = base["output_fields"] | {"k8s.pod.name": f"shop-{i:03d}",
                                              "container.id": f"{i:012x}"}
            alert = base | {"output_fields": fields, "hostname": f"worker-{i % 7}",
                            "time": f"2026-11-22T07:10:{repeat:02d}.{i:09d}Z"}
            body = json.dumps(alert).encode()
            bodies.append(body)
            if i % 5 == 0:
                bodies.append(body)
    return bodies


def journal(home: Path, sql: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(home / "receiver" / "journal.sqlite3")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


@pytest.mark.slow
def test_kill_9_under_load_loses_no_accepted_alert_and_runs_each_capture_once(
        tmp_path: Path) -> None:
    home, captures = tmp_path / "home", tmp_path / "captures.log"
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "policy.yaml").write_text(POLICY)
    env = {**os.environ, "CSI_HOME": str(home), "CSI_LISTEN": "127.0.0.1:0",
           "CSI_TOKEN_FILE": str(tmp_path / "token"), "CSI_POLICY": str(tmp_path / "policy.yaml"),
           "CSI_TEST_CAPTURE_LOG": str(captures), "CSI_TEST_CAPTURE_DELAY": "0.1",
           "PYTHONPATH": str(ROOT)}
    log = tmp_path / "serve.log"
    log.touch()
    first = Serve(home, log, env, RECORDING)
    bodies = alerts()
    accepted: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def fire(part: list[bytes]) -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        for body in part:
            if stop.is_set():
                return
            try:
                reply = session.post(f"http://127.0.0.1:{first.port}/falco", data=body,
                                     headers=headers, timeout=5)
            except requests.RequestException:
                return  # the receiver is gone
            if reply.status_code == 202:
                with lock:
                    accepted.append(reply.json()["id"])

    threads = [threading.Thread(target=fire, args=(bodies[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    def mid_load() -> bool:  # much accepted, and captures still waiting: kill now
        if len(accepted) < 300:
            return False
        waiting = journal(home, "SELECT COUNT(*) FROM captures WHERE state IN ('queued', "
                          "'running')")
        return bool(waiting[0][0] >= 5)

    wait_until(mid_load, 60, "never under load with captures waiting")
    first.proc.send_signal(signal.SIGKILL)  # mid-load
    first.proc.wait(10)
    stop.set()
    for thread in threads:
        thread.join(30)
    first.close()
    answered = set(accepted)
    assert len(answered) < len(set(bodies)), "the kill came after the load: test nothing"
    unfinished = journal(home, "SELECT (SELECT COUNT(*) FROM alerts WHERE state = 'received'),"
                         " (SELECT COUNT(*) FROM captures WHERE state IN ('queued', 'running'))")
    assert sum(unfinished[0]) > 0, "nothing was left unfinished at the kill: no crash tested"

    second = Serve(home, log, env, RECORDING)  # resumes the unfinished work
    try:
        def idle() -> bool:
            left = journal(home, "SELECT (SELECT COUNT(*) FROM alerts WHERE state = "
                           "'received') + (SELECT COUNT(*) FROM captures WHERE state IN "
                           "('queued', 'running'))")
            return bool(left[0][0] == 0)

        wait_until(idle, 120, "the restarted receiver did not finish the work")
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(30) == 0
    finally:
        second.close()
    assert "resumed" in log.read_text()

    # every alert answered 202 is in the journal, and settled
    rows = journal(home, "SELECT id, state, outcome, capture_id FROM alerts")
    journaled = {r[0]: r for r in rows}
    assert answered <= set(journaled), f"lost: {sorted(answered - set(journaled))[:5]}"
    assert {r[1] for r in rows} == {"settled"}
    # each capture-worthy alert led to one capture, run to completion exactly once
    capture_rows = journal(home, "SELECT id, alert_id, state, target_key FROM captures")
    assert {r[2] for r in capture_rows} == {"done"}
    by_alert = Counter(r[1] for r in capture_rows)
    assert max(by_alert.values()) == 1
    capture_alerts = {r[0] for r in rows if r[2] == "capture"}
    assert capture_alerts == set(by_alert)
    assert all(journaled[a][3] for a in capture_alerts)
    # one capture per container, even across the restart (the dedup window survived it)
    keys = Counter(r[3] for r in capture_rows)
    assert max(keys.values()) == 1
    alerted = {"k8s/prod/{pod}/web".format(pod=json.loads(d)["target"]["pod"])
               for (d,) in journal(home, "SELECT decision FROM alerts")}
    assert set(keys) == alerted
    lines = captures.read_text().splitlines()
    done = Counter(line.split()[1] for line in lines if line.startswith("done "))
    assert set(done) == {r[0] for r in capture_rows}
    assert max(done.values()) == 1, [c for c, n in done.items() if n > 1]
