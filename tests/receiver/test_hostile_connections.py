"""Issue 11 item 3: unauthenticated clients cannot take ``csi serve`` down.

A real ``csi serve`` subprocess with a low file limit (``ulimit -n 256``)
faces more idle connections than it has descriptors, slow headers, slow
bodies and malformed request lines: ``/healthz`` keeps answering, every
refusal is one line of JSON, and the log stays small, one line per record,
with no traceback.
"""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import pytest
import requests

from tests.receiver.conftest import SHOP, TOKEN, alert_bytes
from tests.receiver.serve_process import (
    ServeProcess,
    forged_lines,
    raw_exchange,
    split_response,
)

NOFILE = 256
IDLE = 1100


def _open_idle(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that never send a byte (as a slowloris client holds them)."""
    held = []
    for _ in range(count):
        sock = socket.socket()
        sock.settimeout(2)
        try:
            sock.connect(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        held.append(sock)
    return held


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(0.01)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def test_idle_connection_flood_at_ulimit_256_leaves_healthz_answering(tmp_path: Path) -> None:
    with ServeProcess(tmp_path, nofile=NOFILE) as serve:
        held = _open_idle(serve.port, IDLE)
        try:
            assert len(held) >= 1000  # the flood really was more than the file limit
            started = time.monotonic()
            reply = requests.get(serve.url + "/healthz", timeout=5)
            took = time.monotonic() - started
            assert (reply.status_code, reply.json()) == (200, {"status": "ok"})
            assert took < 2.0, f"/healthz took {took:.1f}s under the flood"
            # an authenticated alert still gets in and is journaled
            posted = requests.post(serve.url + "/falco", data=alert_bytes(SHOP), timeout=5,
                                   headers={"Authorization": f"Bearer {TOKEN}"})
            assert posted.status_code == 202, posted.text
            time.sleep(1.0)  # the gate has closed the oldest idle ones to make room
            closed = sum(_closed_by_server(s) for s in held)
            assert closed >= len(held) - NOFILE, closed
        finally:
            for sock in held:
                sock.close()
        requests.get(serve.url + "/healthz", timeout=5)
        assert serve.close() == 0
    log = serve.text()
    assert "Traceback" not in log
    assert forged_lines(log) == []  # every line is one record
    assert len(log) < 20_000, len(log)
    assert "idle connections closed at the limit of 192" in log
    assert "(RLIMIT_NOFILE 256)" in log


def test_slow_headers_and_slow_bodies_are_cut_off(tmp_path: Path) -> None:
    env = {"CSI_HEADER_TIMEOUT": "1s", "CSI_BODY_TIMEOUT": "1s"}
    with ServeProcess(tmp_path, env=env) as serve:
        # headers that never finish: the connection is closed after the header timeout
        with socket.create_connection(("127.0.0.1", serve.port), timeout=10) as sock:
            sock.sendall(b"POST /falco HTTP/1.1\r\nHost: x\r\n")
            started = time.monotonic()
            assert sock.recv(100) == b""
            assert 0.5 < time.monotonic() - started < 4.0
        # a body that never arrives: 408, one line of JSON, connection closed
        started = time.monotonic()
        raw = raw_exchange(serve.port, b"POST /falco HTTP/1.1\r\nHost: x\r\nAuthorization: "
                           b"Bearer " + TOKEN.encode() + b"\r\nContent-Type: application/"
                           b"json\r\nContent-Length: 100\r\n\r\n{\"rule\":", timeout=10)
        assert time.monotonic() - started < 4.0
        status, headers, body = split_response(raw)
        assert status == 408
        assert headers["content-type"].startswith("application/json")
        assert json.loads(body) == {"error": "the body did not arrive within 1s (body_timeout)"}
        assert b"\n" not in body
    log = serve.text()
    assert "Traceback" not in log and forged_lines(log) == []
    assert "connections closed after the 1s header timeout" in log


@pytest.mark.parametrize("request_bytes", [
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n",
], ids=["header-without-colon", "nul-in-target", "negative-length", "header-too-long"])
def test_malformed_request_gets_one_line_json_and_no_traceback(
        tmp_path: Path, request_bytes: bytes) -> None:
    with ServeProcess(tmp_path) as serve:
        for _ in range(20):
            status, headers, body = split_response(raw_exchange(serve.port, request_bytes))
            assert 400 <= status < 500, (status, body)
            assert headers["content-type"].startswith("application/json")
            assert b"\n" not in body
            assert json.loads(body)["error"].startswith("bad request")
        assert requests.get(serve.url + "/healthz", timeout=5).status_code == 200
        assert serve.close() == 0
    log = serve.text()
    assert "Traceback" not in log and forged_lines(log) == []
    assert len(log.splitlines()) < 10  # start-up, one tally line, stop: not one per request
    assert "malformed requests" in log


def test_unauthenticated_clients_rotating_addresses_cost_bounded_log_lines(
        tmp_path: Path) -> None:
    request = (b"POST /falco HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: "
               b"application/json\r\nContent-Length: 2\r\n\r\n{}")
    with ServeProcess(tmp_path) as serve:
        for i in range(400):  # 400 source addresses in 127.0.0.0/8
            with socket.socket() as sock:
                sock.settimeout(5)
                sock.bind((f"127.0.{1 + i // 200}.{1 + i % 200}", 0))
                sock.connect(("127.0.0.1", serve.port))
                sock.sendall(request)
                answer = b""
                while chunk := sock.recv(4096):
                    answer += chunk
            assert split_response(answer)[0] == 401
        assert serve.close() == 0
    log = serve.text()
    assert log.count("refused an alert from 127.0.") == 256
    counted = re.findall(r"(\d+) unauthenticated requests \(last: 127\.0\.\d\.\d+: "
                         r"authentication required", log)
    assert sum(map(int, counted)) == 400 - 256 and len(counted) <= 2  # the first, then at stop
    assert "Traceback" not in log and forged_lines(log) == []


def test_undecodable_or_abandoned_bodies_are_400_without_traceback(tmp_path: Path) -> None:
    head = (b"POST /falco HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
            + b"\r\nContent-Type: application/json\r\n")
    with ServeProcess(tmp_path) as serve:
        for encoding in (b"gzip", b"deflate"):
            raw = raw_exchange(serve.port, head + b"Content-Encoding: " + encoding
                               + b"\r\nContent-Length: 10\r\n\r\n0123456789")
            status, headers, body = split_response(raw)
            assert (status, json.loads(body)) == (400, {
                "error": "the body could not be read: Can not decode content-encoding: "
                         + encoding.decode()})
            assert headers["connection"] == "close"
        for _ in range(5):  # the client goes away in the middle of its body
            with socket.create_connection(("127.0.0.1", serve.port), timeout=5) as sock:
                sock.sendall(head + b"Content-Length: 100\r\n\r\n{\"rule\":")
                time.sleep(0.1)
        assert requests.get(serve.url + "/healthz", timeout=5).status_code == 200
        assert serve.close() == 0
    log = serve.text()
    assert "Traceback" not in log and forged_lines(log) == []
    assert "unreadable bodies" in log


def test_slow_unauthenticated_bodies_at_the_limit_leave_healthz_answering(
        tmp_path: Path) -> None:
    """HMAC signs the body, so it is read before the client is authenticated: 250 slow
    bodies with a made-up signature must not hold the 192 connections /healthz needs."""
    env = {"CSI_HMAC_SECRET_FILE": str(tmp_path / "hmac")}
    head = (b"POST /falco HTTP/1.1\r\nHost: x\r\nX-CSI-Signature: sha256=" + b"0" * 64
            + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"rule\":")
    with ServeProcess(tmp_path, env=env, nofile=NOFILE) as serve:
        held = []
        try:
            for _ in range(250):
                sock = socket.create_connection(("127.0.0.1", serve.port), timeout=5)
                sock.sendall(head)
                held.append(sock)
            time.sleep(0.5)
            started = time.monotonic()
            reply = requests.get(serve.url + "/healthz", timeout=10)
            assert reply.status_code == 200
            assert time.monotonic() - started < 2.0
        finally:
            for sock in held:
                sock.close()
        assert serve.close() == 0
    log = serve.text()
    assert "Traceback" not in log and forged_lines(log) == []
    assert "unauthenticated body reads closed at the limit of 192" in log


def test_unknown_expectation_is_417_in_json_and_100_continue_still_works(
        tmp_path: Path) -> None:
    body = alert_bytes(SHOP)
    head = (b"POST /falco HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\nConnection: close\r\n")
    with ServeProcess(tmp_path) as serve:
        status, headers, answer = split_response(raw_exchange(
            serve.port, head + b"Expect: foo\r\n\r\n" + body))
        assert (status, json.loads(answer)) == (417, {
            "error": "unknown expectation 'foo': only 100-continue is supported"})
        assert headers["content-type"].startswith("application/json")
        raw = raw_exchange(serve.port, head + b"Expect: 100-continue\r\n\r\n" + body)
        assert raw.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\n")
    assert "Traceback" not in serve.text()


@pytest.mark.parametrize(("soft", "configured", "expected"), [
    (256, None, 192), (1024, None, 768), (20000, None, 1024), (1024, 50, 50),
    (1024, 10_000, 768), (64, None, 8),
])
def test_connection_limit_keeps_a_reserve_below_the_file_limit(
        soft: int, configured: int | None, expected: int) -> None:
    import resource

    from forensics.receiver.gate import connection_limit

    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, before[1]))
    try:
        assert connection_limit(configured) == (expected, soft)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)
