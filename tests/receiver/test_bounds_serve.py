"""A hostile workload cannot take ``csi serve`` down (issue 11 item 7), against real components.

A real ``csi serve`` subprocess (local executor, Podman backend, the OCI layout
in its csi home) receives a Falco alert for the argv-bomb container (eight
processes, each with 5.9 MB of NUL-filled argv; deploy/dev/workload/argvbomb.c)
and captures it with podman + CRIU. Before, the receiver analysed in its own
process: 5.3 GB peak RSS, a 377 MB report. Now the capture completes with a
bounded report and the receiver stays small; and an analysis worker that
crosses its memory limit is one failed capture, while /healthz still answers
and the next alert is served.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.doubles import argvbomb
from tests.doubles.fixtures import CannotCheckpoint
from tests.doubles.kubelet import PODMAN
from tests.receiver.conftest import TOKEN, auth_headers, wait_until
from tests.receiver.test_crash import Serve

POLICY = """\
rules:
  - name: every-container
    match: {sources: [syscall]}
    action: capture
guards: {dedup_window: 5m, cooldown: 15m, max_per_node: 4, max_cluster: 4,
         max_queued: 100, rate: 1000/min, burst: 100}
"""
RSS_BOUND_KIB = 400 << 10
MIB = 1 << 20


@pytest.fixture(scope="module")
def bomb() -> Iterator[tuple[str, str]]:
    """The running argv-bomb container: its name and id."""
    try:
        with argvbomb.argvbomb_container("csi-bounds-serve") as name:
            cid = argvbomb._run(*PODMAN, "container", "inspect", "--format", "{{.Id}}",
                                name).strip()
            yield name, cid
    except CannotCheckpoint as exc:
        pytest.skip(f"this machine cannot make CRIU checkpoints: {exc}")


def serve(tmp_path: Path, **extra: str) -> Serve:
    home = tmp_path / "home"
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "policy.yaml").write_text(POLICY)
    env = {**os.environ, "CSI_HOME": str(home), "CSI_LISTEN": "127.0.0.1:0",
           "CSI_TOKEN_FILE": str(tmp_path / "token"), "CSI_POLICY": str(tmp_path / "policy.yaml"),
           "CSI_BACKEND": "podman", "CSI_PODMAN_FLAGS": " ".join(PODMAN[1:]), **extra}
    env.pop("CSI_REGISTRY", None)  # the OCI layout in the csi home
    log = tmp_path / "serve.log"
    log.touch()
    return Serve(home, log, env)


def alert(name: str, cid: str) -> bytes:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    return json.dumps({
        "time": now, "rule": "Terminal shell in container", "priority": "Notice",
        "source": "syscall", "hostname": "bounds-host",
        "output": f"A shell was spawned in a container (container_name={name})",
        "tags": ["container", "shell"],
        "output_fields": {"container.id": cid[:12], "container.name": name,
                          "proc.name": "sh", "k8s.ns.name": None, "k8s.pod.name": None}}).encode()


def captures(port: int) -> list[dict[str, Any]]:
    reply = requests.get(f"http://127.0.0.1:{port}/api/v1/captures", headers=auth_headers(),
                         timeout=10)
    data = reply.json()
    return list(data["captures"] if isinstance(data, dict) else data)


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for pid {pid}")


def finished(port: int) -> dict[str, Any]:
    wait_until(lambda: any(c["state"] in ("done", "failed") for c in captures(port)), 300,
               "the capture never ended")
    return next(c for c in captures(port) if c["state"] in ("done", "failed"))


def test_argv_bomb_capture_by_csi_serve_is_bounded_and_the_receiver_stays_small(
        bomb: tuple[str, str], tmp_path: Path) -> None:
    name, cid = bomb
    server = serve(tmp_path)
    try:
        reply = requests.post(f"http://127.0.0.1:{server.port}/falco", data=alert(name, cid),
                              headers=auth_headers(), timeout=10)
        assert reply.status_code == 202, reply.text
        capture = finished(server.port)
        assert capture["state"] == "done", capture
        assert peak_rss_kib(server.proc.pid) < RSS_BOUND_KIB
        report_id = (capture.get("result") or {}).get("report_id") or capture["report_id"]
        [report_dir] = (tmp_path / "home" / "reports").glob(f"**/{report_id}")
        report_json = report_dir / "report.json"
        assert report_json.stat().st_size < 4 * MIB
        report = json.loads(report_json.read_bytes())
        truncated = [p["cmdline_truncated"] for p in report["processes"]
                     if p.get("cmdline_truncated")]
        assert truncated == [6_025_218] * argvbomb.CHILDREN
        assert requests.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5).ok
    finally:
        server.close()


def test_analysis_worker_over_its_memory_limit_fails_the_capture_not_the_receiver(
        bomb: tuple[str, str], tmp_path: Path) -> None:
    name, cid = bomb
    server = serve(tmp_path, CSI_ANALYSIS_MEMORY="16M")
    try:
        reply = requests.post(f"http://127.0.0.1:{server.port}/falco", data=alert(name, cid),
                              headers=auth_headers(), timeout=10)
        assert reply.status_code == 202, reply.text
        capture = finished(server.port)
        assert capture["state"] == "failed", capture
        # the evidence is stored: the failed capture names its image (no orphan image)
        image = capture["result"]["image_ref"]
        assert image.startswith("oci:")
        assert capture["error"].startswith(
            f"the evidence is stored as {image}, but its analysis failed: the analysis ran out "
            "of memory under its limit (16 MiB, CSI_ANALYSIS_MEMORY): ")
        assert capture["error"].endswith(
            "(raise CSI_ANALYSIS_MEMORY if this archive is trusted); analyze it again with "
            f"`csi pull {image} -f FILE` then `csi analyze FILE --save`")
        assert "\n" not in capture["error"]
        assert server.proc.poll() is None
        health = requests.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
        assert health.status_code == 200
        again = requests.post(f"http://127.0.0.1:{server.port}/falco",
                              data=alert(name + "-next", cid), headers=auth_headers(),
                              timeout=10)
        assert again.status_code == 202, again.text
        log = server.log.read_text()
        assert "Traceback" not in log
    finally:
        server.close()
