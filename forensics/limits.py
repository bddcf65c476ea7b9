"""How much a hostile checkpoint can make csi read, keep and write: every such bound, in one place.

Everything inside a checkpoint is the attacker's: a process can hold megabytes
of NUL bytes as its command line, a ``deleted.files`` of 47 KB compressed can
list a million paths, a ``config.dump`` can nest arrays a hundred thousand
deep. Each bound below is crossed by a test; what lies beyond it is counted
and said ("… N more bytes", "… and 9,740 more"), never silently dropped.
"""

from __future__ import annotations

import os

from forensics.units import parse_size as parse_size  # the one size grammar

# --- per process, read from the checkpoint's memory (forensics/archive/memory.py)
MAX_ARGV_BYTES = 64 << 10  # of a process's argv area
MAX_ENV_BYTES = 128 << 10  # of its environment area
MAX_ARGV_STRINGS = 4096  # arguments kept (64 KiB of NULs would be 65,536 empty ones)
MAX_ENV_STRINGS = 4096  # environment entries kept

# --- listings of the container's file system (forensics/archive/rootfs.py)
MAX_DELETED_FILES = 10_000  # entries of deleted.files kept; the rest are counted
MAX_DELETED_FILES_BYTES = 64 << 20  # of deleted.files read at all
MAX_NESTED_ENTRIES = 100_000  # files of rootfs-diff.tar / devshm-checkpoint.tar kept

# --- JSON members (config.dump, spec.dump, deleted.files)
MAX_JSON_DEPTH = 64  # real ones nest a dozen levels
MAX_JSON_MEMBER_BYTES = 32 << 20  # config.dump / spec.dump larger than this are not parsed

# --- what an analysis keeps (forensics/analysis/runner.py)
MAX_FINDINGS_PER_RULE = 50  # beyond: one finding "… and N more"
MAX_RECORDS_PER_KIND = 10_000  # records of one kind from one analyzer; the rest are counted

# --- the report (forensics/report/builder.py)
MAX_REPORT_BYTES = 16 << 20  # the JSON of record; beyond, sections are cut with a note

# --- the analysis worker (forensics/analysis/worker.py)
ANALYSIS_MEMORY_ENV = "CSI_ANALYSIS_MEMORY"  # bytes, or with K/M/G suffix; 0: no limit
DEFAULT_ANALYSIS_MEMORY = 2 << 30


def analysis_memory_limit() -> int:
    """The analysis worker's memory limit in bytes (0: none), from ``$CSI_ANALYSIS_MEMORY``."""
    raw = os.environ.get(ANALYSIS_MEMORY_ENV, "").strip()
    if not raw:
        return DEFAULT_ANALYSIS_MEMORY
    try:
        return parse_size(raw)
    except ValueError:
        from forensics.errors import UsageError

        raise UsageError(f"{ANALYSIS_MEMORY_ENV}={raw!r} is not a size",
                         hint="give bytes, or a number with K, M or G (e.g. 2G); 0 for "
                              "no limit") from None
