"""What a capture is asked to do and what it produced.

These two records are the contract between whoever decides a capture is
needed (``csi capture``, the Falco receiver, an Argo workflow step) and the
capture pipeline (:mod:`forensics.orchestration.pipeline`), whichever executor runs
it. They are plain data: JSON round-trips with ``to_dict``/``from_dict``, so a
receiver can journal them and a workflow can pass them between steps. The
:class:`~forensics.trigger.Trigger` (and the typed alert in it) is the low
layer's, re-exported here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from forensics.trigger import Trigger

__all__ = ["Backend", "CaptureRequest", "CaptureResult", "Target", "Trigger"]

Backend = Literal["kubernetes", "podman"]


@dataclass(frozen=True)
class Target:
    """The container to checkpoint.

    Kubernetes: ``namespace``/``pod``/``container`` (``node`` when known, else the
    pipeline resolves it from the pod). Podman: ``container`` is the podman
    container name or id; the other fields are empty.
    """

    backend: Backend
    container: str
    namespace: str = ""
    pod: str = ""
    node: str = ""
    container_id: str = ""  # when only Falco's container.id is known

    def key(self) -> str:
        """Identifies the container across alerts, for dedup and cooldowns."""
        if self.backend == "kubernetes":
            return f"k8s/{self.namespace}/{self.pod}/{self.container}"
        return f"podman/{self.container}"


@dataclass(frozen=True)
class CaptureRequest:
    target: Target
    trigger: Trigger
    registry: str | None = None  # REPO to push to; None: the OCI layout under the csi home
    analyze: bool = True
    keep_node_copy: bool = False  # keep the node's archive after a verified push
    timeout_s: int | None = None  # the kubelet's checkpoint timeout

    @property
    def id(self) -> str:
        """Stable id: the same request (same alert, same target) gives the same id."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        found = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return found | {"target": asdict(self.target), "trigger": self.trigger.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaptureRequest:
        return cls(
            target=Target(**data["target"]),
            trigger=Trigger.from_dict(data["trigger"]),
            **{k: v for k, v in data.items() if k not in ("target", "trigger")},
        )


@dataclass
class CaptureResult:
    """Everything a capture produced, for the report's chain of custody and timeline."""

    request_id: str
    archive_path: str = ""  # where the archive is now (node path, or local copy)
    archive_sha256: str = ""  # taken at capture
    archive_size: int = 0
    image_ref: str = ""  # registry reference, with @sha256:<manifest digest>
    manifest_digest: str = ""
    report_id: str = ""
    verdict: str = ""
    timeline: dict[str, str] = field(default_factory=dict)  # event -> RFC 3339 UTC time
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
