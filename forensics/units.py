"""One grammar for durations and sizes, and one way to print a size.

Durations (:func:`parse_duration`): a number, optionally with a decimal part,
optionally followed by a unit; blanks around and between are allowed, case is
not significant. A bare number is seconds. Units: ``ms`` (milliseconds),
``s``, ``m`` (minutes), ``h``, ``d``, ``w`` (weeks). So ``30``, ``250ms``,
``1.5d``, ``2w`` and ``5 m`` are all durations; ``-5s``, ``5x``, ``1e3``, ``inf``
and ``""`` are not. Config values that are already numbers (YAML ``300``) are
seconds too. Used by the receiver config (guards, journal retention, time-outs),
``csi gc --max-age`` and ``csi report list --since``.

Sizes (:func:`parse_size`): a number (decimals allowed) and an optional
1024-based unit ``K``, ``M``, ``G``, ``T``, with or without ``i`` and ``B``:
``1048576``, ``512M``, ``20G``, ``2GiB``, ``1.5TB`` (all 1024-based). Negative
or anything else: rejected.

Both raise :class:`ValueError` with one readable line; callers turn it into
their own :class:`~forensics.errors.UsageError` with the place it came from.
"""

from __future__ import annotations

import re

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*", re.IGNORECASE)
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0,
            None: 1.0}
DURATION_HINT = "a number of seconds, or with a unit: 250ms, 30s, 5m, 12h, 1.5d, 2w"

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)
_BYTES = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
SIZE_HINT = "bytes, or a number with K, M, G or T (1024-based): 512M, 20G, 2GiB"


def parse_duration(value: object) -> float:
    """``30``, ``"250ms"``, ``"30s"``, ``"5m"``, ``"1h"``, ``"1.5d"``, ``"2w"`` → seconds.

    A non-negative int/float is taken as seconds. ValueError on anything else.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value >= 0 and value == value and value != float("inf"):
            return float(value)
    elif isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match is not None:
            unit = match.group(2).lower() if match.group(2) else None
            return float(match.group(1)) * _SECONDS[unit]
    raise ValueError(f"{value!r} is not a duration ({DURATION_HINT})")


def parse_size(text: str) -> int:
    """``1048576``, ``512M``, ``20G``, ``2GiB``, ``1.5T`` → bytes. ValueError on anything else."""
    match = _SIZE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a size ({SIZE_HINT})")
    return int(float(match.group(1)) * _BYTES[match.group(2).lower()])


def human_size(n: int | None) -> str:
    """Bytes as checkpointctl prints them: 1024-based, one decimal (``"?"`` when unknown)."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
