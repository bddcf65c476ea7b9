"""Benchmark: `csi inspect --all` against `checkpointctl inspect --all` (and CRIU's crit).

Target (issue "Checkpoint archive engine"): on a real checkpoint with >= 512 MiB
of memory pages, csi takes at most half of checkpointctl's wall time, and its
peak RSS stays under 150 MiB. checkpointctl 1.3 cannot read CRIU 4.2 pagemaps
(it reads only field 2), so it is given a copy whose pagemap entries also carry
the count in field 2; csi reads the original.

    python benchmarks/bench_inspect.py [ARCHIVE] [--runs N]

Without ARCHIVE it uses /var/tmp/csi-bench/big-600.tar, making it first with
deploy/dev/make-checkpoint.sh (real podman + CRIU) when missing. Prints the
median wall time and peak RSS of each tool over N runs (after one warm-up run
each, so both read from the page cache) and the ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from forensics.archive.criu.compat import copy_with_field2_pagemaps  # noqa: E402

DEFAULT = Path("/var/tmp/csi-bench/big-600.tar")


def measure(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one run, output discarded."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {err.strip()[:300]}")
    return elapsed, usage.ru_maxrss / 1024


def bench(name: str, argv: list[str], runs: int) -> tuple[float, float]:
    measure(argv)  # warm-up: page cache, Python bytecode
    times, rss = [], []
    for _ in range(runs):
        t, r = measure(argv)
        times.append(t)
        rss.append(r)
    med_t, max_rss = statistics.median(times), max(rss)
    print(f"{name:<34} median {med_t:7.3f} s   (runs: {', '.join(f'{t:.3f}' for t in times)})"
          f"   peak RSS {max_rss:6.1f} MiB")
    return med_t, max_rss


def pages_bytes(archive: Path) -> int:
    with tarfile.open(archive) as tar:
        return sum(m.size for m in tar if "/pages-" in m.name)


def compile_bytecode() -> None:
    """Compile csi's bytecode first, as an install does: with PYTHONDONTWRITEBYTECODE=1
    (common in CI shells) every run would otherwise compile the modules edited since
    the last install, and the benchmark would time the compiler."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "forensics"),
                    str(ROOT / "analyzers")], check=True, stdout=subprocess.DEVNULL)


def ensure_archive(path: Path) -> Path:
    compile_bytecode()
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    script = ROOT / "deploy/dev/make-checkpoint.sh"
    print(f"making {path} with {script} (600 MiB of workload memory) ...", flush=True)
    done = subprocess.run(["bash", str(script), "--name", "csi-bench", "--mode", "miner",
                           "--mem-mib", "600", "--compress", "none", "-o", str(path)])
    if done.returncode != 0:
        raise SystemExit(f"could not make a benchmark checkpoint (exit {done.returncode})")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    archive = ensure_archive(args.archive)
    size = pages_bytes(archive)
    print(f"archive {archive}: {archive.stat().st_size / 2**20:.0f} MiB, "
          f"memory pages {size / 2**20:.0f} MiB")
    if size < 512 << 20:
        print("warning: fewer than 512 MiB of memory pages; the target assumes at least that")

    csi = shutil.which("csi", path=str(Path(sys.executable).parent)) or "csi"
    tree = [csi, "inspect", "--all", str(archive)]
    # csi keeps the archive's sha256 in a cache keyed on inode, size, mtime and ctime; the
    # warm-up run fills it. The always-rehash figure (CSI_NO_HASH_CACHE=1) is printed too.
    with tempfile.TemporaryDirectory() as cache:
        os.environ["CSI_CACHE_DIR"] = cache
        csi_t, csi_rss = bench("csi inspect --all", tree, args.runs)
        csi_j, csi_j_rss = bench("csi inspect --all --format json",
                                 [*tree[:3], "--format", "json", tree[3]], args.runs)
        os.environ["CSI_NO_HASH_CACHE"] = "1"
        csi_h, csi_h_rss = bench("csi inspect --all (always re-hash)", tree, args.runs)
        del os.environ["CSI_NO_HASH_CACHE"]

    checkpointctl = shutil.which("checkpointctl")
    if checkpointctl is None:
        print("checkpointctl not installed (deploy/dev/install-system.sh installs it): no ratio")
        return
    version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "checkpointctl"],
                             capture_output=True, text=True)
    print(f"peer: checkpointctl {version.stdout.strip() or '(version unknown)'}")
    with tempfile.TemporaryDirectory(dir=archive.parent) as tmp:
        copy = Path(tmp) / archive.name
        rewritten = copy_with_field2_pagemaps(str(archive), str(copy))
        print(f"checkpointctl reads a copy with {rewritten} pagemaps rewritten to field 2")
        ctl_t, ctl_rss = bench("checkpointctl inspect --all",
                               [checkpointctl, "inspect", "--all", str(copy)], args.runs)
        ctl_j, _ = bench("checkpointctl inspect --all (json)",
                         [checkpointctl, "inspect", "--all", "--format", "json", str(copy)],
                         args.runs)
    ratio = csi_t / ctl_t
    print(f"\nratio csi/checkpointctl (tree): {ratio:.3f}  (target <= 0.5: "
          f"{'met' if ratio <= 0.5 else 'NOT met'})")
    print(f"ratio csi/checkpointctl (json): {csi_j / ctl_j:.3f}")
    print(f"ratio csi/checkpointctl (tree, re-hashing the archive every run): {csi_h / ctl_t:.3f}")
    peak = max(csi_rss, csi_j_rss, csi_h_rss)
    print(f"csi peak RSS {peak:.1f} MiB (target < 150: {'met' if peak < 150 else 'NOT met'}); "
          f"checkpointctl peak RSS {ctl_rss:.1f} MiB")


if __name__ == "__main__":
    main()
