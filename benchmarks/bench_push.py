"""Benchmark: pushing a big checkpoint archive to a local registry, and pulling it back.

Targets (issue "capture", registry part), on a real checkpoint of >= 512 MiB:
  * ``csi push`` (native backend) is >= 3x faster than the buildah
    sequence (from scratch / add / config --annotation / commit / push);
  * and within 1.3x of a raw streaming blob upload of the same bytes
    (``POST /v2/<name>/blobs/uploads/`` then ``curl -T FILE "<location>&digest=…"``);
  * ``csi pull`` runs at >= 150 MiB/s, the digest verified while streaming;
  * the push's peak RSS stays well under 100 MiB.

    python benchmarks/bench_push.py [ARCHIVE] [--runs N] [--csi-buildah]

Without ARCHIVE it uses /var/tmp/csi-bench/big-600.tar (made with
deploy/dev/make-checkpoint.sh when missing). Every timed run gets a fresh
docker-registry on 127.0.0.1 with empty storage (in /dev/shm when it has
room, so the registry's disk does not add noise; same for every method).
The archive's sha256 is taken once first, as the capture step does, and
handed to ``csi push --sha256`` (nothing re-reads the archive). Medians of
N runs (default 3) after one warm-up of each method; ratios at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_inspect import DEFAULT, ensure_archive  # noqa: E402

BUILDAH = ["buildah", "--storage-driver", "vfs"]
REGISTRY = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def registry(base: str) -> Iterator[str]:
    """A fresh docker-registry on 127.0.0.1 with empty storage; yields host:port."""
    work = tempfile.mkdtemp(prefix="csi-bench-registry-", dir=base)
    port = free_port()
    config = Path(work) / "config.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                      f"    rootdirectory: {work}/data\nhttp:\n  addr: 127.0.0.1:{port}\n"
                      f"  secret: bench\n")
    proc = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("docker-registry did not start") from None
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def measure(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one command."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv[:3])} … failed: {err.strip()[:400]}")
    return elapsed, usage.ru_maxrss / 1024


def curl_put(archive: Path, sha: str, host: str) -> tuple[float, float]:
    req = urllib.request.Request(f"http://{host}/v2/bench/raw/blobs/uploads/", method="POST")
    with urllib.request.urlopen(req) as resp:
        location = resp.headers["Location"]
    if location.startswith("/"):
        location = f"http://{host}{location}"
    return measure(["curl", "-sSf", "-o", "/dev/null", "-T", str(archive), "-H",
                    "Content-Type: application/octet-stream", f"{location}&digest=sha256:{sha}"])


def buildah_sequence(archive: Path, host: str) -> tuple[float, float]:
    """The buildah sequence (see forensics/storage/buildah.py), as a shell
    would run it (timed as a whole).

    (buildah 1.28 gzips the layer when pushing to a registry, with or
    without --disable-compression: measured the same.)
    """
    tag = f"localhost/csi-bench-{os.getpid()}:latest"
    script = (f"set -e; b='{' '.join(BUILDAH)}'; c=$($b from scratch); "
              f"$b add $c {archive} / >/dev/null; "
              f"$b config --annotation io.kubernetes.cri-o.annotations.checkpoint.name=bench "
              f"--annotation org.criu.checkpoint.container.name=bench $c; "
              f"$b commit -q $c {tag} >/dev/null; "
              f"$b push -q --tls-verify=false {tag} docker://{host}/bench/b:1; "
              f"$b rm $c >/dev/null")
    try:
        return measure(["bash", "-c", script])
    finally:
        subprocess.run([*BUILDAH, "rmi", "-f", tag], capture_output=True)


def bench(name: str, runs: int, once: Callable[[str], tuple[float, float]],
          base: str) -> tuple[float, float, list[float]]:
    with registry(base) as host:
        once(host)  # warm-up
    times, rss = [], []
    for _ in range(runs):
        with registry(base) as host:
            t, r = once(host)
        times.append(t)
        rss.append(r)
    med = statistics.median(times)
    print(f"{name:<44} median {med:7.3f} s  (runs: {', '.join(f'{t:.3f}' for t in times)})"
          f"  peak RSS {max(rss):6.1f} MiB", flush=True)
    return med, max(rss), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--csi-buildah", action="store_true",
                        help="also time csi's buildah backend (slow)")
    args = parser.parse_args()
    for tool in (REGISTRY, "curl", "buildah"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (deploy/dev/install-system.sh)")
    archive = ensure_archive(args.archive)
    size = archive.stat().st_size
    base = "/dev/shm" if shutil.disk_usage("/dev/shm").free > 4 * size else tempfile.gettempdir()
    start = time.perf_counter()
    digest = hashlib.sha256()
    with open(archive, "rb") as f:
        while data := f.read(4 << 20):
            digest.update(data)
    sha = digest.hexdigest()
    print(f"archive {archive}: {size / 2**20:.0f} MiB, sha256 {sha[:16]}… "
          f"(taken in {time.perf_counter() - start:.2f} s, as at capture); "
          f"registry storage in {base}", flush=True)
    csi = shutil.which("csi", path=str(Path(sys.executable).parent)) or "csi"
    env = {**os.environ, "CSI_HOME": tempfile.mkdtemp(prefix="csi-bench-home-")}

    def native(host: str) -> tuple[float, float]:
        return measure([csi, "push", str(archive), f"{host}/bench/native:1", "--plain-http",
                        "--sha256", sha], env)

    def native_unknown(host: str) -> tuple[float, float]:
        return measure([csi, "push", str(archive), f"{host}/bench/native:1", "--plain-http"],
                       {**env, "CSI_NO_HASH_CACHE": "1"})

    pulls: list[tuple[float, float]] = []

    def pull(host: str) -> tuple[float, float]:
        measure([csi, "push", str(archive), f"{host}/bench/pull:1", "--plain-http",
                 "--sha256", sha], env)
        out = Path(env["CSI_HOME"]) / "pulled.tar"
        result = measure([csi, "pull", f"{host}/bench/pull:1", "-f", str(out), "--plain-http",
                          "--force"], env)
        if out.stat().st_size != size:
            raise SystemExit("pulled archive has the wrong size")
        out.unlink()
        pulls.append(result)
        return result

    raw_t, _, _ = bench("raw blob PUT (curl -T)", args.runs, lambda h: curl_put(archive, sha, h),
                        base)
    nat_t, nat_rss, _ = bench("csi push (native, --sha256 from capture)", args.runs, native,
                              base)
    unk_t, unk_rss, _ = bench("csi push (native, digest computed on the way)", args.runs,
                              native_unknown, base)
    pull_t, pull_rss, _ = bench("csi pull (native, digest verified)", args.runs, pull, base)
    bud_t, _, _ = bench("buildah sequence (defaults)", args.runs,
                        lambda h: buildah_sequence(archive, h), base)
    if args.csi_buildah:
        bench("csi push --backend buildah", args.runs, lambda h: measure(
            [csi, "push", str(archive), f"{h}/bench/bud:1", "--plain-http", "--backend",
             "buildah", "--sha256", sha], env), base)
    shutil.rmtree(env["CSI_HOME"], ignore_errors=True)

    mib = size / 2**20
    print()
    print(f"speed-up native vs buildah sequence:                  {bud_t / nat_t:5.2f}x "
          f"(target >= 3: {'met' if bud_t / nat_t >= 3 else 'NOT met'})")
    print(f"ratio native / raw curl -T:                           {nat_t / raw_t:5.2f}  "
          f"(target <= 1.3: {'met' if nat_t / raw_t <= 1.3 else 'NOT met'})")
    print(f"ratio native (digest computed on the way) / curl -T:  {unk_t / raw_t:5.2f}")
    print(f"pull throughput: {mib / pull_t:6.1f} MiB/s  (target >= 150: "
          f"{'met' if mib / pull_t >= 150 else 'NOT met'})")
    peak = max(nat_rss, unk_rss, pull_rss)
    print(f"peak RSS: push {max(nat_rss, unk_rss):.1f} MiB, pull {pull_rss:.1f} MiB "
          f"(target well under 100: {'met' if peak < 100 else 'NOT met'})")


if __name__ == "__main__":
    main()
