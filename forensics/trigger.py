"""Why a capture or an analysis happened: one :class:`Trigger`, one vocabulary.

``kind`` is ``alert`` (a Falco alert, through a ``csi serve`` policy or an
Argo workflow's ``alert`` parameter) or ``responder`` (a person, with a
reason; ``csi capture``, ``csi analyze --save``). The capture request, the
journal, the analysis worker and the signed report all carry this class; the
alert in it is the typed :class:`~forensics.alert.Alert`. Reports written
before this vocabulary say ``falco-alert`` for ``alert``: :data:`ALERT_KINDS`
is what readers of stored reports accept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # lazy: start-up (views read ALERT_KINDS without decoding alerts)
    from forensics.alert import Alert

Kind = Literal["alert", "responder"]
ALERT_KINDS = ("alert", "falco-alert")  # "falco-alert": reports written by csi < issue 12


@dataclass(frozen=True)
class Trigger:
    """Who or what caused the capture: a Falco alert (through a policy) or a responder."""

    kind: Kind
    reason: str = ""
    responder: str = ""
    alert: Alert | None = None  # the Falco alert, as received
    policy: str = ""  # the csi serve policy rule that decided to capture

    def __post_init__(self) -> None:
        if self.kind not in ("alert", "responder"):
            raise ValueError(f"trigger kind {self.kind!r} is not 'alert' or 'responder'")

    @classmethod
    def from_alert(cls, alert: Alert, *, policy: str | None = None, reason: str = "") -> Trigger:
        return cls("alert", reason=reason, alert=alert, policy=policy or "")

    @classmethod
    def by_responder(cls, responder: str, reason: str | None = None,
                     alert: Alert | None = None) -> Trigger:
        return cls("responder", reason=reason or "", responder=responder, alert=alert)

    @property
    def alert_fingerprint(self) -> str:
        """The alert's identity for idempotency (empty without an alert)."""
        return self.alert.fingerprint if self.alert is not None else ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form a capture request, the journal and the worker carry."""
        found: dict[str, Any] = {
            "kind": self.kind, "reason": self.reason, "responder": self.responder,
            "alert": self.alert.to_json() if self.alert is not None else None,
            "alert_fingerprint": self.alert_fingerprint}
        if self.policy:  # absent when empty: requests journaled before keep their ids
            found["policy"] = self.policy
        return found

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trigger:
        """Read :meth:`to_dict`'s form; the alert is parsed (and checked) again."""
        alert = data.get("alert")
        return cls(kind=data["kind"], reason=data.get("reason") or "",
                   responder=data.get("responder") or "",
                   alert=_alert(alert) if alert is not None else None,
                   policy=data.get("policy") or "")


def _alert(data: Any) -> Alert:
    from forensics.alert import alert_from_json  # lazy: start-up

    return alert_from_json(data)
