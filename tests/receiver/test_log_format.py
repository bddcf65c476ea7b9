"""issue 12 item 4: ``--log-format json`` for ``csi serve`` and the ``csi step`` commands,
one JSON object per line, issue 11's one-line guarantee kept for hostile alert text."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from forensics.receiver.logs import JsonLineFormatter
from tests.receiver.conftest import SHOP, TOKEN, alert_json
from tests.receiver.serve_process import ROOT, ServeProcess

FORGED = '"}\n{"time": "2026-12-03T07:00:00.000Z", "level": "INFO", "message": "forged"}'
KEYS = ["time", "level", "logger", "message"]
POLICY = """\
rules:
  - name: every-container
    match: {sources: [syscall]}
    action: capture
"""


def _records(text: str) -> list[dict[str, object]]:
    lines = text.splitlines()
    assert lines, "no log lines"
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    for line, record in zip(lines, records, strict=True):
        assert line.isascii() and list(record)[:4] == KEYS
    return records


def test_json_formatter_is_one_ascii_line_with_the_exception() -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        record = logging.LogRecord("csi.receiver", logging.ERROR, __file__, 1,
                                   "capture %s failed", ("web\n\x1b[2J\u2028",),
                                   sys.exc_info())
    record.created, record.msecs = 1796281200.25, 250.0
    line = JsonLineFormatter().format(record)
    assert line.splitlines() == [line] and line.isascii()
    parsed = json.loads(line)
    assert parsed["time"] == "2026-12-03T07:00:00.250Z"
    assert parsed["level"] == "ERROR" and parsed["logger"] == "csi.receiver"
    assert parsed["message"] == "capture web\n\x1b[2J\u2028 failed"
    assert parsed["exception"].endswith("ValueError: bad\nvalue")


def test_csi_serve_log_format_json_keeps_hostile_names_inside_their_record(
        tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY)
    env = {"CSI_LOG_FORMAT": "json", "CSI_POLICY": str(tmp_path / "policy.yaml"),
           "CSI_BACKEND": "podman"}  # no cluster needed
    with ServeProcess(tmp_path, env=env) as serve:
        body = alert_json(SHOP)
        body["output_fields"] = body["output_fields"] | {
            "container.name": f"web{FORGED}", "k8s.pod.name": "json-log-0001",
            "container.id": f"{1:012x}"}
        body["time"] = "2026-11-22T07:10:00.000000001Z"
        reply = requests.post(serve.url + "/falco", data=json.dumps(body).encode(), timeout=30,
                              headers={"Authorization": f"Bearer {TOKEN}",
                                       "Content-Type": "application/json"})
        assert reply.status_code == 202, reply.text
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and serve.journal(
                "SELECT state FROM alerts WHERE id = ?", reply.json()["id"]) != [("settled",)]:
            time.sleep(0.05)
        time.sleep(0.3)  # the settled alert's record is written right after
        # the name is refused where it enters (issue 11): the alert is settled unresolved
        assert serve.journal("SELECT state, outcome FROM alerts") == [("settled", "unresolved")]
        assert serve.close() == 0
    records = _records(serve.text())
    assert any(str(r["message"]).startswith("listening on http://127.0.0.1:")
               for r in records)
    assert [r["message"] for r in records][-2:] == ["shutting down: draining (up to 30s)",
                                                    "stopped"]
    assert not [r for r in records if r["message"] == "forged"]


def test_serve_rejects_an_unknown_log_format(tmp_path: Path) -> None:
    env = {**os.environ, "CSI_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "forensics.cli.main", "serve",
                           "--log-format", "xml"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 2
    assert "'xml' is not one of 'text', 'json'" in done.stderr


def test_csi_step_log_format_json(tmp_path: Path) -> None:
    env = {**os.environ, "CSI_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "forensics.cli.main", "step", "cleanup",
                           "--log-format", "json", "--output-dir", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"deleted": "false", "why": "no archive was written"}
    assert [(r["level"], r["logger"], r["message"]) for r in _records(done.stderr)] == [
        ("INFO", "csi.step", "step cleanup: started"),
        ("INFO", "csi.step", "step cleanup: done")]
    by_env = subprocess.run([sys.executable, "-m", "forensics.cli.main", "step", "cleanup"],
                            capture_output=True, text=True, env={**env, "CSI_LOG_FORMAT": "json"},
                            timeout=60)
    assert [r["message"] for r in _records(by_env.stderr)] == [
        "step cleanup: started", "step cleanup: done"]
