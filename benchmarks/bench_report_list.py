"""Benchmark: `csi report list` over 10,000 stored reports answers in under 0.5 s.

Populates a temporary CSI_HOME through the store's own API: one real report
(the reverse-shell fixture, analysed, signed and rendered) and 9,999 more
index rows spread over 30 days, 12 namespaces, 400 pods and every verdict,
each with a report directory holding a copy of the real report's files.
Then times the CLI as a subprocess (a fresh interpreter each time, as a
responder runs it): the default view, and with --severity high --since 24h.

    python benchmarks/bench_report_list.py [--reports N] [--runs N] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from forensics.report.store import RANK, ReportStore, to_us  # noqa: E402

TARGET = 0.5
FIXTURE = ROOT / "tests/data/checkpoints/" \
    "checkpoint-payments-api-5b8f7c9d8-qq7lm_payments-api-2026-11-22T07:10:28Z.tar"
ALERT = ROOT / "tests/data/falco/reverse-shell-payments-sidekick.json"
CSI = str(Path(sys.executable).with_name("csi"))


def populate(home: Path, count: int) -> None:
    env = {**os.environ, "CSI_HOME": str(home)}
    subprocess.run([CSI, "analyze", "--save", "--reason", "benchmark", "--alert", str(ALERT),
                    "--format", "json", str(FIXTURE)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    store = ReportStore(home)
    (real,), _ = store.query(limit=1)
    files = {p.name: p.read_bytes() for p in store.directory(real.id).iterdir()}
    rng = random.Random(42)
    namespaces = [f"team-{i:02d}" for i in range(12)]
    verdicts = ["none", "info", "low", "medium", "high", "critical"]
    now = datetime.now(UTC)
    rows = []
    for i in range(count - 1):
        created = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
        verdict = rng.choices(verdicts, weights=[5, 30, 20, 20, 15, 10])[0]
        namespace = rng.choice(namespaces)
        rid = f"{i:06x}{rng.getrandbits(24):06x}"
        rows.append(replace(
            real, id=rid, created=created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            created_us=to_us(created), namespace=namespace,
            pod=f"{namespace}-app-{rng.randrange(400):03d}-x2x9q", verdict=verdict,
            verdict_rank=RANK[verdict], findings=rng.randrange(60),
            counts={"critical": rng.randrange(3), "high": rng.randrange(9), "medium": 2,
                    "low": 1, "info": 3},
            trigger=rng.choice(["falco: Drop and execute new binary in container",
                                "falco: Redirect STDOUT/STDIN to Network Connection",
                                "alice: pager #42"])))
        folder = store.directory(rid)
        folder.mkdir()
        for name, data in files.items():
            (folder / name).write_bytes(data)
    for start in range(0, len(rows), 1000):
        store.insert(rows[start:start + 1000])
    total = store.query(limit=1)[1]
    assert total == count, total
    print(f"store: {total} reports in {store.root} "
          f"({sum(1 for _ in store.root.iterdir()) - 1} folders + index)")


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()[-300:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="Keep the temporary CSI_HOME.")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="csi-bench-reports-"))
    try:
        start = time.perf_counter()
        populate(home, args.reports)
        print(f"populated in {time.perf_counter() - start:.1f} s")
        env = {**os.environ, "CSI_HOME": str(home), "COLUMNS": "200"}
        cases = {
            "csi report list": [CSI, "report", "list"],
            "csi report list --severity high --since 24h": [
                CSI, "report", "list", "--severity", "high", "--since", "24h"],
            "csi report list --output json": [CSI, "report", "list", "--output", "json"],
        }
        met = True
        for name, argv in cases.items():
            timed(argv, env)  # warm-up: page cache, bytecode
            times = [timed(argv, env) for _ in range(args.runs)]
            median = statistics.median(times)
            met = met and median < TARGET
            print(f"{name:<46} median {median:.3f} s  (runs: "
                  f"{', '.join(f'{t:.3f}' for t in times)})  "
                  f"{'met' if median < TARGET else 'NOT met'} (< {TARGET} s)")
        rows = json.loads(subprocess.run(cases["csi report list --output json"], env=env,
                                         capture_output=True, check=True).stdout)
        print(f"default view shows {len(rows)} newest of {args.reports} reports")
        print(f"target {TARGET} s over {args.reports} reports: {'met' if met else 'NOT met'}")
        return 0 if met else 1
    finally:
        if args.keep:
            print(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
