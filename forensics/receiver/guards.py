"""Guard rails against checkpoint storms: a checkpoint freezes a production container.

Admission (:class:`Guards`), checked in this order for every alert the policy
wants captured; the first that fails suppresses the alert, and its reason is
journaled:

1. ``duplicate``: the same Falco rule and container were admitted within the
   dedup window (Falco repeats an alert many times a second);
2. ``in-flight``: a capture of this container is queued or running;
3. ``cooldown``: this container was captured (by any rule) within the cooldown;
4. ``backlog``: ``max_queued`` admitted captures are still unfinished;
5. ``rate-limited``: the global token bucket (``rate`` per minute, ``burst``) is empty.

Concurrency (:class:`Slots`): an admitted capture waits in the executor's queue
until its node has fewer than ``max_per_node`` captures running and fewer than
``max_cluster`` run in all. Concurrency delays a capture, it never drops one:
a second container compromised on a busy node is still captured, a moment later.

Deterministic: time comes from an injectable clock (wall seconds, because the
state is rebuilt from the journal's timestamps after a restart). Not
thread-safe: the receiver calls :class:`Guards` from its event loop only, and
the executor calls :class:`Slots` under its own lock.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from forensics.orchestration.request import Target
from forensics.units import parse_duration as parse_duration  # the one duration grammar

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_PER = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600,
        "hour": 3600}
_PRUNE_EVERY = 4096


@dataclass(frozen=True)
class GuardConfig:
    dedup_window: float = 300.0  # seconds
    cooldown: float = 900.0
    max_per_node: int = 1  # captures running at once on one node
    max_cluster: int = 4  # captures running at once in all
    max_queued: int = 50  # captures admitted and not finished (queued or running)
    rate_per_minute: float = 10.0
    burst: int = 10


def parse_rate(value: object) -> float:
    """``"10/min"``, ``"1/s"``, ``"600/h"`` or a number (per minute) → per minute."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    match = _RATE.match(value) if isinstance(value, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{value!r} is not a rate (like 10/min, 1/s, 600/h)")
    return float(match.group(1)) * 60 / _PER[match.group(2)]


def _count(data: Mapping[str, object], key: str, default: int) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{key}: {value!r} must be a whole number >= 1")
    return value


def parse_guards(data: Mapping[str, object]) -> GuardConfig:
    known = {"dedup_window", "cooldown", "max_per_node", "max_cluster", "max_queued", "rate",
             "burst"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    default = GuardConfig()
    rate = parse_rate(data["rate"]) if "rate" in data else default.rate_per_minute
    return GuardConfig(
        dedup_window=parse_duration(data.get("dedup_window", default.dedup_window)),
        cooldown=parse_duration(data.get("cooldown", default.cooldown)),
        max_per_node=_count(data, "max_per_node", default.max_per_node),
        max_cluster=_count(data, "max_cluster", default.max_cluster),
        max_queued=_count(data, "max_queued", default.max_queued),
        rate_per_minute=rate, burst=_count(data, "burst", max(1, int(rate))),
    )


@dataclass(frozen=True)
class Verdict:
    admitted: bool
    code: str  # "admitted" or the guard that suppressed: "duplicate", "cooldown", …
    reason: str


def _ago(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}m"


class Guards:
    """The live state of the admission guard rails."""

    def __init__(self, config: GuardConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self._dedup: dict[tuple[str, str], float] = {}  # (rule, target key) -> admitted at
        self._captured: dict[str, float] = {}  # target key -> last admitted at
        self._in_flight: Counter[str] = Counter()  # target key -> captures unfinished
        self._total = 0
        self._tokens = float(config.burst)
        self._refilled = clock()
        self._calls = 0

    @property
    def in_flight(self) -> int:
        """Captures admitted and not finished (queued or running)."""
        return self._total

    def admit(self, rule: str, target: Target) -> Verdict:
        """Admit a capture of ``target`` for ``rule`` now, or say which guard suppresses it."""
        now, cfg, key = self.clock(), self.config, target.key()
        self._calls += 1
        if self._calls % _PRUNE_EVERY == 0:
            self._prune(now)
        seen = self._dedup.get((rule, key))
        if seen is not None and now - seen < cfg.dedup_window:
            return Verdict(False, "duplicate", f"duplicate: rule {rule!r} already captured "
                           f"{key} {_ago(now - seen)} ago (dedup window "
                           f"{_ago(cfg.dedup_window)})")
        if self._in_flight[key]:
            return Verdict(False, "in-flight", f"in flight: a capture of {key} is already "
                           "queued or running")
        last = self._captured.get(key)
        if last is not None and now - last < cfg.cooldown:
            return Verdict(False, "cooldown", f"cooldown: {key} was captured "
                           f"{_ago(now - last)} ago; next capture allowed in "
                           f"{_ago(cfg.cooldown - (now - last))}")
        if self._total >= cfg.max_queued:
            return Verdict(False, "backlog", f"backlog full: {self._total} captures queued or "
                           f"running (max_queued {cfg.max_queued})")
        self._refill(now)
        if self._tokens < 1:
            return Verdict(False, "rate-limited", f"rate limited: more than "
                           f"{cfg.rate_per_minute:g} captures/min (burst {cfg.burst})")
        self._tokens -= 1
        self._dedup[(rule, key)] = now
        self._captured[key] = now
        self._start(key)
        node = target.node or "local"
        return Verdict(True, "admitted", f"admitted: capture of {key} on node {node}")

    def restore(self, rule: str, target: Target, admitted_at: float, in_flight: bool) -> None:
        """Rebuild the state from a journaled capture (on start-up, before any alert)."""
        key = target.key()
        self._dedup[(rule, key)] = max(admitted_at, self._dedup.get((rule, key), 0.0))
        self._captured[key] = max(admitted_at, self._captured.get(key, 0.0))
        if in_flight:
            self._start(key)

    def release(self, target: Target) -> None:
        """A capture of ``target`` finished (done or failed)."""
        key = target.key()
        if self._in_flight[key] <= 0:
            return
        self._in_flight[key] -= 1
        self._total -= 1
        if self._in_flight[key] <= 0:
            del self._in_flight[key]

    def _start(self, key: str) -> None:
        self._in_flight[key] += 1
        self._total += 1

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._refilled)
        self._tokens = min(float(self.config.burst),
                           self._tokens + elapsed * self.config.rate_per_minute / 60)
        self._refilled = now

    def _prune(self, now: float) -> None:
        window, cooldown = self.config.dedup_window, self.config.cooldown
        self._dedup = {k: t for k, t in self._dedup.items() if now - t < window}
        self._captured = {k: t for k, t in self._captured.items() if now - t < cooldown}


class Slots:
    """Concurrency: at most ``max_per_node`` running on a node, ``max_total`` in all."""

    def __init__(self, max_per_node: int, max_total: int) -> None:
        self.max_per_node, self.max_total = max_per_node, max_total
        self._node: Counter[str] = Counter()
        self.running = 0

    @staticmethod
    def node_of(target: Target) -> str:
        return target.node or "local"

    def try_acquire(self, node: str) -> bool:
        """Take a slot on ``node`` if one is free."""
        if self.running >= self.max_total or self._node[node] >= self.max_per_node:
            return False
        self._node[node] += 1
        self.running += 1
        return True

    def release(self, node: str) -> None:
        if self._node[node] <= 0:
            return
        self._node[node] -= 1
        self.running -= 1
        if self._node[node] <= 0:
            del self._node[node]
