"""The analysis worker (issue 11 item 7d): a memory-limited child, one line per failure.

Real children (``python -m forensics.analysis.worker``) run the jobs of
tests/analysis/worker_jobs.py.
"""

from __future__ import annotations

import pytest

from forensics.analysis.worker import AnalysisFailed, run_in_worker
from forensics.errors import UsageError
from forensics.limits import analysis_memory_limit, parse_size

JOBS = "tests.analysis.worker_jobs"


def test_worker_returns_the_jobs_answer_within_its_limit() -> None:
    assert run_in_worker(f"{JOBS}:allocate", {"mib": 64}, memory_limit=512 << 20) == {
        "held": 64 << 20}


def test_worker_allocating_past_its_memory_limit_is_one_failed_line() -> None:
    with pytest.raises(AnalysisFailed) as caught:
        run_in_worker(f"{JOBS}:allocate", {"mib": 1024}, memory_limit=256 << 20)
    assert str(caught.value) == (
        "the analysis ran out of memory under its limit (256 MiB, CSI_ANALYSIS_MEMORY): "
        "MemoryError (raise CSI_ANALYSIS_MEMORY if this archive is trusted)")


def test_worker_killed_by_sigkill_is_one_failed_line() -> None:
    with pytest.raises(AnalysisFailed) as caught:
        run_in_worker(f"{JOBS}:killed", {}, memory_limit=2 << 30)
    assert str(caught.value) == ("the analysis worker was killed (SIGKILL) under its memory "
                                 "limit (2.0 GiB, CSI_ANALYSIS_MEMORY)")


def test_worker_csi_error_keeps_its_words() -> None:
    with pytest.raises(AnalysisFailed) as caught:
        run_in_worker(f"{JOBS}:refuse", {}, memory_limit=0)
    assert str(caught.value) == "the archive is not a checkpoint: no checkpoint/ directory"


def test_memory_limit_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CSI_ANALYSIS_MEMORY", raising=False)
    assert analysis_memory_limit() == 2 << 30
    monkeypatch.setenv("CSI_ANALYSIS_MEMORY", "512M")
    assert analysis_memory_limit() == 512 << 20
    assert parse_size("1GiB") == parse_size("1G") == 1 << 30
    monkeypatch.setenv("CSI_ANALYSIS_MEMORY", "lots")
    with pytest.raises(UsageError) as caught:
        analysis_memory_limit()
    assert str(caught.value) == ("CSI_ANALYSIS_MEMORY='lots' is not a size (give bytes, or a "
                                 "number with K, M or G (e.g. 2G); 0 for no limit)")
