"""Where the evidence came from: the trigger of a capture and its chain of custody.

A capture (``forensics.capture``, the workflow steps) knows the node, the
registry reference and digest, the sha256 taken when the archive was
written, and the times of each step; a manual ``csi analyze --save`` knows
only who ran it and why. Both describe it with a :class:`Provenance`; what
is not known stays ``None`` and the report says "not recorded". The trigger
is the low layer's :class:`~forensics.trigger.Trigger` (kind ``alert`` or
``responder``), as the capture request carries it.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from forensics.alert import Alert
from forensics.report.canonical import json_safe
from forensics.trigger import Trigger

__all__ = ["Provenance", "Trigger", "current_user", "iso", "now", "trigger_dict"]


def iso(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds: ``2026-11-22T07:10:28.000000Z``."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: give times with a time zone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now() -> datetime:
    return datetime.now(UTC)


def current_user() -> str:
    """The responder at this terminal: ``$USER``, else the login name of the process."""
    user = os.environ.get("USER") or os.environ.get("LOGNAME")
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def trigger_dict(trigger: Trigger) -> dict[str, Any]:
    """The report's ``trigger``: what is not known is ``null``; the alert as received."""
    alert = trigger.alert
    return {"kind": trigger.kind, "responder": trigger.responder or None,
            "reason": trigger.reason or None, "policy": trigger.policy or None,
            "alert": json_safe(dict(alert.to_json())) if alert is not None else None}


@dataclass(frozen=True)
class Provenance:
    """The capture side of the chain of custody; every field but the trigger is optional."""

    trigger: Trigger
    cluster: str | None = None
    node: str | None = None
    node_archive_path: str | None = None  # where the kubelet wrote the archive on the node
    archive_sha256_at_capture: str | None = None
    archive_size_at_capture: int | None = None
    registry_ref: str | None = None  # e.g. registry.example/csi/evidence:payments-api-…
    manifest_digest: str | None = None  # sha256:… of the OCI manifest pushed
    checkpoint_requested: datetime | None = None
    checkpoint_written: datetime | None = None
    pushed: datetime | None = None
    captured_by: str | None = None  # the executor: "local", "argo workflow csi-capture-x7k2"
    extra: Mapping[str, Any] = field(default_factory=dict)  # anything else a capture records

    @classmethod
    def manual(cls, *, responder: str | None = None, reason: str | None = None,
               alert: Alert | None = None) -> Provenance:
        """An archive a responder analysed by hand (``csi analyze --save``)."""
        return cls(Trigger.by_responder(responder or current_user(), reason, alert))

    def capture_dict(self) -> dict[str, Any]:
        """The capture part of the report's ``custody``."""
        def when(moment: datetime | None) -> str | None:
            return iso(moment) if moment is not None else None

        return {
            "captured_by": self.captured_by,
            "node_archive_path": self.node_archive_path,
            "archive_sha256": self.archive_sha256_at_capture,
            "archive_size": self.archive_size_at_capture,
            "registry_ref": self.registry_ref,
            "manifest_digest": self.manifest_digest,
            "checkpoint_requested": when(self.checkpoint_requested),
            "checkpoint_written": when(self.checkpoint_written),
            "pushed": when(self.pushed),
            "extra": json_safe(dict(self.extra)),
        }
