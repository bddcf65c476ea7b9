"""The receiver's Prometheus metrics, in a registry of its own per application.

Every name starts with ``csi_forensics_`` (left out below): the bare ``csi_``
prefix belongs to Kubernetes' Container Storage Interface metrics, on every node.

===================================  =====================================================
``alerts_received_total``            POSTs to ``/`` or ``/falco`` (before any check)
``alerts_accepted_total``            alerts journaled and answered 202 (``duplicate``:
                                     ``true`` for a repeat of a journaled alert)
``alerts_rejected_total``            refused, by ``reason``: ``unauthenticated``,
                                     ``unsupported_media_type``, ``too_large``,
                                     ``too_slow`` (``body_timeout``),
                                     ``invalid_json``, ``invalid_alert``, ``unavailable``
``alert_outcomes_total``             settled alerts by ``outcome`` (``capture``,
                                     ``suppressed``, ``notified``, ``ignored``, ``host``,
                                     ``internal``, ``no-container``, ``unresolved``)
``alerts_suppressed_total``          suppressed by ``guard`` (``duplicate``, ``in-flight``,
                                     ``cooldown``, ``backlog``, ``rate-limited``)
``captures``                         captures in the journal by ``state`` (at scrape time)
``captures_finished_total``          captures finished by ``state`` (``done``, ``failed``)
``queue_depth``                      alerts awaiting a decision + captures not finished
``capture_duration_seconds``         capture latency (histogram)
``accept_duration_seconds``          time to validate, journal and answer (histogram)
===================================  =====================================================
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REJECT_REASONS = ("unauthenticated", "unsupported_media_type", "too_large", "too_slow",
                  "invalid_json", "invalid_alert", "unavailable")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.received = Counter("csi_forensics_alerts_received", "Alert POSTs received",
                                registry=registry)
        self.accepted = Counter("csi_forensics_alerts_accepted",
                                "Alerts journaled and answered 202",
                                ["duplicate"], registry=registry)
        self.accepted_new = self.accepted.labels("false")  # on the accept path: no lookups
        self.accepted_repeat = self.accepted.labels("true")
        self.rejected = Counter("csi_forensics_alerts_rejected", "Alert POSTs refused, by reason",
                                ["reason"], registry=registry)
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        self.outcomes = Counter("csi_forensics_alert_outcomes", "Settled alerts by outcome",
                                ["outcome"], registry=registry)
        self.suppressed = Counter("csi_forensics_alerts_suppressed",
                                  "Alerts suppressed by a guard rail",
                                  ["guard"], registry=registry)
        self._outcomes: dict[str, Any] = {}
        self._suppressed: dict[str, Any] = {}
        self.captures = Gauge("csi_forensics_captures", "Captures in the journal by state",
                              ["state"],
                              registry=registry)
        self.finished = Counter("csi_forensics_captures_finished", "Captures finished, by state",
                                ["state"], registry=registry)
        self.queue_depth = Gauge("csi_forensics_queue_depth",
                                 "Alerts awaiting a decision plus captures not finished",
                                 registry=registry)
        self.capture_seconds = Histogram(
            "csi_forensics_capture_duration_seconds", "Capture latency", registry=registry,
            buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600))
        self.accept_seconds = Histogram(
            "csi_forensics_accept_duration_seconds",
            "Time to validate, journal and answer an alert",
            registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1))

    def outcome(self, outcome: str) -> Any:
        """The ``csi_forensics_alert_outcomes_total`` child for ``outcome`` (cached: hot path)."""
        child = self._outcomes.get(outcome)
        if child is None:
            child = self._outcomes[outcome] = self.outcomes.labels(outcome)
        return child

    def suppression(self, guard: str) -> Any:
        child = self._suppressed.get(guard)
        if child is None:
            child = self._suppressed[guard] = self.suppressed.labels(guard)
        return child

    def render(self, capture_counts: dict[str, int], queue_depth: int) -> bytes:
        for state, count in capture_counts.items():
            self.captures.labels(state).set(count)
        self.queue_depth.set(queue_depth)
        return generate_latest(self.registry)
