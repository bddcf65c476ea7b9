"""``csi serve`` as a real subprocess for the hostile-client tests, and raw-socket helpers.

The receiver runs exactly as users run it (``python -m forensics.cli.main
serve``), configured through ``CSI_*`` variables, its stderr in a log file the
tests read. Its capture pipeline is the test-only ``recording`` double (see
:mod:`tests.receiver.capture_doubles`): no cluster is needed.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.receiver.conftest import TOKEN

ROOT = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")
HMAC_SECRET = "hmac-secret-0123456789abcdef"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} csi serve "
                      r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


class ServeProcess:
    """``csi serve`` in a subprocess on 127.0.0.1 and an ephemeral port."""

    def __init__(self, tmp: Path, *, env: dict[str, str] | None = None,
                 nofile: int | None = None, wrap: Sequence[str] = (),
                 home: Path | None = None) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.home = home or tmp / "home"
        self.log = tmp / "serve.log"
        (tmp / "token").write_text(TOKEN)
        (tmp / "hmac").write_text(HMAC_SECRET)
        full = {**os.environ, "CSI_HOME": str(self.home), "CSI_LISTEN": "127.0.0.1:0",
                "CSI_TOKEN_FILE": str(tmp / "token"),
                "CSI_TEST_CAPTURE_LOG": str(tmp / "captures.log"),
                "CSI_TEST_CAPTURE_DELAY": "0", "PYTHONPATH": str(ROOT), **(env or {})}
        preexec: Callable[[], None] | None = None
        if nofile is not None:
            def preexec() -> None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        with self.log.open("wb") as handle:
            self.proc = subprocess.Popen(
                [*wrap, sys.executable, str(ROOT / "tests" / "serve_with.py"),
                 "tests.receiver.capture_doubles:recording"], cwd=ROOT,
                env=full, stdout=subprocess.DEVNULL, stderr=handle, preexec_fn=preexec)
        self.port = 0
        deadline = time.monotonic() + 60
        while not self.port:
            match = _LISTENING.search(self.text())
            if match:
                self.port = int(match.group(1))
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise AssertionError(f"csi serve did not start: {self.text()[-800:]}")
            else:
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return self.log.read_bytes().decode("utf-8", "replace")

    def journal(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        db = sqlite3.connect(self.home / "receiver" / "journal.sqlite3", timeout=30)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def close(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def raw_exchange(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send ``request`` on a fresh connection; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, body) of one raw HTTP/1.1 response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def forged_lines(text: str) -> list[str]:
    """Log lines that do not start as ``csi serve`` writes a record: forged or continued."""
    return [line for line in text.splitlines() if line and not LOG_LINE.match(line)]
