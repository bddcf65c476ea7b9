"""Analysis in a child process with a memory limit, so a hostile checkpoint costs one capture.

The checkpoint is the attacker's: whatever bounds csi puts on what it reads,
an analysis of one archive must never be able to take the receiver down with
it. :func:`run_in_worker` runs ``MODULE:FUNCTION(**args)`` in a fresh
``python -m forensics.analysis.worker`` whose data segment is limited
(``RLIMIT_DATA``: heap and anonymous mappings; the archive, mapped from its
file, does not count) to ``$CSI_ANALYSIS_MEMORY`` (default 2 GiB, 0 for no
limit). The job and its answer are one line of JSON each (stdin, stdout).
A worker that fails, runs out of memory or is killed becomes one
:class:`AnalysisFailed` line; the caller (a capture) records it and goes on.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
from typing import Any

from forensics.errors import CsiError
from forensics.limits import ANALYSIS_MEMORY_ENV, analysis_memory_limit
from forensics.status import ExitStatus

EXIT_OUT_OF_MEMORY = ExitStatus.EXTERNAL  # the worker's status when it hit the memory limit
DEFAULT_TIMEOUT = 3600.0


class AnalysisFailed(CsiError):
    """The analysis of one checkpoint failed in its worker (error, memory limit, killed)."""

    permanent = True  # the same archive fails the same way again


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n >> 20} MiB"


def run_in_worker(function: str, args: dict[str, Any], *, memory_limit: int | None = None,
                  timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """``function(**args)`` (``MODULE:FUNCTION``, JSON in and out) in a memory-limited child."""
    limit = analysis_memory_limit() if memory_limit is None else memory_limit
    job = json.dumps({"function": function, "args": args, "memory_limit": limit})
    try:
        done = subprocess.run([sys.executable, "-m", "forensics.analysis.worker"],
                              input=job.encode(), capture_output=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        raise AnalysisFailed(f"the analysis did not finish in {timeout:.0f} s",
                             hint="the worker was stopped; the archive is kept") from None
    answer = _answer(done.stdout)
    if done.returncode == 0 and answer is not None and "result" in answer:
        result: dict[str, Any] = answer["result"]
        return result
    if answer is not None and "error" in answer:
        failed = AnalysisFailed(str(answer["error"]), why=str(answer.get("why") or ""),
                                hint=str(answer.get("hint") or ""))
        failed.permanent = bool(answer.get("permanent", True))
        raise failed
    raise AnalysisFailed(_death(done.returncode, limit, done.stderr))


def _answer(stdout: bytes) -> dict[str, Any] | None:
    lines = stdout.strip().splitlines()
    if not lines:
        return None
    try:
        value = json.loads(lines[-1])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _death(code: int, limit: int, stderr: bytes) -> str:
    bound = (f"its memory limit ({_gib(limit)}, {ANALYSIS_MEMORY_ENV})" if limit
             else "no memory limit")
    if code == EXIT_OUT_OF_MEMORY or code == -signal.SIGKILL:
        how = "ran out of memory" if code == EXIT_OUT_OF_MEMORY else "was killed (SIGKILL)"
        return f"the analysis worker {how} under {bound}"
    if code < 0:
        return f"the analysis worker was killed by signal {-code} ({bound})"
    last = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    return f"the analysis worker exited with status {code}: {last[0][:300]}"


# ------------------------------------------------------------------ the child


def _limit_memory(limit: int) -> None:
    if limit <= 0:
        return
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


MEMORY_SIGNS = ("can't start new thread", "not enough memory", "cannot allocate memory",
                "out of memory")


def _exhausted(exc: BaseException) -> bool:
    """A failure that the memory limit explains: threads without stacks, YARA or zstd
    without buffers (they say so in their own words)."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or any(sign in text for sign in MEMORY_SIGNS)


def _out_of_memory(limit: int, detail: str) -> dict[str, Any]:
    return {"error": f"the analysis ran out of memory under its limit ({_gib(limit)}, "
                     f"{ANALYSIS_MEMORY_ENV})", "why": detail[:300],
            "hint": f"raise {ANALYSIS_MEMORY_ENV} if this archive is trusted"}


def _say(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def main() -> int:
    """The worker: one job from stdin, one answer on stdout."""
    job = json.loads(sys.stdin.readline())
    _limit_memory(int(job.get("memory_limit") or 0))
    module_name, _, attr = str(job["function"]).partition(":")
    limit = int(job.get("memory_limit") or 0)
    try:
        function = getattr(importlib.import_module(module_name), attr)
        result = function(**job["args"])
    except MemoryError:
        try:
            _say(_out_of_memory(limit, "MemoryError"))
        finally:
            os._exit(EXIT_OUT_OF_MEMORY)
    except Exception as exc:
        if limit and _exhausted(exc):  # what running out of memory looks like elsewhere
            _say(_out_of_memory(limit, str(exc)))
            return EXIT_OUT_OF_MEMORY
        if isinstance(exc, CsiError):
            _say({"error": exc.what, "why": exc.why, "hint": exc.hint,
                  "permanent": exc.permanent})
        else:  # a bug: one line, as the in-process pipeline recorded it
            _say({"error": f"internal error: {type(exc).__name__}: {exc}"})
        return ExitStatus.FAILURE
    _say({"result": result})
    return ExitStatus.OK


if __name__ == "__main__":
    sys.exit(main())
