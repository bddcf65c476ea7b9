"""Issue 11 item 11: a hostile registry cannot make csi read without bound, nor forever.

Every test runs csi's real registry client against the hostile peer of
:mod:`tests.storage.hostile_registry` on 127.0.0.1 and asserts the exact
one-line error, bounded memory (tracemalloc peak in-process, the child's
max RSS for the CLI), that nothing is left on disk, and that it ends in
seconds (small limits are configured; the defaults are in
:mod:`forensics.storage.limits`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from forensics.storage.api import pull_archive, push_archive
from forensics.storage.base import RegistryOptions
from forensics.storage.errors import RegistryError
from forensics.storage.limits import TransferLimits, check_digest, check_size
from tests.capture.conftest import KUBELET, sha256_file
from tests.capture.servers import Registry
from tests.storage.hostile_registry import (
    BOMB_DIGEST,
    LAYER,
    LAYER_DIGEST,
    REPO,
    HostileRegistry,
)

SIZE = len(LAYER)
SHORT = LAYER_DIGEST[:19]
LIMITS = TransferLimits(min_rate=1000.0, rate_window=1.0, deadline=3.0)
ENV = {"CSI_REGISTRY_MIN_RATE": "1000", "CSI_REGISTRY_RATE_WINDOW": "1",
       "CSI_REGISTRY_DEADLINE": "3"}
SLOW = ("check the registry and the network, or raise $CSI_REGISTRY_DEADLINE or lower "
        "$CSI_REGISTRY_MIN_RATE")
HOSTILE = "nothing was kept; the registry is misbehaving or hostile"

# mode -> the error, {host} and {ref} filled in
MESSAGES = {
    "endless-manifest": "GET manifest {ref}: the answer is too large: more than 4194304 bytes "
                        "(the rest was not read; the registry is misbehaving)",
    "huge-manifest-length": "GET manifest {ref}: the answer is too large: Content-Length "
                            "1000000000000 is above the limit of 4194304 bytes (nothing was "
                            "read; the registry is misbehaving)",
    "endless-500": "GET manifest {ref}: {host} answered HTTP 500: internal error "
                   + "A" * 285,
    "endless-token": "token server http://{host}/token: the answer is too large: more than "
                     "1048576 bytes (the rest was not read; the registry is misbehaving)",
    "oversized-layer": f"GET blob {SHORT}: the registry sent more than the layer's size: the "
                       f"descriptor says {SIZE} bytes ({HOSTILE})",
    "huge-content-length": f"GET blob {SHORT}: the registry announces more than the layer's "
                           f"size: Content-Length 1000000000000, but {SIZE} bytes of the "
                           f"descriptor's {SIZE} remain to fetch ({HOSTILE})",
    "slow-headers": "GET manifest {ref}: the registry is too slow: not finished within its "
                    f"deadline of 3 s ({SLOW})",
    "negative-size": "{ref}: layer: the descriptor's size -1 is negative (the image is "
                     "malformed or the registry is hostile; nothing was downloaded)",
    "wrong-digest": f"layer {LAYER_DIGEST}: the bytes received do not match their digest: "
                    f"expected {LAYER_DIGEST} ({SIZE} bytes), got sha256:"
                    "{zeros} ({size} bytes) (nothing was written; pull again, and if it "
                    "persists the stored copy is damaged)",
}


def expected(mode: str, reg: HostileRegistry) -> str:
    import hashlib

    return MESSAGES[mode].format(host=reg.host, ref=reg.ref, size=SIZE,
                                 zeros=hashlib.sha256(bytes(SIZE)).hexdigest())


def pull_in_process(reg: HostileRegistry, dest: Path) -> tuple[RegistryError, float, int]:
    """(the error, seconds, tracemalloc peak) of a library pull from ``reg``."""
    dest.parent.mkdir(exist_ok=True)
    options = RegistryOptions(plain_http=True, backoff=0.05, limits=LIMITS)
    started = time.monotonic()
    tracemalloc.start()
    try:
        with pytest.raises(RegistryError) as caught:
            pull_archive(reg.ref, str(dest), options=options)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return caught.value, time.monotonic() - started, peak


@pytest.mark.parametrize("mode", sorted(MESSAGES))
def test_hostile_registry_pull_fails_in_one_bounded_line(mode: str, tmp_path: Path) -> None:
    with HostileRegistry(mode) as reg:
        error, seconds, peak = pull_in_process(reg, tmp_path / "dest" / "out.tar")
        assert str(error) == expected(mode, reg)
    assert "\n" not in str(error)
    assert peak < 6 << 20, f"{mode}: peak {peak} bytes"  # the 4 MiB manifest cap + change
    assert seconds < 8, f"{mode}: {seconds:.1f} s"
    assert os.listdir(tmp_path / "dest") == []  # no partial file, no temp directory


def test_endless_manifest_is_cut_at_4_mib(tmp_path: Path) -> None:
    with HostileRegistry("endless-manifest") as reg:
        pull_in_process(reg, tmp_path / "dest" / "out.tar")
        # the peer wrote what the socket buffers took beyond the cap, not gigabytes
        assert reg.sent < 64 << 20


def test_500_with_endless_body_reads_a_capped_body_on_each_retry(tmp_path: Path) -> None:
    with HostileRegistry("endless-500") as reg:
        error, _, peak = pull_in_process(reg, tmp_path / "dest" / "out.tar")
        assert reg.requests == {"/v2/hostile/ckpt/manifests/latest": 4}
        assert reg.sent < 4 * (64 << 20)
    assert error.permanent is False  # a 500 may pass: the workflow step may retry
    assert peak < 1 << 20


def test_oversized_layer_is_never_written_past_its_descriptor(tmp_path: Path) -> None:
    with HostileRegistry("oversized-layer") as reg:
        pull_in_process(reg, tmp_path / "dest" / "out.tar")
        assert reg.sent < 64 << 20
    assert os.listdir(tmp_path / "dest") == []


def test_slow_loris_layer_is_dropped_by_the_minimum_rate(tmp_path: Path) -> None:
    with HostileRegistry("slow-loris", drip=2.0) as reg:
        error, seconds, _ = pull_in_process(reg, tmp_path / "dest" / "out.tar")
    # one byte came with the first drip; the window of 1 s then saw too few
    assert str(error).startswith(f"GET blob {SHORT}: the registry is too slow: ")
    assert " below the minimum rate of 1000 bytes/s (" in str(error)
    assert str(error).endswith(f"({SLOW})")
    assert error.permanent is False
    assert seconds < 5
    assert os.listdir(tmp_path / "dest") == []


def test_slow_headers_are_dropped_by_the_overall_deadline(tmp_path: Path) -> None:
    with HostileRegistry("slow-headers", drip=0.5) as reg:
        error, seconds, _ = pull_in_process(reg, tmp_path / "dest" / "out.tar")
        assert str(error) == expected("slow-headers", reg)
    assert 2.9 < seconds < 6


@pytest.mark.parametrize(("size", "message"), [
    (-1, "x: the descriptor's size -1 is negative (the image is malformed or the registry "
         "is hostile; nothing was downloaded)"),
    (1 << 41, f"x: the descriptor's size {1 << 41} is above the limit of 1099511627776 bytes "
              "(nothing was downloaded; raise $CSI_REGISTRY_MAX_BLOB if the size is genuine)"),
    (float("inf"), "x: the descriptor's size 'inf' is not an integer (the image is malformed "
                   "or the registry is hostile; nothing was downloaded)"),
    (True, "x: the descriptor's size 'True' is not an integer (the image is malformed or the "
           "registry is hostile; nothing was downloaded)"),
    (None, "x: the descriptor's size 'None' is not an integer (the image is malformed or the "
           "registry is hostile; nothing was downloaded)"),
])
def test_negative_or_absurd_descriptor_size_is_an_error(size: object, message: str) -> None:
    with pytest.raises(RegistryError) as caught:
        check_size(size, "x", TransferLimits())
    assert str(caught.value) == message


def test_descriptor_digest_that_names_a_path_is_an_error() -> None:
    with pytest.raises(RegistryError) as caught:
        check_digest("sha256:../../../../etc/passwd", "x")
    assert str(caught.value) == ("x: the descriptor's digest 'sha256:../../../../etc/passwd' "
                                 "is not a sha256 digest (the image is malformed or the "
                                 "registry is hostile; nothing was downloaded)")


def test_bad_limit_in_the_environment_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSI_REGISTRY_MIN_RATE", "fast")
    with pytest.raises(RegistryError) as caught:
        TransferLimits.from_env()
    assert str(caught.value) == ("$CSI_REGISTRY_MIN_RATE='fast' is not a positive number "
                                 "(unset it for the default (10240))")


# ---------------------------------------------------------------- the CLI, as users run it

_MEASURE = ("import resource, subprocess, sys\n"
            "done = subprocess.run(sys.argv[1:], timeout=50)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
            "sys.exit(done.returncode)\n")


def run_csi(*args: str, tmp: Path) -> tuple[int, list[str], int]:
    """(exit status, stderr lines, max RSS in KiB) of a real ``csi`` process."""
    csi = str(Path(sys.executable).with_name("csi"))
    (tmp / "tmp").mkdir(exist_ok=True)
    env = {**os.environ, **ENV, "CSI_REGISTRY_PLAIN_HTTP": "1", "TMPDIR": str(tmp / "tmp"),
           "CSI_HOME": str(tmp / "home")}
    done = subprocess.run([sys.executable, "-c", _MEASURE, csi, *args], env=env,
                          capture_output=True, text=True, timeout=60)
    lines = done.stderr.splitlines()
    return done.returncode, lines[:-1], int(lines[-1])


CLI_MODES = ("endless-manifest", "endless-500", "oversized-layer", "huge-content-length",
             "negative-size")


@pytest.mark.parametrize("mode", CLI_MODES)
def test_hostile_registry_csi_pull_is_one_line_and_bounded(mode: str, tmp_path: Path) -> None:
    out = tmp_path / "pulled"
    out.mkdir()
    with HostileRegistry(mode) as reg:
        started = time.monotonic()
        code, lines, rss_kib = run_csi("pull", reg.ref, "-f", str(out / "a.tar"), "--plain-http",
                                       tmp=tmp_path)
        assert lines == [f"csi: error: {expected(mode, reg)}"]
    assert code == 3
    assert rss_kib < 160 * 1024, f"{mode}: max RSS {rss_kib} KiB"
    assert time.monotonic() - started < 15
    assert os.listdir(out) == []


@pytest.mark.parametrize("mode", ("endless-manifest", "oversized-layer", "slow-loris"))
def test_hostile_registry_csi_analyze_ref_leaves_nothing(mode: str, tmp_path: Path) -> None:
    with HostileRegistry(mode) as reg:
        code, lines, rss_kib = run_csi("analyze", reg.ref, tmp=tmp_path)
        if mode != "slow-loris":
            assert lines == [f"csi: pulling {reg.ref}", f"csi: error: {expected(mode, reg)}"]
    assert lines[0] == f"csi: pulling {reg.ref}" and len(lines) == 2
    assert lines[1].startswith(f"csi: error: GET blob {SHORT}: the registry is too slow: ") \
        or mode != "slow-loris"
    assert code == 3
    assert rss_kib < 160 * 1024
    assert os.listdir(tmp_path / "tmp") == []  # the csi-analyze-* pull directory is gone


def test_oversized_auth_file_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    from forensics.storage.auth import find_credentials

    path = tmp_path / "auth.json"
    with open(path, "wb") as f:
        f.truncate(1 << 30)  # sparse: 1 GiB of NULs
    tracemalloc.start()
    try:
        with pytest.raises(RegistryError) as caught:
            find_credentials("127.0.0.1:5000", auth_file=str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(caught.value) == (f"{path}: larger than 4194304 bytes (this is not a "
                                 "credentials file)")
    assert peak < 8 << 20


def test_limits_do_not_bound_a_real_registry_blob_by_the_manifest_cap(
        registry: Registry, tmp_path: Path) -> None:
    """A HEAD's Content-Length is the blob's size, not a body: a blob above the manifest cap
    pushes and pulls (against the real docker-registry) under the small test limits."""
    limits = TransferLimits(min_rate=1000.0, rate_window=1.0, deadline=30.0,
                            max_manifest=1 << 20)
    options = RegistryOptions(plain_http=True, limits=limits)
    assert os.path.getsize(KUBELET) > 1 << 20
    pushed = push_archive(KUBELET, f"{registry.host}/hostile/cap:one", options=options)
    pulled = pull_archive(pushed.pinned, str(tmp_path / "back.tar"), options=options)
    assert pulled.sha256 == sha256_file(KUBELET) == pushed.archive_sha256


def test_gzip_bomb_layer_from_the_registry_stops_at_csi_max_expanded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSI_MAX_EXPANDED", "4M")
    with HostileRegistry("gzip-bomb") as reg:
        error, seconds, peak = pull_in_process(reg, tmp_path / "dest" / "out.tar")
    assert str(error) == (f"layer {BOMB_DIGEST}: expands to more than 4194304 bytes: the limit "
                          "$CSI_MAX_EXPANDED is 4194304 bytes (nothing was kept; raise "
                          "$CSI_MAX_EXPANDED if the archive is genuine)")
    assert peak < 32 << 20 and seconds < 5  # 4 MiB reads of the gzip stream
    assert os.listdir(tmp_path / "dest") == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_during_csi_analyze_ref_pull_leaves_nothing(sig: signal.Signals,
                                                            tmp_path: Path) -> None:
    """A responder's csi analyze REF stopped mid-pull (a slow registry) removes what it pulled."""
    csi = str(Path(sys.executable).with_name("csi"))
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "CSI_REGISTRY_PLAIN_HTTP": "1", "TMPDIR": str(tmp_path / "tmp"),
           "CSI_HOME": str(tmp_path / "home"), "CSI_REGISTRY_MIN_RATE": "0.01"}
    with HostileRegistry("slow-loris", drip=0.05) as reg:
        proc = subprocess.Popen([csi, "analyze", reg.ref], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and proc.poll() is None and not list(
                    (tmp_path / "tmp").glob("csi-analyze-*/archive.tar.partial-*")):
                time.sleep(0.02)
            time.sleep(0.5)  # bytes dripping into the partial file
            assert proc.poll() is None, "csi ended before the pull was under way"
            assert list((tmp_path / "tmp").glob("csi-analyze-*/archive.tar.partial-*"))
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert err.splitlines() == [f"csi: pulling {reg.ref}",
                                f"csi: stopped by {sig.name}; temporary files removed"]
    assert proc.returncode == 128 + sig
    assert os.listdir(tmp_path / "tmp") == []


def test_black_hole_registry_push_is_dropped_by_the_minimum_rate(tmp_path: Path) -> None:
    """A registry that takes an upload, then never reads it: the push ends in seconds.

    64 MiB is more than the loopback socket buffers hold, so the send stalls."""
    from forensics.storage.annotations import CheckpointMeta

    archive = tmp_path / "big.tar"
    archive.write_bytes(os.urandom(64 << 20))
    options = RegistryOptions(plain_http=True, backoff=0.05, limits=LIMITS)
    with HostileRegistry("black-hole-upload") as reg:
        started = time.monotonic()
        with pytest.raises(RegistryError) as caught:
            push_archive(str(archive), f"{reg.host}/{REPO}:pushed", options=options,
                         meta=CheckpointMeta.from_archive(KUBELET))
        seconds = time.monotonic() - started
        assert reg.requests.get(f"/v2/{REPO}/blobs/uploads/hole") == 1  # not retried
    text = str(caught.value)
    assert text.startswith("upload big.tar: the registry is too slow: "), text
    assert " below the minimum rate of 1000 bytes/s (" in text
    assert text.endswith(f"({SLOW}; the archive is untouched at {archive})")
    assert caught.value.permanent is False
    assert seconds < 10


def test_redirect_with_endless_body_is_followed_without_reading_it(tmp_path: Path) -> None:
    """requests reads a redirect's body whole (even with allow_redirects=False): csi never."""
    dest = tmp_path / "dest" / "out.tar"
    dest.parent.mkdir()
    options = RegistryOptions(plain_http=True, backoff=0.05, limits=LIMITS)
    with HostileRegistry("endless-redirect") as reg:
        tracemalloc.start()
        try:
            pulled = pull_archive(reg.ref, str(dest), options=options)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert reg.requests[f"/storage/{LAYER_DIGEST}"] == 1
    assert pulled.sha256 == LAYER_DIGEST.removeprefix("sha256:")
    assert dest.read_bytes() == LAYER
    assert peak < 8 << 20
