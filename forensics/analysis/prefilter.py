"""Where csi's own YARA rules can match: a Hyperscan pass that picks the bytes worth a YARA scan.

YARA's scan loop costs about 1.5 ns a byte whatever the rules; Hyperscan
finds a set of short literals at several GB/s. Each of csi's shipped rules
declares, in ``meta: csi_prefilter``, a Hyperscan regular expression that is
part of every match of every one of its strings (``://`` for URLs, ``AKIA|ASIA``
for AWS keys...). A buffer is scanned with those expressions first, and YARA
then runs only on the windows of ``MARGIN`` bytes either side of each hit,
merged. The findings are the same as a full scan's, provided that

* every rule's condition is met only through its strings (``any of them``), and
* no match is longer than ``MARGIN`` (the shipped rules bound every repeat).

A rule without ``csi_prefilter`` (any user rule) makes the whole set
unsuitable: :meth:`Prefilter.for_rules` returns None and the caller scans in
full. Where hits are dense, a window would cover most of the buffer anyway,
so :meth:`Prefilter.windows` gives up and asks for a full scan. Tests hold
each shipped rule to its declaration, string by string, and compare
prefiltered and full scans on every fixture.
"""

from __future__ import annotations

import threading
from typing import Any

try:
    import hyperscan

    HAVE_HYPERSCAN = True
except ImportError:  # pragma: no cover - a platform without a hyperscan wheel scans in full
    HAVE_HYPERSCAN = False

META = "csi_prefilter"
MARGIN = 4096  # bytes of context either side of a prefilter hit; longer than any match
MAX_HITS = 1024  # per buffer: each costs a Python call; beyond this a whole scan is cheaper
MAX_COVER = 0.5  # windows covering more than this share of a buffer: scan it whole


class PrefilterError(ValueError):
    """A ``csi_prefilter`` expression Hyperscan cannot compile."""


class Prefilter:
    """Hyperscan expressions, one per rule; thread-safe (one scratch space per thread)."""

    def __init__(self, expressions: list[str]) -> None:
        self.expressions = sorted(set(expressions))
        self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        try:
            self._db.compile(
                expressions=[e.encode("utf-8") for e in self.expressions],
                ids=list(range(len(self.expressions))), elements=len(self.expressions),
                flags=[0] * len(self.expressions),
            )
        except hyperscan.error as exc:
            raise PrefilterError(f"{META} does not compile: {exc}") from None
        self._local = threading.local()

    @classmethod
    def for_rules(cls, rules: Any) -> Prefilter | None:
        """The prefilter of compiled YARA ``rules``; None if hyperscan is missing or
        any rule does not declare one (then only a full scan is right)."""
        if not HAVE_HYPERSCAN:
            return None
        expressions: list[str] = []
        for rule in rules:
            expression = rule.meta.get(META)
            if not isinstance(expression, str) or not expression:
                return None
            expressions.append(expression)
        return cls(expressions) if expressions else None

    def _scratch(self) -> Any:
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(self._db)
        return scratch

    def windows(self, data: Any) -> list[tuple[int, int]] | None:
        """Merged ``(start, end)`` windows of ``data`` that YARA must scan; [] when no
        rule can match; None when the hits are so dense that a full scan is cheaper."""
        ends: list[int] = []

        def on_hit(_id: int, _from: int, to: int, _flags: int, _ctx: Any) -> bool:
            ends.append(to)
            return len(ends) > MAX_HITS  # True stops the scan

        try:
            self._db.scan(data, match_event_handler=on_hit, scratch=self._scratch())
        except hyperscan.ScanTerminated:  # raised when on_hit asked to stop
            return None
        size = len(data)
        spans: list[tuple[int, int]] = []
        for to in sorted(ends):
            start, end = max(0, to - MARGIN), min(size, to + MARGIN)
            if spans and start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((start, end))
        if sum(end - start for start, end in spans) > MAX_COVER * size:
            return None
        return spans
