"""Benchmark: memory search and full analysis against their peers (issue "Forensic analyzers").

Targets, on a real checkpoint with >= 512 MiB of process memory:
  1. a literal search over one process is >= 10x faster than
     `checkpointctl memparse --pid N --search` (checkpointctl reads a copy whose
     pagemaps carry the page count in field 2; CRIU 4.2 writes field 5);
  2. a search over all processes runs at >= 50% of the throughput of
     `tar -xO -f ARCHIVE pages-N.img | grep -c` over the largest pages file;
  3. the full `csi analyze` (all analyzers, default YARA rules) finishes in under
     3x the time of that grep;
  4. csi's peak RSS stays under 200 MiB.

    python benchmarks/bench_memory.py [ARCHIVE] [--runs N] [--needle TEXT]

Each csi command runs alternately with its peer (csi, peer, csi, peer...) after
a warm-up of both, all from the page cache: on a noisy machine both then see the
same moments. Reported: medians of N runs, and the median of the per-pair
ratios. csi's sha256 cache does not apply to analyze: it always re-hashes.
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

from benchmarks.bench_inspect import DEFAULT, ensure_archive  # noqa: E402
from forensics.archive.criu.compat import copy_with_field2_pagemaps  # noqa: E402


def run_once(argv: list[str] | str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB, the largest process) of one run."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, shell=isinstance(argv, str), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise SystemExit(f"failed ({code}): {argv}: {err.strip()[:300]}")
    return elapsed, usage.ru_maxrss / 1024


def largest_pages(archive: Path) -> tuple[str, int, int]:
    """(member, its size, all pages bytes) of the archive."""
    with tarfile.open(archive) as tar:
        pages = [(m.name, m.size) for m in tar if "/pages-" in m.name]
    name, size = max(pages, key=lambda p: p[1])
    return name, size, sum(s for _, s in pages)


def paired(name: str, argv: list[str] | str, peer_name: str, peer_argv: list[str] | str,
           runs: int) -> tuple[float, float, float, float]:
    """Runs of a command and of its peer, alternated (a, b, a, b...), so that both see
    the same moments of a noisy machine. Returns (median, peer median, median of the
    per-pair ratios peer/command, peak RSS of the command)."""
    run_once(argv), run_once(peer_argv)  # warm-up
    pairs = [(run_once(argv), run_once(peer_argv)) for _ in range(runs)]
    times, peer = [a[0] for a, _ in pairs], [b[0] for _, b in pairs]
    for label, values in ((name, times), (peer_name, peer)):
        print(f"{label:<44} median {statistics.median(values):7.3f} s  "
              f"({', '.join(f'{t:.3f}' for t in values)})")
    ratio = statistics.median(b / a for a, b in zip(times, peer, strict=True))
    rss = max(a[1] for a, _ in pairs)
    return statistics.median(times), statistics.median(peer), ratio, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--needle", default="CSI-BENCH-NEEDLE")
    args = parser.parse_args()
    archive = ensure_archive(args.archive)
    member, member_size, all_pages = largest_pages(archive)
    pid = int(member.rsplit("-", 1)[1].split(".")[0])  # pages-N: N is pages_id, 1 = pid 1
    csi = str(Path(sys.executable).parent / "csi")
    print(f"archive {archive}: {all_pages / 2**20:.0f} MiB of memory pages; "
          f"largest {member} {member_size / 2**20:.0f} MiB")
    os.environ["CSI_CACHE_DIR"] = tempfile.mkdtemp(prefix="csi-bench-cache-")
    grep_cmd = f"tar -xOf '{archive}' '{member}' | grep -c '{args.needle}' || true"
    rss: list[float] = []

    checkpointctl = shutil.which("checkpointctl")
    if checkpointctl is None:
        raise SystemExit("checkpointctl not installed (deploy/dev/install-system.sh installs it)")
    with tempfile.TemporaryDirectory(dir=archive.parent) as tmp:
        copy = Path(tmp) / archive.name
        copy_with_field2_pagemaps(str(archive), str(copy))
        one, ctl, one_ratio, r = paired(
            f"csi memparse --pid {pid} --search",
            [csi, "memparse", "--pid", str(pid), "--search", args.needle, str(archive)],
            f"checkpointctl memparse --pid {pid} --search",
            [checkpointctl, "memparse", "--pid", str(pid), "--search", args.needle, str(copy)],
            args.runs)
    rss.append(r)
    every, grep, _, r = paired("csi memparse --search (all processes)",
                               [csi, "memparse", "--search", args.needle, str(archive)],
                               f"tar -xO {member} | grep -c", grep_cmd, args.runs)
    rss.append(r)
    os.environ["CSI_NO_HASH_CACHE"] = "1"
    analyze, grep2, grep_ratio, r = paired("csi analyze --format json (all analyzers)",
                                           [csi, "analyze", "--format", "json", str(archive)],
                                           f"tar -xO {member} | grep -c", grep_cmd, args.runs)
    rss.append(r)
    del os.environ["CSI_NO_HASH_CACHE"]

    print("\nratios are medians of per-pair ratios (each run of csi next to one of its peer)")
    print(f"1. one-process search: csi is {one_ratio:.1f}x faster than checkpointctl "
          f"(medians {ctl:.3f} / {one:.3f} s; target >= 10x: "
          f"{'met' if one_ratio >= 10 else 'NOT met'})")
    csi_tp = all_pages / every / 2**20
    grep_tp = member_size / grep / 2**20
    verdict = "met" if csi_tp >= grep_tp / 2 else "NOT met"
    print(f"2. all-process search {csi_tp:.0f} MiB/s vs tar|grep {grep_tp:.0f} MiB/s: "
          f"{csi_tp / grep_tp:.0%} (target >= 50%: {verdict})")
    print(f"3. csi analyze {analyze:.3f} s = {1 / grep_ratio:.2f}x the grep ({grep2:.3f} s) "
          f"(target < 3x: {'met' if 1 / grep_ratio < 3 else 'NOT met'})")
    print(f"4. csi peak RSS {max(rss):.1f} MiB (target < 200: "
          f"{'met' if max(rss) < 200 else 'NOT met'})")


if __name__ == "__main__":
    main()
