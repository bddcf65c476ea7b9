"""The receiver over real HTTP: every fixture alert, malformed variants, dedup of a burst."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests

from forensics.orchestration.request import Target
from forensics.receiver.auth import sign
from forensics.receiver.config import ServeConfig
from tests.receiver.conftest import (
    HOST,
    INTERNAL,
    NULLS,
    PAYMENTS,
    SHOP,
    TOKEN,
    UNKNOWN_POD,
    Recorder,
    ServerThread,
    alert_bytes,
    alert_json,
    auth_headers,
)

SHOP_TARGET = Target(backend="kubernetes", namespace="prod", pod="shop-frontend-7d9c6b5f4-x2x9q",
                     container="web", node="worker-2", container_id="168eaa80e443")
PAYMENTS_TARGET = Target(backend="kubernetes", namespace="payments",
                         pod="payments-api-5b8f7c9d8-qq7lm", container="api", node="worker-1",
                         container_id="21c793cc89e4")
UNKNOWN_TARGET = Target(backend="kubernetes", namespace="default", pod="kubecon", container="",
                        node="falco-xczjd", container_id="ee97d9c4186f")

# fixture -> (decision, policy rule, outcome after settling, text in the first reason)
EXPECTED = {
    SHOP: ("capture", "high-value-rules", "capture", "Drop and execute new binary"),
    PAYMENTS: ("capture", "high-value-rules", "capture", "Redirect STDOUT/STDIN"),
    UNKNOWN_POD: ("capture", "critical-workload-alerts", "capture", "Terminal shell"),
    HOST: ("ignore", "builtin:host", "host", "host process"),
    INTERNAL: ("ignore", "builtin:internal", "internal", "internal source"),
    NULLS: ("ignore", "builtin:unresolved", "unresolved", "unresolved target"),
}


def post(server: ServerThread, body: bytes, headers: dict[str, str] | None = None,
         path: str = "/falco") -> requests.Response:
    return requests.post(server.url + path, data=body,
                         headers=auth_headers() if headers is None else headers, timeout=10)


def test_every_fixture_alert_gets_its_decision_and_outcome(server: ServerThread,
                                                           recorder: Recorder) -> None:
    ids = {}
    for i, (name, (action, rule, _, why)) in enumerate(EXPECTED.items()):
        reply = post(server, alert_bytes(name), path="/" if i % 2 else "/falco")
        assert reply.status_code == 202, reply.text
        body = reply.json()
        assert (body["decision"], body["policy_rule"]) == (action, rule), name
        assert why in body["reasons"][0], name
        assert body["duplicate"] is False
        ids[name] = body["id"]
    server.settled()
    for name, (_, _, outcome, _) in EXPECTED.items():
        alert = requests.get(f"{server.url}/api/v1/alerts/{ids[name]}", headers=auth_headers(),
                             timeout=10).json()
        assert alert["state"] == "settled" and alert["outcome"] == outcome, (name, alert)
        assert alert["reason"]
        assert (alert["capture_id"] is not None) == (outcome == "capture"), name
    # exactly three capture requests reached the pipeline, with the exact targets
    assert sorted((r.target for r in recorder.requests), key=Target.key) == sorted(
        [SHOP_TARGET, PAYMENTS_TARGET, UNKNOWN_TARGET], key=Target.key)
    for request in recorder.requests:
        assert request.trigger.kind == "alert" and request.trigger.alert is not None
        assert request.trigger.alert_fingerprint
    captures = requests.get(f"{server.url}/api/v1/captures", headers=auth_headers(),
                            timeout=10).json()["captures"]
    by_pod = {c["target"]["pod"]: c for c in captures}
    assert set(by_pod) == {SHOP_TARGET.pod, PAYMENTS_TARGET.pod, "kubecon"}
    for target in (SHOP_TARGET, PAYMENTS_TARGET):  # the two fixture pods: captured
        capture = by_pod[target.pod]
        assert capture["state"] == "done" and Target(**capture["target"]) == target
        assert capture["links"]["image"].startswith("registry.test/ckpt@sha256:")
        assert capture["links"]["report"].endswith("/report.json")
        one = requests.get(server.url + capture["links"]["self"], headers=auth_headers(),
                           timeout=10).json()
        assert one["id"] == capture["id"]
    failed = by_pod["kubecon"]  # the policy said capture; resolving the pod failed
    assert failed["state"] == "failed"
    assert failed["error"] == "pod default/kubecon not found"
    assert failed["links"]["image"] is None


def _without(key: str) -> bytes:
    data = alert_json(SHOP)
    del data[key]
    return json.dumps(data).encode()


def _with(**changes: Any) -> bytes:
    return json.dumps(alert_json(SHOP) | changes).encode()


JSON = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
MALFORMED = [
    ("text/plain", b"07:09:53: Critical something happened", {**JSON, "Content-Type":
     "text/plain"}, 415, "json_output: true"),
    ("other media type", alert_bytes(SHOP), {**JSON, "Content-Type": "application/xml"}, 415,
     "application/xml is not supported"),
    ("invalid JSON", b'{"rule": ', JSON, 400, "invalid JSON: Expecting value"),
    ("NaN", b'{"rule": NaN}', JSON, 400, "NaN is not a JSON value"),
    ("not UTF-8", b'{"rule": "\xff"}', JSON, 400, "the body is not UTF-8"),
    ("array", b"[1, 2]", JSON, 400, "must be a JSON object, not an array"),
    ("missing rule", _without("rule"), JSON, 400, "required field 'rule' is missing"),
    ("missing priority", _without("priority"), JSON, 400, "'priority' is missing"),
    ("missing time", _without("time"), JSON, 400, "'time' is missing"),
    ("bad priority", _with(priority="Severe"), JSON, 400, "not a Falco priority"),
    ("bad time", _with(time="22/11/2026 07:09"), JSON, 400, "not an RFC 3339 time"),
    ("ten digits", _with(time="2026-11-22T07:09:53.9123456789Z"), JSON, 400, "RFC 3339"),
    ("nested field", _with(output_fields={"k8s.pod.name": {"x": 1}}), JSON, 400,
     "must be a string, number or null"),
    ("rule not text", _with(rule=7), JSON, 400, "'rule' must be a string"),
    ("tags not list", _with(tags="container"), JSON, 400, "tags must be a list"),
    ("no token", alert_bytes(SHOP), {"Content-Type": "application/json"}, 401,
     "authentication required"),
    ("bad token", alert_bytes(SHOP), {**JSON, "Authorization": "Bearer nope"}, 401,
     "invalid bearer token"),
    ("basic auth", alert_bytes(SHOP), {**JSON, "Authorization": "Basic dXNlcjpwYXNz"}, 401,
     "invalid bearer token"),
]


@pytest.mark.parametrize(("body", "headers", "status", "text"),
                         [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_requests_get_status_and_one_line_reason(
        server: ServerThread, body: bytes, headers: dict[str, str], status: int,
        text: str) -> None:
    reply = post(server, body, headers)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert text in error and "\n" not in error and "Traceback" not in error
    server.settled()
    assert server.rows("SELECT COUNT(*) AS n FROM alerts")[0]["n"] == 0
    rejected = server.rows("SELECT status, reason FROM rejections")
    if status == 401:  # unauthenticated bodies are not stored
        assert rejected == []
    else:
        assert rejected == [{"status": status, "reason": error}]


def test_body_over_the_limit_is_413(server: ServerThread) -> None:
    data = alert_json(SHOP)
    data["output"] = "x" * (70 * 1024)
    big = json.dumps(data).encode()
    assert post(server, big).status_code == 413
    chunked = requests.post(server.url + "/falco", data=iter([big[:40000], big[40000:]]),
                            headers=auth_headers(), timeout=10)
    assert chunked.status_code == 413
    assert "larger than the limit of 65536 bytes" in chunked.json()["error"]


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/", 405), ("GET", "/falco", 405), ("PUT", "/falco", 405), ("DELETE", "/", 405),
    ("POST", "/healthz", 405), ("GET", "/nope", 404)])
def test_wrong_method_or_path(server: ServerThread, method: str, path: str,
                              status: int) -> None:
    reply = requests.request(method, server.url + path, headers=auth_headers(), timeout=10)
    assert reply.status_code == status
    assert reply.json()["error"]
    if status == 405:
        assert "not allowed" in reply.json()["error"]


def test_repeated_alert_is_journaled_once(server: ServerThread, recorder: Recorder) -> None:
    first = post(server, alert_bytes(PAYMENTS)).json()
    again = post(server, alert_bytes(PAYMENTS)).json()
    assert again["id"] == first["id"] and again["duplicate"] is True
    assert again["decision"] == "capture"
    server.settled()
    rows = server.rows("SELECT repeats FROM alerts")
    assert rows == [{"repeats": 1}]
    assert len(recorder.requests) == 1


def test_status_api_needs_auth_and_knows_unknown_ids(server: ServerThread) -> None:
    assert requests.get(server.url + "/api/v1/captures", timeout=10).status_code == 401
    for path in ("/api/v1/captures/nope", "/api/v1/alerts/nope"):
        reply = requests.get(server.url + path, headers=auth_headers(), timeout=10)
        assert reply.status_code == 404 and "no " in reply.json()["error"]
    reply = requests.get(server.url + "/api/v1/captures?state=weird", headers=auth_headers(),
                         timeout=10)
    assert reply.status_code == 400


def test_health_readiness_and_metrics(server: ServerThread) -> None:
    assert requests.get(server.url + "/healthz", timeout=10).json() == {"status": "ok"}
    assert requests.get(server.url + "/readyz", timeout=10).json() == {"status": "ready"}
    post(server, alert_bytes(SHOP))
    post(server, alert_bytes(SHOP))
    post(server, b"{", JSON)
    post(server, alert_bytes(HOST))
    server.settled()
    text = requests.get(server.url + "/metrics", timeout=10).text
    for line in ('csi_forensics_alerts_received_total 4.0',
                 'csi_forensics_alerts_accepted_total{duplicate="false"} 2.0',
                 'csi_forensics_alerts_accepted_total{duplicate="true"} 1.0',
                 'csi_forensics_alerts_rejected_total{reason="invalid_json"} 1.0',
                 'csi_forensics_alert_outcomes_total{outcome="capture"} 1.0',
                 'csi_forensics_alert_outcomes_total{outcome="host"} 1.0',
                 'csi_forensics_captures{state="done"} 1.0',
                 'csi_forensics_queue_depth 0.0',
                 'csi_forensics_capture_duration_seconds_count 1.0'):
        assert line in text, line


def test_readiness_reports_a_missing_pipeline(base_config: ServeConfig) -> None:
    with ServerThread(base_config,
                      run_capture="forensics.capture.no_such_pipeline:run_capture") as srv:
        reply = requests.get(srv.url + "/readyz", timeout=10)
        assert reply.status_code == 503
        assert "no_such_pipeline" in reply.json()["reason"]
        assert post(srv, alert_bytes(SHOP)).status_code == 202  # still journaled
        srv.settled()
        capture = srv.rows("SELECT state, error FROM captures")[0]
        assert capture["state"] == "failed" and "cannot be imported" in capture["error"]


def test_hmac_signature(base_config: ServeConfig, tmp_path: Path, recorder: Recorder) -> None:
    secret = tmp_path / "hmac"
    secret.write_bytes(b"hmac-secret-0123456789")
    config = replace(base_config, token_file=None, hmac_secret_file=str(secret))
    body = alert_bytes(SHOP)
    good = sign(b"hmac-secret-0123456789", body)
    with ServerThread(config, run_capture=recorder) as srv:
        plain = {"Content-Type": "application/json"}
        assert post(srv, body, {**plain, "X-CSI-Signature": good}).status_code == 202
        for bad in (sign(b"another-secret-0123456789", body), "sha256=00", good[:-1] + "0"):
            reply = post(srv, body, {**plain, "X-CSI-Signature": bad})
            assert reply.status_code == 401 and "invalid X-CSI-Signature" in reply.json()["error"]
        other = alert_bytes(PAYMENTS)
        assert post(srv, other, {**plain, "X-CSI-Signature": good}).status_code == 401
        reply = post(srv, other, plain)
        assert reply.status_code == 401 and "X-CSI-Signature" in reply.json()["error"]


def test_burst_of_10000_alerts_for_one_container_is_one_capture(
        base_config: ServeConfig, recorder: Recorder) -> None:
    """Falco repeats an alert many times a second: half the burst is byte-identical
    (journaled once), half re-timed (journaled each, suppressed by the dedup window)."""
    raw = alert_json(SHOP)
    identical = alert_bytes(SHOP)
    bodies = [identical if i % 2 else json.dumps(
        raw | {"time": f"2026-11-22T07:09:{i // 1000:02d}.{i:09d}Z"}).encode()
        for i in range(10_000)]

    async def fire(url: str) -> list[int]:
        limit = asyncio.Semaphore(32)
        async with aiohttp.ClientSession(headers=auth_headers()) as session:
            async def one(body: bytes) -> int:
                async with limit, session.post(url, data=body) as reply:
                    await reply.read()
                    return reply.status
            return await asyncio.gather(*(one(b) for b in bodies))

    with ServerThread(base_config, run_capture=recorder) as srv:
        statuses = asyncio.run(fire(srv.url + "/falco"))
        assert statuses.count(202) == 10_000
        srv.settled(60)
        assert len(recorder.requests) == 1
        assert recorder.requests[0].target == SHOP_TARGET
        outcomes = srv.rows("SELECT outcome, COUNT(*) AS n FROM alerts GROUP BY outcome "
                            "ORDER BY outcome")
        assert outcomes == [{"outcome": "capture", "n": 1}, {"outcome": "suppressed", "n": 5000}]
        assert srv.rows("SELECT SUM(repeats) AS r FROM alerts") == [{"r": 4999}]
        reasons = srv.rows("SELECT DISTINCT substr(reason, 1, 10) AS r FROM alerts "
                           "WHERE outcome = 'suppressed'")
        assert reasons == [{"r": "duplicate:"}]
        assert srv.rows("SELECT COUNT(*) AS n FROM captures")[0]["n"] == 1


def test_settling_retries_when_the_journal_fails(base_config: ServeConfig,
                                                 recorder: Recorder) -> None:
    with ServerThread(base_config, run_capture=recorder) as srv:
        journal = srv.journal
        real, failures = journal.settle, []

        def flaky(settlements: Any, now: float) -> None:
            if len(failures) < 2:
                failures.append(now)
                raise OSError("No space left on device")
            real(settlements, now)

        journal.settle = flaky
        assert post(srv, alert_bytes(SHOP)).status_code == 202
        srv.settled(20)
        assert len(failures) == 2 and len(recorder.requests) == 1
        assert srv.rows("SELECT outcome FROM alerts") == [{"outcome": "capture"}]
