"""The argv bomb of issue 11 item 7 as a real podman container (deploy/dev/workload/argvbomb.c).

:func:`argvbomb_container` builds the static program (cached by the hash of its
source), puts it alone in a FROM scratch image (built once per source hash),
and runs it: pid 1 and eight children, each child's argv area 5.9 MB of NULs.
:func:`checkpoint_once` exports one checkpoint of it per test session (the
container keeps running). Where CRIU or the tools are missing, both raise
:class:`~tests.doubles.fixtures.CannotCheckpoint` with the reason.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.doubles.fixtures import CannotCheckpoint
from tests.doubles.kubelet import PODMAN

SOURCE = Path(__file__).resolve().parents[2] / "deploy" / "dev" / "workload" / "argvbomb.c"
CACHE = Path(os.environ.get("CSI_WORKLOAD_CACHE", "/var/tmp/csi-workload"))
REPO = "localhost/csi-argvbomb"
CHILDREN = 8
ARGV_BYTES = 46 * 128 * 1024  # each child's argv area, about 5.9 MB (46 x 128 KiB)
BUILD_FLAGS = ("-O2", "-static")


def _run(*argv: str, timeout: float = 300) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} … failed: {done.stderr.strip()[-800:]}")
    return done.stdout


def preflight() -> None:
    """CannotCheckpoint unless this machine can run and checkpoint the workload."""
    if os.geteuid() != 0:
        raise CannotCheckpoint("must run as root (rootless podman cannot checkpoint)")
    for tool in ("podman", "buildah", "runc", "criu", "gcc"):
        if shutil.which(tool) is None:
            raise CannotCheckpoint(f"{tool} not installed (deploy/dev/install-system.sh)")
    check = subprocess.run(["criu", "check"], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise CannotCheckpoint(f"criu check failed: {(check.stderr or check.stdout)[-300:]}")


def image() -> str:
    """The workload's image, built if this source has none yet."""
    source = SOURCE.read_bytes()
    tag = hashlib.sha256(source + " ".join(BUILD_FLAGS).encode()).hexdigest()[:12]
    ref = f"{REPO}:{tag}"
    exists = subprocess.run([*PODMAN, "image", "exists", ref], capture_output=True, check=False)
    if exists.returncode == 0:
        return ref
    ctx = CACHE / f"argvbomb-{tag}"
    shutil.rmtree(ctx, ignore_errors=True)
    ctx.mkdir(parents=True)
    _run("gcc", *BUILD_FLAGS, "-o", str(ctx / "argvbomb"), str(SOURCE))
    (ctx / "Containerfile").write_text("FROM scratch\nCOPY argvbomb /argvbomb\n")
    _run("buildah", "--storage-driver", "vfs", "bud", "--isolation", "chroot", "--layers=false",
         "-q", "-t", ref, "-f", str(ctx / "Containerfile"), str(ctx))
    return ref


@contextmanager
def argvbomb_container(prefix: str = "csi-bounds-argvbomb") -> Iterator[str]:
    """A running argv-bomb container (its name), removed on exit."""
    preflight()
    ref = image()
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    try:
        _run(*PODMAN, "run", "-d", "--name", name, "--log-driver", "k8s-file",
             "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
             "--ulimit", "stack=268435456:268435456", ref, "/argvbomb", str(CHILDREN))
        deadline = time.monotonic() + 120
        while True:
            logs = subprocess.run([*PODMAN, "logs", name], capture_output=True, text=True,
                                  check=False)
            if "ready argvbomb" in logs.stdout:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"argvbomb never became ready: {logs.stdout[-300:]}"
                                   f"{logs.stderr[-300:]}")
            time.sleep(0.2)
        yield name
    finally:
        subprocess.run([*PODMAN, "rm", "-f", "--time", "0", name], capture_output=True,
                       check=False, timeout=120)


def checkpoint(name: str, out: Path) -> Path:
    """Export a checkpoint of the running container ``name`` (it keeps running)."""
    done = subprocess.run([*PODMAN, "container", "checkpoint", "--export", str(out),
                           "--compress", "none", "--leave-running", name],
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise CannotCheckpoint(f"CRIU could not checkpoint {name}: {done.stderr.strip()[-300:]}")
    return out
