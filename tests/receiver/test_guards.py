"""The guard rails, each driven by an injected clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from forensics.orchestration.request import Target
from forensics.receiver.guards import GuardConfig, Guards, Slots, parse_duration, parse_rate

WIDE = GuardConfig(dedup_window=300, cooldown=900, max_per_node=100, max_cluster=100,
                   max_queued=1000, rate_per_minute=1e6, burst=1_000_000)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def pod(name: str, node: str = "worker-1") -> Target:
    return Target(backend="kubernetes", namespace="prod", pod=name, container="app", node=node)


def guards(clock: Clock, **changes: float) -> Guards:
    return Guards(replace(WIDE, **changes), clock)


def test_dedup_window_per_rule_and_container() -> None:
    clock = Clock()
    g = guards(clock, cooldown=0)
    assert g.admit("rule-a", pod("p")).admitted
    g.release(pod("p"))
    clock.now += 299
    verdict = g.admit("rule-a", pod("p"))
    assert verdict.code == "duplicate" and "dedup window 5m" in verdict.reason
    assert g.admit("rule-b", pod("p")).admitted  # another rule: not a duplicate
    g.release(pod("p"))
    assert g.admit("rule-a", pod("q")).admitted  # another container
    clock.now += 1
    assert g.admit("rule-a", pod("p")).admitted  # the window has passed


def test_in_flight_then_cooldown_per_container() -> None:
    clock = Clock()
    g = guards(clock, dedup_window=0)
    assert g.admit("rule-a", pod("p")).admitted
    assert g.admit("rule-b", pod("p")).code == "in-flight"
    g.release(pod("p"))
    clock.now += 60
    verdict = g.admit("rule-b", pod("p"))
    assert verdict.code == "cooldown" and "next capture allowed in 14m" in verdict.reason
    clock.now += 840
    assert g.admit("rule-b", pod("p")).admitted


def test_backlog_of_unfinished_captures() -> None:
    clock = Clock()
    g = guards(clock, max_queued=2)
    assert g.admit("r", pod("a", "n1")).admitted
    assert g.admit("r", pod("b", "n1")).admitted
    verdict = g.admit("r", pod("c", "n2"))
    assert verdict.code == "backlog" and "max_queued 2" in verdict.reason
    assert g.in_flight == 2
    g.release(pod("a", "n1"))
    assert g.admit("r", pod("c", "n2")).admitted
    g.release(pod("zzz", "n9"))  # releasing what was never admitted changes nothing
    assert g.in_flight == 2


def test_slots_per_node_and_in_all() -> None:
    slots = Slots(max_per_node=1, max_total=2)
    assert slots.try_acquire("n1")
    assert not slots.try_acquire("n1")  # the node is busy: wait
    assert slots.try_acquire("n2")
    assert not slots.try_acquire("n3")  # two running in all: wait
    slots.release("n1")
    assert slots.try_acquire("n3") and slots.running == 2
    slots.release("nowhere")
    assert slots.running == 2
    assert Slots.node_of(pod("x", "")) == "local"


def test_token_bucket_rate_limit() -> None:
    clock = Clock()
    g = guards(clock, rate_per_minute=10, burst=3)
    admitted = [g.admit("r", pod(f"p{i}")).admitted for i in range(5)]
    assert admitted == [True, True, True, False, False]
    assert g.admit("r", pod("p9")).reason.startswith("rate limited: more than 10 captures/min")
    clock.now += 5.9  # 10/min: one token every 6 s
    assert not g.admit("r", pod("p10")).admitted
    clock.now += 0.1
    assert g.admit("r", pod("p10")).admitted
    clock.now += 3600  # refills to the burst, not beyond
    assert [g.admit("r", pod(f"q{i}")).admitted for i in range(4)] == [True, True, True, False]


def test_suppressed_alerts_do_not_spend_tokens() -> None:
    clock = Clock()
    g = guards(clock, rate_per_minute=1, burst=1)
    assert g.admit("r", pod("p")).admitted
    for _ in range(100):
        assert g.admit("r", pod("p")).code == "duplicate"
    assert g.admit("r", pod("q")).code == "rate-limited"


def test_restore_from_the_journal() -> None:
    clock = Clock()
    g = guards(clock, max_queued=1)
    g.restore("r", pod("p", "n1"), clock.now - 10, in_flight=True)
    g.restore("r", pod("q", "n2"), clock.now - 100, in_flight=False)
    assert g.admit("r", pod("p", "n1")).code == "duplicate"
    assert g.admit("other", pod("p", "n1")).code == "in-flight"
    assert g.admit("other", pod("x", "n1")).code == "backlog"
    assert g.admit("other", pod("q", "n2")).code == "cooldown"
    g.release(pod("p", "n1"))
    assert g.admit("other", pod("x", "n1")).admitted


def test_pruning_keeps_decisions_the_same() -> None:
    clock = Clock()
    g = guards(clock, dedup_window=10, cooldown=10)
    for i in range(10_000):
        target = pod(f"p{i}")
        assert g.admit("r", target).admitted
        g.release(target)
        clock.now += 0.01
    assert len(g._dedup) < 10_000  # pruned as it went
    assert g.admit("r", pod("p9999")).code == "duplicate"


@pytest.mark.parametrize(("text", "seconds"), [("300", 300), (90, 90), ("5m", 300),
                                                ("1h", 3600), ("250ms", 0.25), ("1.5s", 1.5)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "per_minute"), [("10/min", 10), ("1/s", 60), ("600/h", 10),
                                                   (5, 5), ("2 / minute", 2)])
def test_rates(text: object, per_minute: float) -> None:
    assert parse_rate(text) == per_minute


@pytest.mark.parametrize("bad", ["0/min", "fast", -1, "10/day", True])
def test_bad_rates(bad: object) -> None:
    with pytest.raises(ValueError, match="not a rate"):
        parse_rate(bad)
